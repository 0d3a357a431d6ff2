"""Render modes, and videos of evaluations: frames that show the vehicle where it is,
files that decode to the frames written, and the messages for bad input or no encoder."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from firmware_support import ROOT
from toolchain import require_module

import sim
from sim import layout as L
from sim import video
from sim.render import Scene, Window
from sim.tasks import make_task
from train.__main__ import main as train_main
from train.evaluate import VIDEO_EPISODES, fly_checkpoint

ARM_GREY = 38  # the arms' colour (0.15 grey) in the frame


def test_unknown_render_mode_is_refused_listing_the_allowed_ones():
    for make in (
        lambda: sim.QuadEnv("hover", render_mode="rgb"),
        lambda: sim.make_vec("hover", num_envs=2, render_mode="video"),
    ):
        with pytest.raises(ValueError, match=r"allowed: None, 'rgb_array', 'human'"):
            make()
    with pytest.raises(ValueError, match=r"render_index=4; allowed: an integer from 0 to 3"):
        sim.make_vec("hover", num_envs=4, render_mode="rgb_array", render_index=4)


@pytest.mark.parametrize("task,hz", [("hover", 100), ("takeoff", 50)])
def test_metadata_follows_gymnasium(task, hz):
    env, vec = sim.QuadEnv(task), sim.make_vec(task, num_envs=2)
    for e in (env, vec):
        assert list(e.metadata["render_modes"]) == ["rgb_array", "human"]
        assert e.metadata["render_fps"] == hz
        assert e.render_mode is None


def test_no_render_mode_costs_nothing():
    """Without a render mode matplotlib is never imported, and render() says why it
    returns nothing."""
    code = """
import sys, warnings
import gymnasium as gym, numpy as np
import sim
env = gym.make("quadpilot/Hover-v0")
env.reset(seed=0)
for _ in range(5):
    env.step(np.zeros(4, dtype=np.float32))
