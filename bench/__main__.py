"""python -m bench [NAME] [OPTIONS]: run benchmark scripts; each rewrites its section of
docs/benchmarks.md. With no name, runs every script listed in ALL; options after NAME go
to that script (python -m bench NAME --help lists them)."""

from __future__ import annotations

import importlib
import sys

from train import sigint

if __name__ == "__main__":
    sigint.install("bench")

ALL = [
    "sim_speed",
    "train_speed",
    "train_profile",
    "robustness",
    "presets",
    "train_takeoff",
    "export_speed",
    "firmware_speed",
    "crazyflie",
    "crazyflie_board",
    "fuzz",
    "resume",
    "render_speed",
]

USAGE = f"""usage: python -m bench [-h] [NAME [OPTIONS ...]]

{__doc__}
benchmarks (NAME):
  {chr(10).join("  " + n for n in ALL).strip()}

options:
  -h, --help  show this help message and exit"""


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    names = [a for a in argv if not a.startswith("-")][:1] or ALL
    rest = [a for a in argv if a not in names]
    if rest and names == ALL:
        print(f"error: options {' '.join(rest)} need a benchmark NAME first", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"error: no benchmark {name!r}; known: {', '.join(ALL)}", file=sys.stderr)
            return 2
        print(f"== bench {name}", flush=True)
        # A script's failing status (fuzz: a crash) is the command's, after the others ran;
        # scripts that return their markdown section (or nothing) have succeeded.
        result = module.main(rest)
        status = max(status, result if isinstance(result, int) else 0)
    return status


if __name__ == "__main__":
    sigint.run(lambda: main(sys.argv[1:]), "bench")
