"""python -m bench [NAME ...]: run benchmark scripts; each rewrites its section of
docs/benchmarks.md. With no name, runs every script listed in ALL."""

from __future__ import annotations

import importlib
import sys

ALL = [
    "sim_speed",
    "train_speed",
    "train_profile",
    "robustness",
    "presets",
    "train_takeoff",
    "export_speed",
    "firmware_speed",
    "fuzz",
    "resume",
    "render_speed",
]


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")][:1] or ALL
    rest = [a for a in argv if a not in names]
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"error: no benchmark {name!r}; known: {', '.join(ALL)}", file=sys.stderr)
            return 2
        print(f"== bench {name}", flush=True)
        module.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
