"""Hardware in the loop: the exported policy running on the board (or on the emulated
STM32F405), checked against the numpy integer model and the float policy.

    hil_run.run_hil(HilOptions(emulator=True))   # `python -m firmware_bridge hil`

1. Load the checkpoint's float policy, the exported header's two hashes (model and
   data) and export's policy_bundle.json beside it; the bundle, the header and the
   checkpoint must name the same model, data and layout, and the board's INFO must carry
   the same model and data hashes (Link.handshake refuses it).
2. Open loop: replay rollout states of the float policy (export.rollouts, as export
   calibrates and tests on) through STEP; every board action is compared with the
   reference (int: export/int_reference.py on the bundle's integer model, bit for bit;
   float32: the torch policy within the export's tolerance) and with the float policy.
3. Closed loop: the sim flies the same episodes with the board in the loop, with the
   reference and with the float policy; success rates are compared.

The tolerances are export's own (export.report.TARGETS); nothing here restates them.
This module measures; hil_report.py judges and writes; hil_run.py runs the two in turn.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export import bundle as bundle_mod
from export import int_reference
from export.bundle import Bundle, BundleError, HeaderIdentity
from export.model import ExportError, FloatPolicy
from export.model import load as load_policy
from export.report import TARGETS
from sim import observation, robustness
from sim.tasks import TaskConfig

from . import codec, paced
from .emulator import Emulator
from .link import Link, StepResult

HEADER_FILES = {"int": "policy.h", "float32": "policy_f32.h"}
EXPORT_REPORT = "export_report.json"
# Seeds of the HIL's own rollouts, apart from export's (1000 calibration, 2000 test,
# 3000 closed loop) so the board is checked on states the quantiser never saw.
STATES_SEED_OFFSET = 4000
EPISODES_SEED_OFFSET = 5000
# The handshake waits this many request timeouts: a real board may still be booting (or
# resetting, as Arduino-style USB-serial adapters do) when the port opens.
HANDSHAKE_TIMEOUTS = 10
PORT_TIMEOUT = 1.0
# QEMU loses nothing: its replies are only late when the host is busy (a loaded CI machine).
EMULATOR_TIMEOUT = 10.0


class HilError(RuntimeError):
    """The HIL cannot run (missing or inconsistent inputs); the message says why."""


@dataclass
class HilOptions:
    port: str | None = None  # pyserial URL of a real board; None with emulator=True
    emulator: bool = False
    elf: Path | None = None  # emulator: run this ELF instead of building one
    checkpoint: str = "runs/latest"
    artifacts: Path = Path("artifacts")
    reports: Path = Path("reports")
    states: int = 1000
    episodes: int = 5
    scheme: str = "int"
    seed: int = 0
    timeout: float | None = None  # per request attempt; None: PORT_TIMEOUT / EMULATOR_TIMEOUT
    baudrate: int = 921600
    # Closed loop: lockstep (the emulator's default) applies latency_ms to the nominal
    # row; paced (a real board's default) runs in real time and applies each answer when
    # it arrives (paced.py).
    latency_ms: float = 10.0
    paced: bool | None = None  # None: paced for a real port, lockstep for the emulator
    rows: str = "in-range"  # closed-loop rows: ROW_SETS
    video: Path | None = None  # the closed-loop episodes, board beside reference (.mp4/.gif)


@dataclass
class Reference:
    """What the board's answers are held to."""

    name: str
    act: Callable[[np.ndarray], np.ndarray]
    bit_exact: bool  # int: the board must equal `act` exactly
    max_vs_float: float  # export's tolerances for this scheme
    mean_vs_float: float | None


@dataclass
class Inputs:
    policy: FloatPolicy
    header: HeaderIdentity  # the data header the board is built from: its two hashes
    bundle: Bundle  # policy_bundle.json beside it: everything else
    reference: Reference

    @property
    def data_hash(self) -> str:
        return self.header.data_hash


