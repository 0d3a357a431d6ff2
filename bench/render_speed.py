"""Rendering speed: ms per 480x480 rgb_array frame, what a render mode costs a step
that is not drawn, and the wall-clock time to write a 5-second evaluation video.

    python -m bench render_speed

Writes the ``render_speed`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, write_section
from sim import video
from sim.envs import QuadEnv
from sim.rollout import collect
from sim.tasks import make_task

COMMAND = "python -m bench render_speed"


def frame_times(frames: int, full_redraw: bool = False) -> tuple[np.ndarray, float]:
    """ms per env.render() over a hover episode flown at the hover command (and the
    first frame, which builds the figure). ``full_redraw``: redraw the whole figure each
    frame instead of restoring the kept background, for comparison."""
    env = QuadEnv("hover", render_mode="rgb_array")
    env.reset(seed=0)
    hover = np.full(4, env.task.body().hover_action(), dtype=np.float32)
    t0 = time.perf_counter()
    env.render()
    first = 1e3 * (time.perf_counter() - t0)
    scene = env._viewer.scene
    out = []
    for _ in range(frames):
        env.step(hover)
        t0 = time.perf_counter()
        if full_redraw:
            scene._background = None  # each frame draws axes, panes and ticks again
        env.render()
        out.append(1e3 * (time.perf_counter() - t0))
    env.close()
    return np.array(out), first


def step_us(render_mode: str | None, steps: int) -> float:
    """Best of 3 rounds, microseconds per QuadEnv.step with render() never called."""
    env = QuadEnv("hover", render_mode=render_mode)
    env.reset(seed=0)
    action = np.zeros(4, dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(action)
            if term or trunc:
                env.reset()
        best = min(best, (time.perf_counter() - t0) / steps * 1e6)
    return best


def video_time(suffix: str) -> tuple[float, int, int]:
    """Seconds to draw and encode one 5-second hover episode (the episode flown first,
    not timed), its frame count and file size. The episode is the nominal task with
    termination off, at the hover command, so it lasts its 5 s whatever happens."""
    task = make_task("hover-nominal", max_position_error=1e6, min_up=-1.0)
    hover = task.body().hover_action()
    r = collect(lambda obs: np.full((len(obs), 4), hover, np.float32), task, episodes=1, seed=0)
    assert int(r.lengths[0]) == task.max_steps
    shot = [[video.Shot(r, 0, task, "bench: one 5 s episode")]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench{suffix}"
        step = video.stride(task.control_hz, suffix)
        fps = task.control_hz / step
        t0 = time.perf_counter()
        count = video.write(path, video.frames(shot, step, round(video.HOLD_SECONDS * fps)), fps)
        return time.perf_counter() - t0, count, path.stat().st_size


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--frames", type=int, default=500, help="frames per timing")
    ap.add_argument("--note", default="", help="what else the machine was doing, for the record")
    args = ap.parse_args(argv)
    args.note = f"; {args.note}" if args.note else ""
    load_before = os.getloadavg()
    blit, first = frame_times(args.frames)
    full, _ = frame_times(max(50, args.frames // 5), full_redraw=True)
    none_us, rgb_us = step_us(None, 20_000), step_us("rgb_array", 20_000)
    videos = {s: video_time(s) for s in video.FORMATS if video.available(s)}
    load_after = os.getloadavg()
    rows = [
        f"| {s[1:].upper()} | {n} frames at {video.MAX_FPS[s]} fps | {secs:.1f} s | "
        f"{size / 1e6:.2f} MB |"
        for s, (secs, n, size) in videos.items()
    ]
    md = f"""## Rendering

`{COMMAND}` on {machine()}, {datetime.date.today().isoformat()}.
Load average (one minute, as `uptime` prints it) {load_before[0]:.2f} before the run,
{load_after[0]:.2f} after{args.note}.

- **{np.median(blit):.1f} ms per frame** (median; p90 {np.percentile(blit, 90):.1f} ms):
  `QuadEnv("hover", render_mode="rgb_array").render()` at 480 x 480 after each of
  {args.frames} steps of a hover episode. The first frame, which builds the figure,
  took {first:.0f} ms. Each frame restores a kept bitmap of the axes, panes and target
  and draws only the airframe, trail and text; redrawing the whole figure every frame
  instead takes {np.median(full):.1f} ms.
- A step that is not drawn: `QuadEnv.step` {none_us:.1f} us with render_mode None,
  {rgb_us:.1f} us with "rgb_array" (it keeps the trail's point). Without a render mode
  matplotlib is not imported.
- A 5-second evaluation episode (500 control steps) drawn and encoded, as
  `python -m train evaluate --video` does it (`sim/video.py`: every 2nd step for MP4,
  every 4th for GIF, the last frame held 0.5 s):

| format | frames | wall clock | file |
|---|---|---:|---:|
{chr(10).join(rows)}
"""
    write_section("render_speed", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
