"""Fuzz the firmware's frame receiver with libFuzzer, for a time or a number of runs.

    .venv/bin/python bench/fuzz.py [--seconds 60 | --runs 10000000] [--no-write]
    .venv/bin/python -m bench fuzz --runs 10000000
    .venv/bin/python -m bench fuzz --flight [--artifacts DIR] --runs 1000000

Builds firmware/build/fuzz/fuzz_rx (clang -fsanitize=fuzzer,address,undefined; the
harness is firmware/test/fuzz_rx.c) and starts from the corpus in tests/fuzz/corpus
(named seeds, one per exchange vector, plus what earlier runs kept). New inputs go to a
scratch directory; afterwards the ones that add coverage are merged into
tests/fuzz/corpus (libFuzzer -merge=1, which keeps the existing files and adds only
inputs with new features, so the corpus stays small). Reports executions, wall time,
coverage and crashes; exits 1 on any crash. Unless --no-write, merges the corpus and
writes the "fuzz" section of docs/benchmarks.md.

--flight fuzzes the flight build's receiver instead (firmware/build/fuzz/flight/
fuzz_rx_flight, `make fuzz-flight`: the same harness with the FLIGHT_* messages' checks,
over the Crazyflie app's own C files) from tests/fuzz/corpus_flight, and writes the
"fuzz_flight" section. Its app: DIR/crazyflie with --artifacts DIR (`make export
crazyflie`), else that of a freshly initialised 64-64 hover actor exported into a
temporary directory (the trained policy's shape; the checks hold whatever the weights).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402

FIRMWARE = ROOT / "firmware"


@dataclass(frozen=True)
class Target:
    """A harness, the make target that builds it and its corpus."""

    harness: Path
    make: tuple[str, ...]
    corpus: Path


PLAIN = Target(FIRMWARE / "build/fuzz/fuzz_rx", ("fuzz",), ROOT / "tests/fuzz/corpus")


def flight(app: Path) -> Target:
    """The flight build's harness over the app in ``app`` (its src/*.c)."""
    return Target(
        FIRMWARE / "build/fuzz/flight/fuzz_rx_flight",
        ("fuzz-flight", f"CRAZYFLIE_APP={app.resolve()}"),
        ROOT / "tests/fuzz/corpus_flight",
    )


def build(target: Target) -> None:
    run = subprocess.run(
        ["make", "-C", str(FIRMWARE), *target.make], capture_output=True, text=True
    )
    if run.returncode != 0:
        sys.exit(f"fuzz build failed (clang with libFuzzer needed):\n{run.stdout}{run.stderr}")


