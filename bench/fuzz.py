"""Fuzz the firmware's frame receiver with libFuzzer, for a time or a number of runs.

    .venv/bin/python bench/fuzz.py [--seconds 60 | --runs 10000000] [--no-write]
    .venv/bin/python -m bench fuzz --runs 10000000

Builds firmware/build/fuzz/fuzz_rx (clang -fsanitize=fuzzer,address,undefined; the
harness is firmware/test/fuzz_rx.c) and starts from the corpus in tests/fuzz/corpus
(named seeds, one per exchange vector, plus what earlier runs kept). New inputs go to a
scratch directory; afterwards the ones that add coverage are merged into
tests/fuzz/corpus (libFuzzer -merge=1, which keeps the existing files and adds only
inputs with new features, so the corpus stays small). Reports executions, wall time,
coverage and crashes; exits 1 on any crash. Unless --no-write, merges the corpus and
writes the "fuzz" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402

FIRMWARE = ROOT / "firmware"
HARNESS = FIRMWARE / "build" / "fuzz" / "fuzz_rx"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def build() -> None:
    run = subprocess.run(["make", "-C", str(FIRMWARE), "fuzz"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"fuzz build failed (clang with libFuzzer needed):\n{run.stdout}{run.stderr}")


def corpus_size() -> tuple[int, int]:
    files = [p for p in CORPUS.iterdir() if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def fuzz(seconds: int | None, runs: int | None, scratch: Path) -> dict:
    limit = [f"-runs={runs}"] if runs else [f"-max_total_time={seconds}"]
    cmd = [
        str(HARNESS), *limit, "-print_final_stats=1", f"-artifact_prefix={scratch}/",
        "-timeout=5", str(scratch / "new"), str(CORPUS),
    ]  # fmt: skip
    (scratch / "new").mkdir()
    start = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    crashes = sorted(p.name for p in scratch.glob("crash-*"))
    crashes += sorted(p.name for p in scratch.glob("timeout-*"))
    crashes += sorted(p.name for p in scratch.glob("oom-*"))
    log = run.stderr

    def stat(name: str) -> int:
        m = re.search(rf"stat::{name}:\s+(\d+)", log)
        return int(m.group(1)) if m else -1

    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    return {
        "command": cmd,
        "returncode": run.returncode,
        "wall_s": wall,
        "executions": stat("number_of_executed_units"),
        "exec_per_s": stat("average_exec_per_sec"),
        "new_units": stat("new_units_added"),
        "coverage": int(cov[-1][0]) if cov else -1,
        "features": int(cov[-1][1]) if cov else -1,
        "crashes": crashes,
        "log_tail": "\n".join(log.splitlines()[-25:]),
    }


def merge(scratch: Path) -> int:
    """Add the scratch inputs with new coverage to the corpus; returns how many."""
    before = corpus_size()[0]
    run = subprocess.run(
        [str(HARNESS), "-merge=1", "-timeout=5", str(CORPUS), str(scratch / "new")],
        capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode != 0:
        sys.exit(f"corpus merge failed:\n{run.stderr[-3000:]}")
    return corpus_size()[0] - before


def section(r: dict, how: str, before: tuple, after: tuple, load: tuple) -> str:
    """The docs/benchmarks.md section for one run."""
    row = " | ".join(
        [
            f"{r['executions']:,}",
            f"{r['wall_s']:.0f} s",
            f"{r['exec_per_s']:,}",
            str(r["coverage"]),
            str(r["features"]),
            f"{r['new_units']:,}",
            str(len(r["crashes"])),
        ]
    )
    flag = how.replace("--runs ", "-runs=").replace("--seconds ", "-max_total_time=")
    return f"""## Fuzzing the frame receiver

`.venv/bin/python -m bench fuzz {how}` (libFuzzer `{flag}`, ASan and UBSan,
clang -O1; harness `firmware/test/fuzz_rx.c`), starting from the {before[0]} inputs of
`tests/fuzz/corpus` ({before[1]:,} bytes). Machine: {machine()}; 1-minute load average
{load[0]:.2f} when it started, {load[1]:.2f} when it ended (the fuzzer's own core included).

| executions | wall time | per second | edges covered | features | inputs added | crashes |
|---|---|---|---|---|---|---|
| {row} |

The inputs with new coverage were then merged back with `-merge=1`: the corpus now
holds {after[0]} files, {after[1]:,} bytes ({after[2]} added).

Every byte takes the boards' path: into the receive ring, drained by
`qp_device_poll`. After each reply the modelled device stays busy for as many byte
times as the reply is long (plus 8 for a policy call), so bytes queue in the ring and a
flood of short frames overflows it. Beyond memory safety the harness checks the
protocol's promises on every reply: well-formed frame, an ACTION only for an intact STEP
with finite inputs after a READY (or a repeat of the last stepped seq, answered with
the same bytes), every action finite, NOT_RESET only before the first RESET, the board's
kept blocks stepped once per new ACTION and never by an ERROR or a repeat (the integral
within its limit, the past actions in [-1, 1]), seq 0 exactly on integrity errors, a
reply for every non-empty frame the device received and for nothing else, and every
byte the full ring dropped counted, in the ring and in INFO (protocol version 4)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    limit = ap.add_mutually_exclusive_group()
    limit.add_argument("--seconds", type=int, default=None, help="wall-clock budget (default 60)")
    limit.add_argument("--runs", type=int, default=None, help="executions (libFuzzer -runs)")
    ap.add_argument(
        "--no-write", action="store_true", help="touch neither the corpus nor docs/benchmarks.md"
    )
    args = ap.parse_args(argv)
    seconds = None if args.runs else (args.seconds or 60)
    build()
    seeds_before, bytes_before = corpus_size()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="qp-fuzz-") as tmp:
        r = fuzz(seconds, args.runs, Path(tmp))
        load_after = os.getloadavg()
        failed = r["returncode"] != 0 or r["crashes"]
        added = merge(Path(tmp)) if not (failed or args.no_write) else 0
    files_after, bytes_after = corpus_size()
    print(
        f"{r['executions']} executions in {r['wall_s']:.0f} s ({r['exec_per_s']}/s), "
        f"coverage {r['coverage']} edges / {r['features']} features, "
        f"{len(r['crashes'])} crashes, exit {r['returncode']}"
    )
    if failed:
        print(r["log_tail"])
    if not args.no_write and not failed:
        print(f"corpus: {seeds_before} -> {files_after} files ({bytes_after:,} bytes)")
        how = f"--runs {args.runs}" if args.runs else f"--seconds {seconds}"
        write_section(
            "fuzz",
            section(
                r, how, (seeds_before, bytes_before), (files_after, bytes_after, added),
                (load_before[0], load_after[0]),
            ),
        )  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
