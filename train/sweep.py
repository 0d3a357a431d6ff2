"""python -m train sweep: many seeds and configurations at once, on Ray Tune.

    python -m train sweep --preset hover-nominal --seeds 1 2 3 4 --grid num_envs=32,128
    python -m train sweep --preset hover --seeds 1 2 --loguniform actor_lr=3e-4:3e-3 \\
        --samples 4 --pick best
    python -m train sweep ... --address ray://head:10001      an existing Ray cluster

Every trial is an ordinary run directory under the sweep's directory (``--out``): it can
be resumed (``python -m train --resume DIR``), evaluated and exported like any other run.
The search space is checked in full before Ray starts: every combination of the grid and
both ends of every range must make a valid configuration. When the trials end, the sweep
writes ``sweep.json``, ``sweep.md`` (a table) and ``sweep.png`` (time to the threshold and
success per trial) into its directory. ``--pick best`` then flies every finished trial's
best.pt through the robustness suite and points ``runs/latest`` and
``runs/latest-<preset>`` at the trial with the highest mean success over its rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from pathlib import Path

from train import run_files
from train.config import PRESETS, TrainConfig, add_arguments, from_args, make_config

# Fields a sweep sets itself, or that are mappings rather than values.
NOT_SWEPT = {"preset", "task", "seed", "run_dir", "name", "task_overrides", "train_task_overrides"}
THRESHOLD = 0.95  # "time to threshold" when the configuration has no stop_success


class SweepError(ValueError):
    """A search space that cannot run; raised before Ray starts."""


@dataclass(frozen=True)
class Space:
    """What varies between trials: seeds x grid, each point drawn ``samples`` times from
    the ranges (``ranges``: field -> (kind, low, high), kind uniform or loguniform)."""

    seeds: tuple[int, ...]
    grid: dict[str, tuple]
    ranges: dict[str, tuple[str, float, float]]
    samples: int

    def size(self) -> int:
        points = math.prod(len(v) for v in self.grid.values()) if self.grid else 1
        return len(self.seeds) * points * self.samples


def sweepable() -> dict[str, type]:
    """Field name -> its type, for the fields a sweep may vary."""
    out = {}
    for f in fields(TrainConfig):
        if f.name in NOT_SWEPT:
            continue
        default = f.default_factory() if f.default is MISSING else f.default
        out[f.name] = type(default)
    return out


def _allowed() -> str:
    return ", ".join(sorted(sweepable()))


def _field(option: str, key: str) -> type:
    kinds = sweepable()
    if key in NOT_SWEPT:
        raise SweepError(
            f"{option} {key}: not sweepable"
            + (" (use --seeds)" if key == "seed" else "")
            + f"; allowed: {_allowed()}"
        )
    if key not in kinds:
        raise SweepError(f"{option} {key}: unknown field; allowed: {_allowed()}")
    return kinds[key]


def _value(option: str, key: str, kind: type, text: str):
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if kind is tuple:  # layer widths: 64x64
            return tuple(int(w) for w in text.split("x"))
        return kind(text)
    except ValueError:
        example = {bool: "true, false", tuple: "widths such as 64x64"}.get(kind, kind.__name__)
        raise SweepError(
            f"{option} {key}={text!r}: not a valid value; allowed: {example}"
        ) from None


def _split(option: str, text: str) -> tuple[str, str]:
    key, sep, values = text.partition("=")
    if not sep or not key:
        raise SweepError(f"{option} {text!r}: expected FIELD=VALUES; allowed fields: {_allowed()}")
    return key.strip(), values.strip()


def parse_grid(items: list[str]) -> dict[str, tuple]:
    grid: dict[str, tuple] = {}
    for text in items:
        key, values = _split("--grid", text)
        kind = _field("--grid", key)
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not parts:
            raise SweepError(f"--grid {key}=: no values; give one or more, e.g. --grid {key}=A,B")
        if key in grid:
            raise SweepError(f"--grid {key}: given twice; list all its values once")
        grid[key] = tuple(_value("--grid", key, kind, p) for p in parts)
    return grid


def parse_ranges(uniform: list[str], loguniform: list[str]) -> dict[str, tuple[str, float, float]]:
    ranges: dict[str, tuple[str, float, float]] = {}
    for kind_name, items in (("uniform", uniform), ("loguniform", loguniform)):
        option = f"--{kind_name}"
        for text in items:
            key, bounds = _split(option, text)
            kind = _field(option, key)
            if kind not in (int, float):
                raise SweepError(
                    f"{option} {key}: a range needs a numeric field; {key} is "
                    f"{kind.__name__} (use --grid)"
                )
            lo_text, sep, hi_text = bounds.partition(":")
            if not sep:
                raise SweepError(f"{option} {key}={bounds!r}: expected LOW:HIGH, e.g. 1e-4:1e-2")
            lo = _value(option, key, kind, lo_text.strip())
            hi = _value(option, key, kind, hi_text.strip())
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise SweepError(f"{option} {key}={bounds}: need finite LOW < HIGH")
            if kind_name == "loguniform" and lo <= 0:
                raise SweepError(f"{option} {key}={bounds}: a log range needs LOW > 0")
            if key in ranges:
                raise SweepError(f"{option} {key}: given twice")
            ranges[key] = (kind_name, lo, hi)
    return ranges


def check(preset: str, fixed: dict, space: Space) -> None:
    """Every configuration the sweep could make, validated (both ends of each range).
    Raises SweepError naming the field and what is allowed."""
    clash = (set(space.grid) & set(space.ranges)) | (
        (set(space.grid) | set(space.ranges)) & set(fixed)
    )
    if clash:
        raise SweepError(f"{', '.join(sorted(clash))}: both fixed and swept, or swept twice")
    if not space.seeds:
        raise SweepError("--seeds: the search space is empty; give one or more seeds")
    if space.samples < 1:
        raise SweepError(f"--samples {space.samples}: allowed: an integer >= 1")
    points = [
        dict(zip(space.grid, combo, strict=True))
        for combo in itertools.product(*space.grid.values())
    ]
    ends = [
        dict(zip(space.ranges, e, strict=True))
        for e in itertools.product(*((r[1], r[2]) for r in space.ranges.values()))
    ]
    for point in points:
        for end in ends:
            try:
                make_trial_config(preset, {**fixed, **point, **end}, space.seeds[0], "check", "x")
            except ValueError as exc:
                raise SweepError(f"the configuration {point | end or fixed}: {exc}") from None


def make_trial_config(preset: str, params: dict, seed: int, out: str, name: str) -> TrainConfig:
    return make_config(preset, **params, seed=seed, run_dir=out, name=name)


def trial_name(seed: int, params: dict, trial_id: str | None) -> str:
    shown = "".join(f"-{k}={_short(v)}" for k, v in sorted(params.items()))
    return f"s{seed}{shown}" + (f"-{trial_id}" if trial_id else "")


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, tuple):
        return "x".join(map(str, v))
    return str(v)


# The trial (runs in a Ray worker) ---------------------------------------------------------
def run_trial(config: dict) -> None:
    """One ordinary training run; reports each evaluation to Tune."""
    from ray import tune

    from train.loop import Trainer

    params = {k: v for k, v in config.items() if not k.startswith("_")}
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    trial_id = tune.get_context().get_trial_id() if config["_ranged"] else None
    name = trial_name(config["_seed"], {k: params[k] for k in config["_named"]}, trial_id)
    cfg = make_trial_config(config["_preset"], params, config["_seed"], config["_out"], name)
    trainer = Trainer(cfg)
    trainer.link_latest = False  # runs/latest moves only on --pick
    trainer.show_progress = False

    def report(row: dict, finished: bool = False) -> None:
        tune.report({**row, "run_dir": str(trainer.run_dir), "finished": finished})

    trainer.run(on_eval=report)
    report(trainer.metrics[-1], finished=True)  # tells a finished trial from a stopped one


# The driver -------------------------------------------------------------------------------
def progress_lines():
    """A Tune callback: one line per trial evaluation, error and end (instead of Tune's
    tables)."""
    from ray import tune

    class Lines(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            name = Path(result.get("run_dir", trial.trial_id)).name
            print(
                f"{name}: {int(result['env_steps']):,} env steps, {result['wall_seconds']:.0f} s, "
                f"evaluation success {result['success_rate']:.0%}",
                flush=True,
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"trial {trial.trial_id} ({_named(trial.config)}) failed", flush=True)

    return Lines()


def _named(config: dict) -> str:
    return trial_name(config.get("_seed"), {k: config[k] for k in config.get("_named", [])}, None)


def tune_space(preset: str, fixed: dict, space: Space, out: Path):
    from ray import tune

    param: dict = {
        "_preset": preset,
        "_out": str(out.resolve()),
        "_seed": tune.grid_search(list(space.seeds)),
        "_ranged": bool(space.ranges),  # random draws: the trial id tells them apart
        "_named": list(space.grid),  # the grid's values name the trial's directory
        **fixed,
    }
    for key, values in space.grid.items():
        param[key] = tune.grid_search([list(v) if isinstance(v, tuple) else v for v in values])
    kinds = sweepable()
    for key, (kind, lo, hi) in space.ranges.items():
        if kinds[key] is int:
            param[key] = (tune.lograndint if kind == "loguniform" else tune.randint)(lo, hi + 1)
        else:
            param[key] = (tune.loguniform if kind == "loguniform" else tune.uniform)(lo, hi)
    return param


def summarise(out: Path, rows: list[dict], threshold: float) -> None:
    """sweep.json, sweep.md and sweep.png, each written atomically."""
    from sim.contract.files import atomic_write

    def write_json(tmp: Path) -> None:
        tmp.write_text(json.dumps(rows, indent=2, default=str))

    atomic_write(out / "sweep.json", write_json)
    lines = [
        f"| trial | status | time to {threshold:.0%} | updates to {threshold:.0%} | "
        "final success | best | env steps | updates | wall | robustness |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "final_success" not in r:  # failed, or stopped before its first evaluation
            lines.append(f"| {r['trial']} | {r['status']} |" + " |" * 8)
            continue
        t = r.get("time_to_threshold")
        t = "not reached" if t is None else f"{t:.0f} s"
        u = r.get("updates_to_threshold")
        u = "" if u is None else f"{u:,}"
        rob = "" if r.get("robustness") is None else f"{r['robustness']:.1%}"
        lines.append(
            f"| {r['trial']} | {r['status']} | {t} | {u} | {r['final_success']:.0%} | "
            f"{r['best_success']:.0%} | {r['env_steps']:,} | {r['updates']:,} | "
            f"{r['wall_seconds']:.0f} s | {rob} |"
        )
    md = "\n".join(lines) + "\n"
    atomic_write(out / "sweep.md", lambda tmp: tmp.write_text(md))
    print(md)
    plot(out / "sweep.png", rows, threshold)


def plot(path: Path, rows: list[dict], threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.contract.files import atomic_write

    names = [r["trial"] for r in rows]
    y = range(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    times = [r.get("time_to_threshold") or 0.0 for r in rows]
    colors = ["tab:blue" if r.get("time_to_threshold") else "lightgray" for r in rows]
    ax1.barh(y, times, color=colors)
    for i, r in enumerate(rows):
        if not r.get("time_to_threshold"):
            ax1.text(
                0,
                i,
                "  " + ("not reached" if r["status"] == "done" else r["status"]),
                va="center",
                fontsize=8,
            )
    ax1.set_yticks(list(y), names, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel(f"wall-clock seconds to {threshold:.0%} evaluation success")
    done = [r if "final_success" in r else {} for r in rows]
    ax2.barh(
        [i - 0.2 for i in y], [r.get("final_success", 0) * 100 for r in done], 0.4, label="final"
    )
    ax2.barh(
        [i + 0.2 for i in y], [r.get("best_success", 0) * 100 for r in done], 0.4, label="best"
    )
    ax2.axvline(threshold * 100, color="k", lw=0.8, ls="--")
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("evaluation success (%)")
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def trial_row(result, threshold: float) -> dict:
    """One trial's line: its metrics.csv if it got that far, else its error."""
    cfg = result.config or {}
    params = {k: v for k, v in cfg.items() if not k.startswith("_")}
    row: dict = {"seed": cfg.get("_seed"), "params": params}
    run_dir = (result.metrics or {}).get("run_dir")
    row["run_dir"] = run_dir
    row["trial"] = Path(run_dir).name if run_dir else _named(cfg)
    metrics = run_files.read_metrics_csv(Path(run_dir) / run_files.METRICS) if run_dir else []
    if result.error is not None:
        row["status"] = "failed: " + str(result.error).strip().splitlines()[-1][:160]
        return row
    if not (result.metrics or {}).get("finished"):
        row["status"] = "stopped" + (f" (python -m train --resume {run_dir})" if run_dir else "")
        if not metrics:
            return row
    hit = run_files.first_reaching(metrics, threshold) or {}
    best = max(metrics, key=lambda m: m["success_rate"])
    row.setdefault("status", "done")
    row.update(
        time_to_threshold=hit.get("wall_seconds"),
        steps_to_threshold=hit.get("env_steps"),
        updates_to_threshold=hit.get("updates"),
        final_success=metrics[-1]["success_rate"],
        best_success=best["success_rate"],
        env_steps=int(metrics[-1]["env_steps"]),
        updates=int(metrics[-1]["updates"]),
        wall_seconds=metrics[-1]["wall_seconds"],
    )
    return row