vec = sim.make_vec("hover", num_envs=4)
vec.reset(seed=0)
vec.step(np.zeros((4, 4)))
assert env.unwrapped._viewer is None and vec._viewer is None
assert "matplotlib" not in sys.modules, "matplotlib imported"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert env.unwrapped.render() is None
assert any("without a render_mode" in str(w.message) for w in caught)
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def _arm_pixels(frame: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Rows and columns of arm-coloured pixels of ``frame`` that ``other`` lacks (the
    static text, ticks and target are in both)."""
    grey = (np.abs(frame.astype(int) - ARM_GREY) <= 6).all(axis=2)
    return np.argwhere(grey & (frame != other).any(axis=2))


def _place(env, z: float, quat=(1.0, 0.0, 0.0, 0.0)) -> None:
    b = env.unwrapped.batch
    b.state[0, L.POS : L.POS + 3] = (0.0, 0.0, z)
    b.state[0, L.QUAT : L.QUAT + 4] = quat
    env.unwrapped._viewer.restart(b.state[0, :3])  # no trail: only the airframe moves


def test_rgb_array_frames_show_the_vehicle_where_it_is():
    env = gym.make("quadpilot/Hover-v0", render_mode="rgb_array")
    env.reset(seed=1)
    first = env.render()
    assert first.shape == (480, 480, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(env.render(), first)  # same state, same frame
    _place(env, -0.3)
    low = env.render()
    _place(env, 0.3)
    high = env.render()
    lo_px, hi_px = _arm_pixels(low, high), _arm_pixels(high, low)
    assert len(lo_px) > 20 and len(hi_px) > 20
    # Higher in the world is higher on screen (smaller row) by a clear margin.
    assert hi_px[:, 0].mean() < lo_px[:, 0].mean() - 40
    # A tilt about x moves the arms, the position alone does not explain the change.
    _place(env, 0.3, quat=(np.cos(0.3), np.sin(0.3), 0.0, 0.0))
    tilted = env.render()
    assert (tilted != high).any(axis=2).sum() > 200
    env.close()


def test_frames_follow_an_episode_through_the_standard_wrapper():
    """Gymnasium's RenderCollection (what recorders build on): one frame per reset and
    step, each different from the last while the vehicle moves, and a trail that is
    cleared at reset."""
    env = gym.wrappers.RenderCollection(gym.make("quadpilot/Hover-v0", render_mode="rgb_array"))
    env.reset(seed=2)
    climb = np.ones(4, dtype=np.float32)  # full thrust: the vehicle climbs away
    for _ in range(10):
        env.step(climb)
    frames = env.render()
    assert len(frames) == 11
    assert all(f.shape == (480, 480, 3) and f.dtype == np.uint8 for f in frames)
    assert all((a != b).any() for a, b in zip(frames, frames[1:], strict=False))
    trail = env.unwrapped._viewer.trail
    assert len(trail.points) == 11
    env.reset(seed=3)
    assert len(trail.points) == 1


def test_vector_env_renders_its_chosen_index_and_restarts_its_trail():
    frames = []
    for index in (0, 2):
        vec = sim.make_vec("hover", num_envs=4, seed=5, render_mode="rgb_array", render_index=index)
        vec.reset()
        frames.append(vec.render())
        assert frames[-1].shape == (480, 480, 3)
    assert (frames[0] != frames[1]).any()  # two vehicles drawn from different starts
    trail = vec._viewer.trail
    fall = np.full((4, 4), -1.0)  # rotors off: every vehicle drops out of the task
    for step in range(1, 200):
        _, _, term, trunc, _ = vec.step(fall)
        if term[2] or trunc[2]:
            assert len(trail.points) == 1  # the shown vehicle's new episode
            break
        assert len(trail.points) == step + 1
    else:
        pytest.fail("the shown vehicle never ended its episode")
    vec.close()


def test_human_mode_without_a_display_says_so_and_draws_nothing():
    code = """
import warnings
import gymnasium as gym, numpy as np
import sim
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    env = gym.make("quadpilot/Hover-v0", render_mode="human")
print([str(w.message) for w in caught if "display" in str(w.message)][0])
env.reset(seed=0)
env.step(np.zeros(4, dtype=np.float32))
assert env.render() is None and env.unwrapped._viewer.scene is None
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "render_mode='human' needs a display" in proc.stdout
    assert "'agg'" in proc.stdout and "rgb_array" in proc.stdout


def test_window_shows_each_frame_at_the_control_rate():
    """The human window's own logic (image replaced, pace held) on matplotlib's Agg
    backend, which has no screen but runs the same calls."""
    fps, n = 2.5, 6  # periods long against a loaded machine's scheduling delays
    window = Window("test", fps)
    frames = [np.full((48, 48, 3), 40 * k, dtype=np.uint8) for k in range(n)]
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agg: "cannot be shown"
        for f in frames:
            window.show(f)
    assert time.monotonic() - start >= (n - 1) / fps * 0.95
    np.testing.assert_array_equal(np.asarray(window.image.get_array()), frames[-1])
    # A frame more than a period late is skipped, so a slow screen still plays in real time.
    assert not window.late()
    time.sleep(3.5 / fps)
    skipped = 0
    while window.late():
        skipped += 1
    assert skipped >= 3  # one per period missed
    window.show(frames[0])
    assert not window.late()
    window.close()


def test_scene_refuses_a_tiny_frame():
    with pytest.raises(ValueError, match="allowed: integers >= 64"):
        Scene(make_task("hover"), width=32)


# Videos -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from export.fixtures import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "run" / "checkpoint.pt", step=9)


def _expected_frames(ckpt: Path, episodes: int, fps: int, hz: int = 100) -> int:
    """Frames of the first VIDEO_EPISODES episodes at ``fps``: every (hz / fps)-th
    recorded state, each episode's last one, and its last frame held half a second."""
    r, _, _ = fly_checkpoint(ckpt, episodes, 12345)
    every = hz // fps
    total = 0
    for length in r.lengths[:VIDEO_EPISODES]:
        shown = length // every + 1 + (length % every != 0)
        total += shown + round(0.5 * fps)
    return total


def _evaluate(ckpt: Path, tmp: Path, *extra: str, capsys) -> tuple[int, str, str]:
    code = train_main(
        ["evaluate", str(ckpt), "--episodes", "4", "--plot", str(tmp / "e.png"), *extra]
    )
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_video_is_an_mp4_of_the_first_episodes(checkpoint, tmp_path, capsys):
    require_module("imageio_ffmpeg", "pip install -e '.[video]'")
    import imageio_ffmpeg

    path = tmp_path / "v" / "eval.mp4"
    start = time.monotonic()
    code, out, err = _evaluate(checkpoint, tmp_path, "--video", str(path), capsys=capsys)
    assert code == 0, err
    assert "success rate" in out and f"video           {path} (episodes 1-3)" in out
    assert sorted(p.name for p in path.parent.iterdir()) == ["eval.mp4"]  # no temporary left
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert meta["size"] == (480, 480) and meta["fps"] == 50
    frames = [np.frombuffer(f, np.uint8).reshape(480, 480, 3) for f in reader]
    assert len(frames) == _expected_frames(checkpoint, 4, fps=50)
    # The vehicle moves: the first frames of an episode differ from one another.
    assert np.abs(frames[0].astype(int) - frames[3].astype(int)).max() > 50
    print(f"mp4: {len(frames)} frames in {time.monotonic() - start:.1f} s with the evaluation")


def test_evaluate_video_defaults_beside_the_checkpoint(checkpoint, tmp_path, capsys):
    require_module("imageio_ffmpeg", "pip install -e '.[video]'")
    beside = checkpoint.parent / "evaluation.mp4"
    code, out, err = _evaluate(checkpoint, tmp_path, "--video", capsys=capsys)
    assert code == 0, err
    assert beside.stat().st_size > 0 and str(beside) in out
    beside.unlink()


def test_gif_when_no_mp4_encoder(checkpoint, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(video, "available", lambda suffix: suffix == ".gif")
    path = tmp_path / "eval.mp4"
    code, out, err = _evaluate(checkpoint, tmp_path, "--video", str(path), capsys=capsys)
    assert code == 0, err
    gif = tmp_path / "eval.gif"
    line = f"video: no MP4 encoder (imageio-ffmpeg); writing {gif} instead - pip install"
    assert line in out and not path.exists()
    with Image.open(gif) as im:
        assert im.size == (480, 480)
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    # Pillow merges repeated frames into longer ones; the total time is what must hold.
    assert sum(durations) == 40 * _expected_frames(checkpoint, 4, fps=25)


def test_no_encoder_at_all_still_evaluates(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(video, "available", lambda suffix: False)
    code, out, err = _evaluate(
        checkpoint, tmp_path, "--video", str(tmp_path / "e.mp4"), capsys=capsys
    )
    assert code == 0, err
    assert "success rate" in out and "plot" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("video")]
    assert lines == ["video: no encoder installed, no video written - pip install imageio-ffmpeg "
                     "(or pip install -e '.[video]')"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "e.png"]


def test_bad_video_name_is_refused_before_flying(checkpoint, tmp_path, capsys):
    code, out, err = _evaluate(
        checkpoint, tmp_path, "--video", str(tmp_path / "e.avi"), capsys=capsys
    )
    assert code == 2 and out == ""
    assert err == f"error: video {tmp_path / 'e.avi'}: the name must end in .mp4 or .gif\n"


def test_failing_mp4_encoder_falls_back_to_gif(checkpoint, tmp_path, capsys, monkeypatch):
    def broken(tmp, images, fps):
        next(iter(images))
        raise OSError("[Errno 32] Broken pipe\n\nFFMPEG COMMAND: ...")

    monkeypatch.setattr(video, "_write_mp4", broken)
    code, out, err = _evaluate(
        checkpoint, tmp_path, "--video", str(tmp_path / "e.mp4"), capsys=capsys
    )
    assert code == 0, err
    assert (
        "video: MP4 encoding failed ([Errno 32] Broken pipe FFMPEG COMMAND: ...); "
        "writing a GIF instead"
    ) in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.gif", "e.json", "e.png"]  # no tmp