def load_inputs(opts: HilOptions) -> Inputs:
    """The float policy, the exported header's identity, the bundle and the reference;
    refuses, in one line naming both sides, a missing bundle, a bundle of another model,
    data or layout than the header and the checkpoint."""
    if opts.scheme not in HEADER_FILES:
        raise HilError(f"scheme must be one of {', '.join(HEADER_FILES)}, not {opts.scheme!r}")
    artifacts = Path(opts.artifacts)
    path = artifacts / HEADER_FILES[opts.scheme]
    bundle_path = artifacts / bundle_mod.BUNDLE_NAME
    if not path.is_file() or not (artifacts / EXPORT_REPORT).is_file():
        raise HilError(
            f"{path} or {artifacts / EXPORT_REPORT} is missing: export the checkpoint first "
            f"(`python -m export {opts.checkpoint} --out {artifacts}`)"
        )
    if not bundle_path.is_file():
        raise HilError(
            f"{path} has no {bundle_mod.BUNDLE_NAME} beside it ({bundle_path} is missing): "
            f"export the checkpoint again (`python -m export {opts.checkpoint} --out {artifacts}`)"
        )
    try:
        header = bundle_mod.header_identity(path)
        bundle = bundle_mod.load(bundle_path)
        policy = load_policy(opts.checkpoint)
    except (BundleError, ExportError) as e:
        raise HilError(" ".join(str(e).split())) from None
    short = bundle_mod.short
    if bundle.model_hash != header.model_hash:
        raise HilError(
            f"{bundle_path} is of model {short(bundle.model_hash)}, {path} of model "
            f"{short(header.model_hash)}: they come from different exports; export again"
        )
    if bundle.data_hash(opts.scheme) != header.data_hash:
        raise HilError(
            f"{path} holds data {short(header.data_hash)}, {bundle_path} describes data "
            f"{short(bundle.data_hash(opts.scheme))} (model {short(header.model_hash)} in "
            "both): the header comes from another export of this checkpoint; export again"
        )
    expected = policy.spec.layout_text
    if bundle.layout_text != expected:
        raise HilError(
            f"{bundle_path} observes {bundle.layout_text}; checkpoint {opts.checkpoint} "
            f"observes {expected}: re-export it"
        )
    if header.model_hash != policy.model_hash:
        raise HilError(
            f"{path} holds model {short(header.model_hash)}, checkpoint {opts.checkpoint} "
            f"is {short(policy.model_hash)}: re-export it"
        )
    if opts.scheme == "int":
        params = bundle.int_params()
        ref = Reference(
            "numpy integer model (export/int_reference.py)",
            lambda obs: int_reference.act(params, obs),
            True,
            TARGETS["int_max_abs_error"],
            TARGETS["int_mean_abs_error"],
        )
    else:
        ref = Reference(
            "float policy (torch)", policy.act, False, TARGETS["f32_header_max_abs_diff"], None
        )
    return Inputs(policy, header, bundle, ref)


@contextlib.contextmanager
def board(opts: HilOptions, header: HeaderIdentity) -> Iterator[tuple[Link, bool]]:
    """A handshaken link to the firmware running ``header``'s model and data, and whether
    it is emulated. The emulator (and QEMU) is stopped however the block exits."""
    if opts.emulator:
        with Emulator(
            header.path,
            elf=opts.elf,
            expected_hash=header.model_hash,
            link_timeout=opts.timeout or EMULATOR_TIMEOUT,
        ) as emu:
            _check_data(emu.link.info, header)
            yield emu.link, True
        return
    timeout = opts.timeout or PORT_TIMEOUT
    with Link(opts.port, baudrate=opts.baudrate, timeout=timeout) as link:
        link.handshake(
            header.model_hash,
            expected_data_hash=header.data_hash,
            deadline=HANDSHAKE_TIMEOUTS * timeout,
        )
        yield link, False


def _check_data(info: codec.Info, header: HeaderIdentity) -> None:
    """The board's data hash (INFO) against the header's, naming both."""
    if header.data_hash and info.data_hash_hex != header.data_hash:
        raise HilError(
            f"data hash mismatch: the board runs data {bundle_mod.short(info.data_hash_hex)}, "
            f"{header.path} holds {bundle_mod.short(header.data_hash)} (model "
            f"{bundle_mod.short(header.model_hash)}): flash the firmware built for this export"
        )


@dataclass
class BoardAnswer:
    """The board as one vehicle's policy (protocol v4): ``start`` sends RESET when an
    episode begins; each call sends the observation's estimate and sensor numbers and
    returns the board's command. The board builds the rest of the observation itself;
    with ``check`` its command is compared with ``check`` on the sim's own observation
    (the integer reference: equal bit for bit when the board's kept blocks evolve as the
    sim's)."""

    link: Link
    columns: np.ndarray  # sim.observation.wire_columns of the layout
    check: Callable[[np.ndarray], np.ndarray] | None = None
    results: list[StepResult] = field(default_factory=list)
    steps: int = 0
    differing: int = 0  # steps whose command differs from check's

    def start(self) -> None:
        self.link.reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        r = self.link.step(obs[self.columns])
        self.results.append(r)
        self.steps += 1
        if self.check is not None:
            want = np.asarray(self.check(obs[None, :]), dtype=np.float32)[0]
            self.differing += int(not np.array_equal(want, r.action))
        return r.action


def recorded_episodes(act, spec, n: int, seed: int) -> list[np.ndarray]:
    """Whole episodes flown by ``act`` (one vehicle each, seeds seed, seed + 1, ...)
    until at least ``n`` observations: the sim's own observations, board blocks
    included, in the order a board meets them."""
    task = spec.task_config()
    episodes, total, k = [], 0, 0
    while total < n:
        r = paced.fly(paced.fixed_answer(act, 0), task, 1, seed + k, max_delay=0)
        episodes.append(r.obs)
        total += len(r.obs)
        k += 1
    return episodes


