"""Fuzz the firmware's frame receiver with libFuzzer for a bounded time.

    .venv/bin/python bench/fuzz.py [--seconds 60] [--no-write]

Builds firmware/build/fuzz/fuzz_rx (clang -fsanitize=fuzzer,address,undefined; the
harness is firmware/test/fuzz_rx.c), starts from the seed corpus tests/fuzz/corpus (one
file per exchange vector, left unmodified: new inputs go to a scratch directory), and
reports executions, coverage and crashes. Exits 1 on any crash. Writes the "fuzz"
section of docs/benchmarks.md unless --no-write.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402

FIRMWARE = ROOT / "firmware"
HARNESS = FIRMWARE / "build" / "fuzz" / "fuzz_rx"
SEEDS = ROOT / "tests" / "fuzz" / "corpus"


def build() -> None:
    run = subprocess.run(["make", "-C", str(FIRMWARE), "fuzz"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"fuzz build failed (clang with libFuzzer needed):\n{run.stdout}{run.stderr}")


def fuzz(seconds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="qp-fuzz-") as scratch:
        cmd = [
            str(HARNESS), f"-max_total_time={seconds}", "-print_final_stats=1",
            f"-artifact_prefix={scratch}/", "-timeout=5", scratch, str(SEEDS),
        ]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        crashes = sorted(p.name for p in Path(scratch).glob("crash-*"))
        crashes += sorted(p.name for p in Path(scratch).glob("timeout-*"))
    log = run.stderr

    def stat(name: str) -> int:
        m = re.search(rf"stat::{name}:\s+(\d+)", log)
        return int(m.group(1)) if m else -1

    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    return {
        "returncode": run.returncode,
        "executions": stat("number_of_executed_units"),
        "exec_per_s": stat("average_exec_per_sec"),
        "new_units": stat("new_units_added"),
        "coverage": int(cov[-1][0]) if cov else -1,
        "features": int(cov[-1][1]) if cov else -1,
        "crashes": crashes,
        "log_tail": "\n".join(log.splitlines()[-25:]),
        "seeds": len(list(SEEDS.iterdir())),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = ap.parse_args(argv)
    build()
    r = fuzz(args.seconds)
    failed = r["returncode"] != 0 or r["crashes"]
    print(
        f"{r['executions']} executions in {args.seconds} s ({r['exec_per_s']}/s), "
        f"coverage {r['coverage']} edges / {r['features']} features, "
        f"{len(r['crashes'])} crashes, exit {r['returncode']}"
    )
    if failed:
        print(r["log_tail"])
    if not args.no_write:
        write_section(
            "fuzz",
            f"""## Fuzzing the frame receiver

`.venv/bin/python bench/fuzz.py --seconds {args.seconds}` (libFuzzer with ASan and
UBSan; harness `firmware/test/fuzz_rx.c`, {r["seeds"]} seeds from `tests/fuzz/corpus`).
Machine: {machine()}.

| executions | per second | edges covered | features | crashes |
|---|---|---|---|---|
| {r["executions"]} | {r["exec_per_s"]} | {r["coverage"]} | {r["features"]} | {len(r["crashes"])} |

Beyond memory safety the harness checks the protocol's promises on every reply:
well-formed frame, an ACTION only for an intact STEP with finite observations, seq 0
exactly on integrity errors.""",
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
