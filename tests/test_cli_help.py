"""Every command the README and docs name prints its --help: exit 0, a usage line and
its options. The top-level entry points run as a user runs them (python -m ...); their
subcommands run in this process, through the same main functions."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (python -m PACKAGE, an option its help must list)
ENTRY_POINTS = [
    ("sim", "bench"),
    ("train", "--threads"),
    ("export", "--out"),
    ("firmware_bridge", "hil"),
    ("bench", "export_speed"),
]


@pytest.mark.parametrize("package,option", ENTRY_POINTS, ids=[p for p, _ in ENTRY_POINTS])
def test_entry_point_help(package, option):
    proc = subprocess.run(
        [sys.executable, "-m", package, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:"), proc.stdout
    assert option in proc.stdout
    assert "Traceback" not in proc.stderr


def _sim(argv):
    from sim.__main__ import main

    return main(argv)


def _train(argv):
    from train.__main__ import main

    return main(argv)


def _bridge(argv):
    from firmware_bridge.__main__ import main

    return main(argv)


def _bench(argv):
    sys.path.insert(0, str(ROOT))  # bench/ is scripts beside the packages, not installed
    from bench.__main__ import main

    return main(argv)


def _bench_names():
    sys.path.insert(0, str(ROOT))
    from bench.__main__ import ALL

    return ALL


SUBCOMMANDS = [
    (_sim, ["bench"], "--seconds"),
    (_sim, ["fly"], "--action"),
    (_train, [], "--total-env-steps"),
    (_train, ["evaluate"], "--episodes"),
    (_train, ["robustness"], "--episodes"),
    (_train, ["sweep"], "--grid"),
    (_bridge, ["emulate"], "--model"),
    (_bridge, ["hil"], "--emulator"),
    (_bridge, ["flash"], "--method"),
    (_bridge, ["crazyflie"], "--thrust-max"),
    *((_bench, [name], "-h") for name in _bench_names()),
]


@pytest.mark.parametrize(
    "main,argv,option",
    SUBCOMMANDS,
    ids=[f"{m.__name__[1:]}-{' '.join(a) or 'train'}" for m, a, _ in SUBCOMMANDS],
)
def test_subcommand_help(main, argv, option, capsys):
    if argv == ["sweep"]:
        pytest.importorskip("ray")  # the sweep extra; its options are parsed before Ray
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.removeprefix(f"== bench {argv[0]}\n" if argv else "")
    assert out.startswith("usage:"), out
    assert option in out


def test_train_help_lists_every_field_with_a_percent_sign_intact(capsys):
    """Field docs hold '%' ("~25% faster"): escaped once where the help is built."""
    from train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "~25% faster" in " ".join(capsys.readouterr().out.split())


def test_a_help_string_with_percent_signs_cannot_break_the_parser():
    from dataclasses import dataclass, field

    from train import config

    @dataclass
    class Doc:
        ratio: float = field(default=0.5, metadata={"help": "50% of it, % f and %(x)s"})

    ap = argparse.ArgumentParser()
    real = config.fields
    config.fields = lambda _: [f for f in real(Doc)]
    try:
        config.add_arguments(ap)
    finally:
        config.fields = real
    assert "50% of it, % f and %(x)s" in " ".join(ap.format_help().split())


def test_bench_goes_on_after_a_script_that_returns_its_section(monkeypatch):
    import importlib
    import types

    sys.path.insert(0, str(ROOT))
    ran = []
    scripts = {
        "bench.sim_speed": lambda argv: ran.append("sim_speed") or "| a section |",
        "bench.fuzz": lambda argv: ran.append("fuzz") or 1,  # a crash found
    }
    real = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name: types.SimpleNamespace(main=scripts[name]) if name in scripts else real(name),
    )
    assert _bench(["sim_speed"]) == 0
    assert _bench(["fuzz"]) == 1
    assert ran == ["sim_speed", "fuzz"]
