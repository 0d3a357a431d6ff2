"""The protocol constants in C (firmware/core/qp_protocol.h) and Python agree."""

from __future__ import annotations

import re

from firmware_support import FIRMWARE

from firmware_bridge import protocol

HEADER = FIRMWARE / "core" / "qp_protocol.h"
DEFINE = re.compile(r"^#define[ \t]+(QP_\w+)[ \t]+(.+?)[ \t]*(?:/\*.*)?$", re.M)


def c_constants() -> dict[str, int]:
    """Evaluate each #define; values are literals or expressions over earlier names."""
    values: dict[str, int] = {}
    for name, expr in DEFINE.findall(HEADER.read_text()):
        if name == "QP_PROTOCOL_H":
            continue
        py = re.sub(r"\b(0x[0-9A-Fa-f]+|\d+)[uU]?\b", r"\1", expr).replace("/", "//")
        values[name] = eval(py, {"__builtins__": {}}, dict(values))  # noqa: S307
    return values


def test_every_c_constant_has_the_same_value_in_python():
    c = c_constants()
    assert len(c) >= 40
    assert set(c) == set(protocol.C_NAMES), set(c) ^ set(protocol.C_NAMES)
    for name, value in c.items():
        assert protocol.C_NAMES[name] == value, name


def test_sizes_are_consistent():
    assert protocol.MAX_PACKET == 517 and protocol.MAX_ENCODED == 520
    assert protocol.INFO_V1_SIZE == 72 and protocol.INFO_V2_SIZE == 84
    assert protocol.INFO_V3_SIZE == 86 and protocol.INFO_SIZE == 86 + 32 + 1 + 64
    assert protocol.ACTION_HEADER == 13 and protocol.PROTOCOL_VERSION == 4
    assert protocol.MAX_OBS == 127