def pick_best(
    rows: list[dict], preset: str, episodes: int, runs_root: Path, out: Path
) -> dict | None:
    """The robustness suite on every finished trial's best.pt (its table printed, and
    written to OUT/robustness.json and .png); links the trial of highest mean success."""
    from sim import robustness
    from train.evaluate import robustness_of_checkpoints

    done = [r for r in rows if r["status"] == "done"]
    if not done:
        return None
    paths = [str(Path(r["run_dir"]) / run_files.BEST) for r in done]
    suite = robustness_of_checkpoints(paths, episodes, robustness.SEED, str(out / "robustness"))
    for r, path in zip(done, paths, strict=True):
        r["robustness"] = robustness.score(suite[path])["mean_success"]
        print(f"robustness suite: {r['trial']}: mean success {r['robustness']:.1%}")
    best = max(done, key=lambda r: (r["robustness"], r["best_success"]))
    run_files.point_latest(Path(best["run_dir"]), preset, links_dir=runs_root)
    print(f"picked {best['trial']}: runs/latest and runs/latest-{preset} -> {best['run_dir']}")
    return best


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m train sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--preset", default="hover", help=f"one of: {', '.join(PRESETS)}")
    ap.add_argument("--seeds", type=int, nargs="*", default=[1], help="one trial per seed (x grid)")
    ap.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=A,B,...",
        help="try every value (repeat for more fields; widths as 64x64)",
    )
    ap.add_argument("--uniform", action="append", default=[], metavar="FIELD=LOW:HIGH")
    ap.add_argument("--loguniform", action="append", default=[], metavar="FIELD=LOW:HIGH")
    ap.add_argument(
        "--samples",
        type=int,
        default=1,
        help="random draws from the ranges per seed and grid point",
    )
    ap.add_argument(
        "--out", default=None, help="the sweep's directory (default runs/sweep-<preset>-<time>)"
    )
    ap.add_argument(
        "--address",
        default=None,
        help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: "
        "a local Ray on this machine",
    )
    ap.add_argument(
        "--trials-at-once",
        type=int,
        default=None,
        help="default: this machine's cores (local Ray), the cluster's (--address)",
    )
    ap.add_argument(
        "--pick",
        choices=["best"],
        default=None,
        help="best: point runs/latest at the trial the robustness suite ranks first",
    )
    ap.add_argument(
        "--robustness-episodes",
        type=int,
        default=None,
        help="episodes per robustness row for --pick (default: the suite's)",
    )
    add_arguments(ap)  # fixed values for every trial, as for python -m train
    args = ap.parse_args(argv)

    try:
        fixed_cfg = from_args(args)
        fixed = {
            f.name: getattr(fixed_cfg, f.name)
            for f in fields(TrainConfig)
            if f.name not in NOT_SWEPT and getattr(args, f.name, None) is not None
        }
        space = Space(
            tuple(args.seeds),
            parse_grid(args.grid),
            parse_ranges(args.uniform, args.loguniform),
            args.samples,
        )
        check(args.preset, fixed, space)
        if args.trials_at_once is not None and args.trials_at_once < 1:
            raise SweepError(f"--trials-at-once {args.trials_at_once}: allowed: an integer >= 1")
        if args.robustness_episodes is not None and args.robustness_episodes < 1:
            raise SweepError(f"--robustness-episodes {args.robustness_episodes}: allowed: >= 1")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import ray
        from ray import tune
    except ImportError:
        print(
            "error: train sweep needs Ray Tune: pip install -e '.[sweep]' (or run make sweep)",
            file=sys.stderr,
        )
        return 2

    stamp = f"sweep-{args.preset}-{datetime.now():%Y%m%d-%H%M%S}"
    out = Path(args.out) if args.out else Path(fixed_cfg.run_dir) / stamp
    out.mkdir(parents=True, exist_ok=True)
    print(f"sweep: {space.size()} trials of preset {args.preset} -> {out}")
    if args.address:
        ray.init(address=args.address, log_to_driver=True)
    else:
        # Ray starts its workers at nice 15, so any other job on the machine starves the
        # trials (measured: the sweep test stalled beside 4 CPU-bound processes); a local
        # sweep is the user's foreground work.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    at_once = args.trials_at_once or (None if args.address else os.cpu_count())
    tuner = tune.Tuner(
        tune.with_resources(run_trial, {"cpu": 1}),
        param_space=tune_space(args.preset, fixed, space, out),
        tune_config=tune.TuneConfig(num_samples=args.samples, max_concurrent_trials=at_once),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str(out.resolve()),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
            callbacks=[progress_lines()],
        ),
    )
    interrupted = False
    try:
        results = tuner.fit()
    except KeyboardInterrupt:  # Tune stops its trials; each run directory stays resumable
        interrupted = True
        results = None
    threshold = fixed_cfg.stop_success or THRESHOLD
    rows = [trial_row(r, threshold) for r in results] if results is not None else []
    interrupted = interrupted or any(r["status"].startswith("stopped") for r in rows)
    rows.sort(key=lambda r: (r["status"] != "done", r.get("time_to_threshold") or math.inf))
    if args.pick and not interrupted:
        episodes = args.robustness_episodes or _suite_episodes()
        pick_best(rows, args.preset, episodes, Path(fixed_cfg.run_dir), out)
    summarise(out, rows, threshold)
    failed = [r for r in rows if r["status"] != "done"]
    if interrupted:
        print(
            f"sweep stopped; each trial's run directory under {out} can be resumed with "
            f"python -m train --resume DIR",
            file=sys.stderr,
        )
        return 130
    print(f"{len(rows) - len(failed)} of {len(rows)} trials finished -> {out / 'sweep.md'}")
    return 1 if failed else 0


def _suite_episodes() -> int:
    from sim import robustness

    return robustness.EPISODES