def open_loop(link: Link, episodes: list[np.ndarray], spec) -> dict:
    """Each recorded episode through the board: RESET, then one STEP per observation."""
    answer = BoardAnswer(link, observation.wire_columns(spec.obs_layout))
    actions = []
    start = time.monotonic()
    for obs in episodes:
        answer.start()
        actions += [answer(o) for o in obs]
    wall = time.monotonic() - start
    return {
        "actions": np.array(actions, dtype=np.float32),
        "results": answer.results,
        "wall_s": wall,
    }


# The robustness rows the closed loop flies with the board in it (sim.robustness):
# "in-range" is the nominal row, every row inside the training ranges and the combined
# rows; "short" only the nominal and the all-ends combined row.
ROW_SETS = ("in-range", "short")


def hil_rows(task: TaskConfig, which: str) -> list[str]:
    rows = robustness.rows()
    if which == "short":
        return ["nominal", "combined worst case"]
    return [r.name for r in rows if r.inside or r.group in ("nominal", "combined")]


def closed_loop_task(task: TaskConfig, row: str, latency_ms: float | None) -> TaskConfig:
    """``task`` in the world of robustness row ``row``; the nominal row with the link's
    ``latency_ms`` (whole milliseconds, else a HilError saying so)."""
    by_name = {r.name: r for r in robustness.rows()}
    t = robustness.row_task(task, by_name[row])
    if row == "nominal" and latency_ms is not None:
        if latency_ms < 0 or abs(latency_ms - round(latency_ms)) > 1e-6:
            raise HilError(f"latency {latency_ms:g} ms; allowed: whole milliseconds >= 0")
        t = t.replace(latency_s=(round(latency_ms) / 1000,) * 2)
    return t


def closed_loop(link: Link, inputs: Inputs, opts: HilOptions, paced_run: bool, seed: int) -> dict:
    """Each HIL row flown one vehicle at a time with the board in the loop (RESET at
    each episode), by the reference and by the float policy, from the same initial
    states."""
    spec = inputs.policy.spec
    task = spec.task_config()
    columns = observation.wire_columns(spec.obs_layout)
    rows, results = {}, []
    for name in hil_rows(task, opts.rows):
        t = closed_loop_task(task, name, None if paced_run else opts.latency_ms)
        if paced_run:
            stats = paced.PacedStats()
            start = time.monotonic()
            answer = paced.board_answer(link, t, stats, columns)
            board_run = paced.fly(answer, t, opts.episodes, seed, link, start=link.reset)
            wall = time.monotonic() - start
            delay = int(np.median(stats.delay_steps)) if stats.delay_steps else 0
            flyers = {"reference": inputs.reference.act, "float": inputs.policy.act}
            runs = {"board": board_run}
            for who, act in flyers.items():
                runs[who] = paced.fly(paced.fixed_answer(act, delay), t, opts.episodes, seed)
            results += stats.results
            latency = {
                "latency_ms_median": 1000 * delay / t.physics_hz,
                "deadline_misses": stats.deadline_misses,
                "board_steps": stats.steps,
                "wall_s": wall,
            }
        else:
            delay = t.latency_steps[1]
            board = BoardAnswer(link, columns, inputs.reference.act)

            def board_delayed(obs, b=board, d=delay):
                return b(obs), d

            runs = {
                "board": paced.fly(board_delayed, t, opts.episodes, seed, start=board.start),
                "reference": paced.fly(
                    paced.fixed_answer(inputs.reference.act, delay), t, opts.episodes, seed
                ),
                "float": paced.fly(
                    paced.fixed_answer(inputs.policy.act, delay), t, opts.episodes, seed
                ),
            }
            results += board.results
            latency = {
                "latency_ms": 1000 * t.latency_s[1],
                "deadline_misses": None,
                "board_steps": board.steps,
                "steps_differing_from_reference": board.differing,
            }
        rows[name] = {"runs": runs, **latency}
    return {
        "rows": rows,
        "runs": rows["nominal"]["runs"],
        "results": results,
        "task": spec.task,
        "paced": paced_run,
    }


def bytes_per_step(inputs: np.ndarray, act_dim: int) -> tuple[int, int]:
    """Encoded STEP request (``inputs``: the estimate and sensor numbers) and ACTION
    reply frames, delimiters included (COBS makes the length independent of the
    values)."""
    step = codec.encode(codec.Step(tuple(float(v) for v in inputs)), 1)
    action = codec.encode(codec.Action((0.0,) * act_dim, 0, 0), 1)
    return len(step), len(action)
