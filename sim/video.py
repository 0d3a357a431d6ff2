"""Videos of recorded flights: episodes of a ``Rollout`` drawn by sim.render and encoded
by a library - MP4 (H.264) through imageio-ffmpeg, which ships its own ffmpeg binary
(the ``video`` extra: ``pip install -e '.[video]'``), or GIF through Pillow (which
matplotlib installs).

The episodes are replayed from what the rollout recorded (positions, attitudes,
commands), not flown again, so a video shows exactly the episodes that were scored.
Several panels side by side (the HIL: board and reference) share one time line; a
panel whose episode ended holds its last frame.
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.render import TRAIL_SECONDS, Scene
from sim.rollout import Rollout
from sim.tasks import TaskConfig

FORMATS = (".mp4", ".gif")
# Frames per second at most: GIF delays count in 1/100 s and viewers slow down anything
# under 2/100 s, so GIF stays at 25; MP4 plays 50 smoothly in every player.
MAX_FPS = {".mp4": 50, ".gif": 25}
HOLD_SECONDS = 0.5  # the last frame of each episode, held so its outcome can be read
INSTALL = "pip install imageio-ffmpeg (or pip install -e '.[video]')"


class VideoError(ValueError):
    """A video cannot be written as asked (the message says why)."""


@dataclass
class Shot:
    """One panel of one clip: episode ``episode`` of ``rollout``, flown on ``task``."""

    rollout: Rollout
    episode: int
    task: TaskConfig
    caption: str


def available(suffix: str) -> bool:
    """Whether an encoder for ``suffix`` (.mp4 or .gif) is installed and usable."""
    if suffix == ".gif":
        return importlib.util.find_spec("PIL") is not None
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        return False
    import imageio_ffmpeg

    try:  # the package without a binary for this platform raises here
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return False
    return True


def choose(path: str | os.PathLike, log: Callable[[str], None]) -> Path | None:
    """Where the video will go: ``path`` itself, or the GIF beside it when no MP4 encoder
    is installed (said in one line); None, also said in one line, when there is no
    encoder at all. A suffix other than .mp4 or .gif is refused."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise VideoError(f"video {path}: the name must end in {' or '.join(FORMATS)}")
    path = path.with_suffix(path.suffix.lower())
    if available(path.suffix):
        return path
    if path.suffix == ".mp4" and available(".gif"):
        gif = path.with_suffix(".gif")
        log(f"video: no MP4 encoder (imageio-ffmpeg); writing {gif} instead - {INSTALL}")
        return gif
    log(f"video: no encoder installed, no video written - {INSTALL}")
    return None


def stride(control_hz: float, suffix: str) -> int:
    """Control steps per video frame, so that the video plays in real time at <= MAX_FPS."""
    return max(1, math.ceil(control_hz / MAX_FPS[suffix] - 1e-9))


def frame_steps(length: int, step: int) -> list[int]:
    """The recorded steps (0 .. length) one episode shows: every ``step``-th, and the last."""
    steps = list(range(0, length + 1, step))
    return steps if steps[-1] == length else [*steps, length]


def _episode_length(shot: Shot) -> int:
    return int(shot.rollout.lengths[shot.episode])


def _view(scene: Scene, shot: Shot, t: int, trail_steps: int) -> np.ndarray:
    r, e = shot.rollout, shot.episode
    t = min(t, _episode_length(shot))
    if r.attitudes is None or r.commands is None:
        raise VideoError("this rollout did not record attitudes and commands")
    action = r.commands[t - 1, e] if t > 0 else np.full(4, shot.task.initial_action())
    return scene.draw(
        r.positions[t, e],
        r.attitudes[t, e],
        t / r.control_hz,
        action,
        r.positions[max(0, t - trail_steps) : t + 1, e],
        shot.caption,
    )


def frames(clips: list[list[Shot]], step: int, hold: int) -> Iterator[np.ndarray]:
    """Every frame of ``clips`` in order; each clip's panels side by side, run for its
    longest episode (``frame_steps``), then its last frame ``hold`` more times."""
    scenes: list[tuple[TaskConfig, Scene]] = []
    for clip in clips:
        while len(scenes) < len(clip):
            scenes.append((clip[len(scenes)].task, Scene(clip[len(scenes)].task)))
        for k, shot in enumerate(clip):  # a panel flying another task gets a scene of it
            if scenes[k][0] is not shot.task:
                scenes[k] = (shot.task, Scene(shot.task))
        length = max(_episode_length(s) for s in clip)
        trail = int(TRAIL_SECONDS * clip[0].rollout.control_hz)
        frame = None
        for t in frame_steps(length, step):
            frame = np.hstack([_view(scenes[k][1], s, t, trail) for k, s in enumerate(clip)])
            yield frame
        for _ in range(hold):
            yield frame


def write(path: Path, images: Iterable[np.ndarray], fps: float) -> int:
    """Encode ``images`` (uint8 H x W x 3, all one size) to ``path`` (.mp4 or .gif),
    through a temporary file renamed at the end; returns the number of frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        count = (_write_mp4 if path.suffix == ".mp4" else _write_gif)(tmp, images, fps)
        if count == 0:
            raise VideoError(f"video {path}: no frames to write")
        tmp.chmod(0o644)  # mkstemp's 0600 would keep a video to be shared from others
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _write_mp4(tmp: Path, images: Iterable[np.ndarray], fps: float) -> int:
    import imageio_ffmpeg

    count, writer = 0, None
    try:
        for image in images:
            if writer is None:
                h, w = image.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(tmp),
                    (w, h),
                    fps=fps,
                    codec="libx264",
                    pix_fmt_out="yuv420p",  # what every player decodes
                    macro_block_size=2,  # the frames are even-sized; never rescale them
                    ffmpeg_log_level="error",
                    output_params=["-f", "mp4"],  # the temporary name has no .mp4
                )
                writer.send(None)
            writer.send(np.ascontiguousarray(image))
            count += 1
    finally:
        if writer is not None:
            writer.close()
    if count and tmp.stat().st_size == 0:
        raise OSError("ffmpeg wrote nothing")
    return count


def _write_gif(tmp: Path, images: Iterable[np.ndarray], fps: float) -> int:
    from PIL import Image

    it = iter(images)
    first = next(it, None)
    if first is None:
        return 0
    count = 1

    def rest():
        nonlocal count
        for image in it:
            count += 1
            yield Image.fromarray(image)

    Image.fromarray(first).save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=rest(),
        duration=round(1000 / fps),
        loop=0,
    )
    return count


def write_rollout_video(
    path: str | os.PathLike, clips: list[list[Shot]], log: Callable[[str], None] = print
) -> Path | None:
    """``clips`` played one after another into ``path`` in real time (see ``choose`` for
    the format); returns the file written, or None when no encoder is installed."""
    out = choose(path, log)
    while out is not None:
        try:
            _write_clips(out, clips)
            return out
        except OSError as exc:  # the encoder failed (ffmpeg died, a full disk): its words
            reason = " ".join(str(exc).split())[:300]
            if out.suffix == ".mp4" and available(".gif"):
                log(f"video: MP4 encoding failed ({reason}); writing a GIF instead")
                out = out.with_suffix(".gif")
            else:
                log(f"video: writing {out} failed ({reason}); no video written")
                out = None
    return None


def _write_clips(out: Path, clips: list[list[Shot]]) -> None:
    hz = clips[0][0].rollout.control_hz
    step = stride(hz, out.suffix)
    fps = hz / step
    write(out, frames(clips, step, round(HOLD_SECONDS * fps)), fps)