def corpus_size(target: Target) -> tuple[int, int]:
    files = [p for p in target.corpus.iterdir() if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# libFuzzer's -timeout is wall-clock: an input runs in milliseconds, but at niceness 19
# beside CPU-bound processes a 5 s limit fired on an input that took 1-6 ms alone.
TIMEOUT_S = 60
LOAD_SAMPLE_S = 5


def fuzz(target: Target, seconds: int | None, runs: int | None, scratch: Path) -> dict:
    limit = [f"-runs={runs}"] if runs else [f"-max_total_time={seconds}"]
    cmd = [
        str(target.harness), *limit, "-print_final_stats=1", f"-artifact_prefix={scratch}/",
        f"-timeout={TIMEOUT_S}", str(scratch / "new"), str(target.corpus),
    ]  # fmt: skip
    (scratch / "new").mkdir()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = os.getloadavg()[0]
    while True:  # the load while it runs: its start and end say little on a shared machine
        try:
            _, log = proc.communicate(timeout=LOAD_SAMPLE_S)
            break
        except subprocess.TimeoutExpired:
            peak = max(peak, os.getloadavg()[0])
    wall = time.monotonic() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    crashes = sorted(p.name for p in scratch.glob("crash-*"))
    crashes += sorted(p.name for p in scratch.glob("timeout-*"))
    crashes += sorted(p.name for p in scratch.glob("oom-*"))

    def stat(name: str) -> int:
        m = re.search(rf"stat::{name}:\s+(\d+)", log)
        return int(m.group(1)) if m else -1

    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    return {
        "command": cmd,
        "returncode": proc.returncode,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_peak": peak,
        "load_sampled": f"every {LOAD_SAMPLE_S} s",
        "executions": stat("number_of_executed_units"),
        "exec_per_s": stat("average_exec_per_sec"),
        "new_units": stat("new_units_added"),
        "coverage": int(cov[-1][0]) if cov else -1,
        "features": int(cov[-1][1]) if cov else -1,
        "crashes": crashes,
        "log_tail": "\n".join(log.splitlines()[-25:]),
    }


def merge(target: Target, scratch: Path) -> int:
    """Add the scratch inputs with new coverage to the corpus; returns how many."""
    before = corpus_size(target)[0]
    run = subprocess.run(
        [str(target.harness), "-merge=1", f"-timeout={TIMEOUT_S}", str(target.corpus),
         str(scratch / "new")],
        capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode != 0:
        sys.exit(f"corpus merge failed:\n{run.stderr[-3000:]}")
    return corpus_size(target)[0] - before


def row(r: dict) -> str:
    return " | ".join(
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


def section(r: dict, how: str, before: tuple, after: tuple, load: tuple) -> str:
    """The docs/benchmarks.md section for one run."""
    flag = how.replace("--runs ", "-runs=").replace("--seconds ", "-max_total_time=")
    return f"""## Fuzzing the frame receiver

`.venv/bin/python -m bench fuzz {how}` (libFuzzer `{flag}`, ASan and UBSan,
clang -O1; harness `firmware/test/fuzz_rx.c`), starting from the {before[0]} inputs of
`tests/fuzz/corpus` ({before[1]:,} bytes). Machine: {machine()}; 1-minute load average
{load[0]:.2f} when it started, {load[1]:.2f} when it ended (the fuzzer's own core included).

| executions | wall time | per second | edges covered | features | inputs added | crashes |
|---|---|---|---|---|---|---|
| {row(r)} |

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


def flight_section(
    r: dict, how: str, app: str, before: tuple, after: tuple, load: tuple, nice: int
) -> str:
    """The docs/benchmarks.md section for a run of the flight build's harness."""
    flag = how.replace("--runs ", "-runs=").replace("--seconds ", "-max_total_time=")
    command = f"{'nice -n ' + str(nice) + ' ' if nice else ''}.venv/bin/python -m bench fuzz"
    share = r["cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else 0.0
    return f"""### The flight build's receiver

`{command} --flight {how}`
(libFuzzer `{flag} -timeout={TIMEOUT_S}`, ASan and UBSan, clang -O1).
`make -C firmware fuzz-flight` builds the harness, `firmware/test/fuzz_rx.c` with
`-DQP_FLIGHT_APP`, over `core/qp_flight_device.c`, the shim's stabiliser and
{app}. It started from the {before[0]} inputs of `tests/fuzz/corpus_flight`
({before[1]:,} bytes).

Machine: {machine()}, shared. The 1-minute load average was {load[0]:.2f} when the run
started and {load[1]:.2f} when it ended, and at most {r["load_peak"]:.2f} in between
(sampled {r["load_sampled"]}). At niceness {nice} the fuzzer had {r["cpu_s"]:,.0f} s of CPU
in {r["wall_s"]:,.0f} s of wall time ({share:.0%} of a core), so the wall time and the
rate are those of a loaded machine.

| executions | wall time | per second | edges covered | features | inputs added | crashes |
|---|---|---|---|---|---|---|
| {row(r)} |

Merged back with `-merge=1`: the corpus now holds {after[0]} files, {after[1]:,} bytes
({after[2]} added). Every check of the plain harness holds here too, and for the
FLIGHT_* messages (docs/protocol.md section 12): each is answered, or refused with the
code the checks' order gives (BAD_LENGTH with the type, then NOT_STARTED); FLIGHT_FORCES
only after a FLIGHT_START, for a FLIGHT_TICKS of 70 bytes or a repeat of the last ticked
seq (answered with the same bytes, whatever the repeat's length); forces finite and in
[0, 1], all 0 with the motors off (mode off or fault); a state the app must refuse (a
non-finite estimate or gyro, a quaternion far from unit norm) never ticked into a flying
mode; the policy's action in [-1, 1]; policy and idle ticks adding up to the ticks asked
and policy_calls to the policy ticks since the start; found 0 or 1 in the VALUE replies.
Each input boots the app too (its controller state, its parameters' first values)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    limit = ap.add_mutually_exclusive_group()
    limit.add_argument("--seconds", type=int, default=None, help="wall-clock budget (default 60)")
    limit.add_argument("--runs", type=int, default=None, help="executions (libFuzzer -runs)")
    ap.add_argument(
        "--no-write", action="store_true", help="touch neither the corpus nor docs/benchmarks.md"
    )
    ap.add_argument("--flight", action="store_true", help="the flight build's receiver")
    ap.add_argument(
        "--artifacts", type=Path, help="with --flight: an export with its app (default: a fixture)"
    )
    args = ap.parse_args(argv)
    if args.artifacts and not args.flight:
        ap.error("--artifacts names the app of --flight")
    seconds = None if args.runs else (args.seconds or 60)
    with tempfile.TemporaryDirectory(prefix="qp-fuzz-") as tmp:
        app = None
        target = PLAIN
        if args.flight:
            app = flight_app(args.artifacts, Path(tmp) / "app")
            target = flight(app)
        build(target)
        seeds_before, bytes_before = corpus_size(target)
        load_before = os.getloadavg()
        r = fuzz(target, seconds, args.runs, Path(tmp))
        load_after = os.getloadavg()
        failed = r["returncode"] != 0 or r["crashes"]
        if failed:
            keep_crashes(Path(tmp), r["crashes"])
        added = merge(target, Path(tmp)) if not (failed or args.no_write) else 0
    files_after, bytes_after = corpus_size(target)
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
        if args.flight:
            which = (
                f"the app in `{args.artifacts}/crazyflie`"
                if args.artifacts
                else "the app of a freshly initialised 64-64 hover actor (export.fixtures)"
            )
            if args.artifacts:
                how = f"--artifacts {args.artifacts} {how}"
            write_section(
                "fuzz_flight",
                flight_section(
                    r, how, which, (seeds_before, bytes_before),
                    (files_after, bytes_after, added), (load_before[0], load_after[0]),
                    os.nice(0),
                ),
                after="fuzz",
            )  # fmt: skip
            return 0
        write_section(
            "fuzz",
            section(
                r, how, (seeds_before, bytes_before), (files_after, bytes_after, added),
                (load_before[0], load_after[0]),
            ),
        )  # fmt: skip
    return 1 if failed else 0


def flight_app(artifacts: Path | None, scratch: Path) -> Path:
    """The app directory to fuzz: artifacts/crazyflie, or a fixture's written in scratch."""
    if artifacts is not None:
        app = artifacts / "crazyflie"
        if not (app / "src" / "quadpilot_controller.c").is_file():
            sys.exit(f"{artifacts} holds no Crazyflie app: run `make export crazyflie` first")
        return app
    from bench.firmware_speed import export_fixture
    from export import crazyflie

    out = export_fixture(scratch)[0].parent
    crazyflie.write_app(out)
    return out / "crazyflie"


def keep_crashes(scratch: Path, names: list[str]) -> None:
    """The crashing inputs outlive the scratch directory: copied to the working directory."""
    for name in names:
        (Path.cwd() / name).write_bytes((scratch / name).read_bytes())
        print(f"kept {name} in {Path.cwd()}")


if __name__ == "__main__":
    sys.exit(main())
