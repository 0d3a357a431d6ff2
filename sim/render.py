"""Pictures of a flight: a 3D view of one vehicle, fast enough to film whole rollouts.

``Scene`` draws the airframe (arms, rotors coloured by their command, body axes from the
attitude), the target with its success radius, a fading trail, a line of text (time,
position error) and bars of the four commands into a matplotlib Agg canvas, and returns
the pixels.
The axes, panes and target do not move, so they are drawn once and kept as a bitmap;
each frame restores that bitmap and draws only the few moving artists (blitting) - a
full 3D redraw costs several times more (docs/benchmarks.md, "Rendering").

matplotlib is imported when the first ``Scene`` or ``Window`` is made, never by
importing this module, so an environment without a render mode pays nothing for it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import deque

import numpy as np

from sim import layout as L
from sim.dynamics import rotation_matrices
from sim.tasks import TaskConfig

RENDER_MODES = ("rgb_array", "human")
WIDTH = HEIGHT = 480
TRAIL_SECONDS = 2.0
# The drawn airframe is enlarged to span at least this fraction of the view: a 4 cm
# Crazyflie arm in the 1.25 m hover box would be a few pixels, and its attitude unreadable.
MIN_ARM_FRACTION = 0.09
ROTOR_RADIUS = 0.45  # of the arm length, for the drawn disc
ROTOR_POINTS = 16
TRAIL_SEGMENTS = 60
TRAIL_RGBA = (0.12, 0.47, 0.71, 1.0)


def check_render_mode(mode: str | None) -> str | None:
    """``mode`` if it is None or one of RENDER_MODES, else a ValueError naming them."""
    if mode is not None and mode not in RENDER_MODES:
        allowed = ", ".join(["None", *(repr(m) for m in RENDER_MODES)])
        raise ValueError(f"render_mode={mode!r}; allowed: {allowed}")
    return mode


class Trail:
    """The last positions of one vehicle, kept by an environment between renders."""

    def __init__(self, task: TaskConfig, seconds: float = TRAIL_SECONDS):
        self.points: deque[np.ndarray] = deque(maxlen=max(2, int(seconds * task.control_hz)))

    def clear(self) -> None:
        self.points.clear()

    def add(self, position: np.ndarray) -> None:
        self.points.append(np.array(position[:3], dtype=float))

    def array(self) -> np.ndarray:
        return np.array(self.points).reshape(-1, 3)


def view_box(task: TaskConfig) -> tuple[np.ndarray, float]:
    """Centre and half-width of the cube shown: the target and where episodes start
    (the start offset plus its random ball), with a margin."""
    target = np.asarray(task.target, dtype=float)
    offset = np.asarray(task.start_offset, dtype=float)
    centre = target + offset / 2
    half = 1.25 * (np.linalg.norm(offset) / 2 + task.init_position)
    return centre, max(half, 4 * task.success_radius)


class Scene:
    """One vehicle of ``task`` seen in 3D; ``draw`` returns a (height, width, 3) uint8
    frame. One figure and one set of artists serve every frame."""

    def __init__(self, task: TaskConfig, width: int = WIDTH, height: int = HEIGHT):
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        if not all(isinstance(v, int) and v >= 64 for v in (width, height)):
            raise ValueError(f"frame size {width!r}x{height!r}; allowed: integers >= 64")
        self.task, self.width, self.height = task, width, height
        body = task.body()
        self.target = np.asarray(task.target, dtype=float)
        centre, half = view_box(task)
        hubs = np.asarray(body.rotor_positions, dtype=float)
        arm = float(np.max(np.linalg.norm(hubs[:, :2], axis=1)))
        self.scale = max(1.0, MIN_ARM_FRACTION * 2 * half / arm)
        self.hubs = hubs * self.scale
        ring = np.linspace(0, 2 * math.pi, ROTOR_POINTS)
        r = ROTOR_RADIUS * arm * self.scale
        self.disc = np.stack([r * np.cos(ring), r * np.sin(ring), np.zeros_like(ring)], 1)
        self.axis_len = 1.6 * arm * self.scale
        self.cmap = mpl.colormaps["coolwarm"]

        dpi = 100
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
        ax = fig.add_subplot(projection="3d")
        lo, hi = centre - half, centre + half
        self.floor = max(lo[2], task.floor_z)  # the ground, where the task has one
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), zlim=(self.floor, hi[2]))
        ax.set_box_aspect((1, 1, (hi[2] - self.floor) / (2 * half)), zoom=0.9)
        ax.view_init(elev=22, azim=-55)
        ax.set_xlabel("x (m)", labelpad=-4)
        ax.set_ylabel("y (m)", labelpad=-4)
        ax.set_zlabel("z (m)", labelpad=-4)
        ax.tick_params(labelsize=7, pad=-2)
        # Static: the target and its success radius, drawn into the kept bitmap.
        ax.plot(*self.target[:, None], marker="+", ms=14, mew=2, color="black")
        sr, circle = task.success_radius, np.linspace(0, 2 * math.pi, 48)
        ax.plot(
            self.target[0] + sr * np.cos(circle),
            self.target[1] + sr * np.sin(circle),
            np.full(circle.size, self.target[2]),
            color="tab:green",
            lw=1,
        )

        def line(**kw):
            (ln,) = ax.plot([], [], [], animated=True, **kw)
            return ln

        self.trail = Line3DCollection([], linewidths=1.5, animated=True)
        ax.add_collection(self.trail)
        self.drop = line(color="0.55", lw=0.8, ls=":")
        self.arms = line(color="0.15", lw=2.5, solid_capstyle="round")
        self.rotors = [line(lw=1.8) for _ in range(len(hubs))]
        self.axes_lines = [line(color=c, lw=1.6) for c in ("tab:red", "tab:green", "tab:blue")]
        # Text is the dearest thing to draw (each glyph rasterised every frame), so the
        # caption sits in the kept bitmap and the commands are bars, not numbers.
        self.caption = fig.text(0.02, 0.98, "", va="top", fontsize=8, family="monospace")
        self.text = fig.text(
            0.02, 0.98, "", va="top", fontsize=8, family="monospace", animated=True
        )
        if self.scale > 1:
            fig.text(0.02, 0.02, f"airframe drawn {self.scale:.1f}x its size", fontsize=7)
        bars_ax = fig.add_axes((0.78, 0.86, 0.2, 0.11))
        bars_ax.set(xlim=(-0.5, len(hubs) - 0.5), ylim=(-1, 1), xticks=[], yticks=[])
        bars_ax.set_title("commands", fontsize=7, family="monospace", pad=2)
        bars_ax.axhline(0, color="0.6", lw=0.6)
        for side in bars_ax.spines.values():
            side.set_linewidth(0.5)
        self.bars = bars_ax.bar(range(len(hubs)), np.zeros(len(hubs)), width=0.7, animated=True)
        self.fig, self.ax, self.bars_ax = fig, ax, bars_ax
        self.moving = [self.drop, self.arms, *self.rotors, *self.axes_lines]
        self._background = None

    def _keep_background(self, caption: str) -> None:
        self.caption.set_text(caption)
        lines = caption.count("\n") + 1 if caption else 0
        self.text.set_y(0.98 - lines * 1.25 * 8 / 72 * 100 / self.height)  # 8 pt lines
        self.canvas.draw()  # also sets the projection the moving artists use
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._caption = caption

    def draw(
        self,
        position: np.ndarray,
        quaternion: np.ndarray,
        time_s: float,
        action: np.ndarray,
        trail: np.ndarray | None = None,
        caption: str = "",
    ) -> np.ndarray:
        """The frame of a vehicle at ``position`` with attitude ``quaternion`` (w, x, y, z,
        body to world) that last commanded ``action``; ``trail`` (k, 3), oldest first."""
        if self._background is None or caption != self._caption:
            self._keep_background(caption)
        p = np.asarray(position, dtype=float)
        rot = rotation_matrices(np.asarray(quaternion, dtype=float).reshape(1, 4))[0]
        hubs = p + self.hubs @ rot.T
        nan = np.full(3, np.nan)
        # Each hub joined to the centre; NaN rows split one line into separate arms.
        arms = np.concatenate([np.stack([p, h, nan]) for h in hubs])
        self.arms.set_data_3d(*arms.T)
        action = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        for k, rotor in enumerate(self.rotors):
            disc = hubs[k] + self.disc @ rot.T
            rotor.set_data_3d(*disc.T)
            color = self.cmap(0.5 + 0.5 * float(action[k]))
            rotor.set_color(color)
            self.bars[k].set_height(action[k])
            self.bars[k].set_color(color)
        for k, ln in enumerate(self.axes_lines):
            end = p + self.axis_len * rot[:, k]
            ln.set_data_3d([p[0], end[0]], [p[1], end[1]], [p[2], end[2]])
        self.drop.set_data_3d([p[0], p[0]], [p[1], p[1]], [p[2], self.floor])
        pts = np.empty((0, 3)) if trail is None else np.asarray(trail, dtype=float)
        if len(pts) > TRAIL_SEGMENTS:  # each segment is a path of its own: keep them few
            pts = pts[np.linspace(0, len(pts) - 1, TRAIL_SEGMENTS + 1).round().astype(int)]
        if len(pts) >= 2:
            colors = np.tile(TRAIL_RGBA, (len(pts) - 1, 1))
            colors[:, 3] = np.linspace(0.15, 1.0, len(pts) - 1)  # fading into the past
            self.trail.set_segments(np.stack([pts[:-1], pts[1:]], axis=1))
            self.trail.set_color(colors)
        else:
            self.trail.set_segments([])
        err = float(np.linalg.norm(p - self.target))
        self.text.set_text(f"t {time_s:5.2f} s   error {err:6.3f} m")

        self.canvas.restore_region(self._background)
        self.trail.do_3d_projection()  # collections are projected by the axes' draw only
        self.ax.draw_artist(self.trail)
        for artist in self.moving:
            self.ax.draw_artist(artist)
        for bar in self.bars:
            self.bars_ax.draw_artist(bar)
        self.fig.draw_artist(self.text)
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()

    def draw_batch(self, batch, i: int, trail: Trail | None, caption: str = "") -> np.ndarray:
        """The frame of environment ``i`` of a ``QuadBatch`` as it is now."""
        s = batch.state[i]
        return self.draw(
            s[L.POS : L.POS + 3],
            s[L.QUAT : L.QUAT + 4],
            batch.steps[i] / self.task.control_hz,
            batch.fc[i, L.FC_PAST : L.FC_PAST + 4],  # the newest command (past row 0)
            None if trail is None else trail.array(),
            caption,
        )

    def close(self) -> None:
        self.fig.clear()


class Window:
    """Frames shown on screen at ``fps`` (render_mode="human"): one image artist whose
    data each frame replaces."""

    def __init__(self, title: str, fps: float):
        import matplotlib.pyplot as plt

        self.plt = plt
        self.fig = plt.figure(title, figsize=(WIDTH / 100, HEIGHT / 100))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()
        self.image = None
        self.period = 1.0 / fps
        self.due = time.monotonic()

    def late(self) -> bool:
        """True when the screen has fallen more than a frame behind the control rate:
        that frame is then skipped (not drawn either), so the flight plays in real time."""
        if time.monotonic() > self.due + self.period:
            self.due += self.period
            return True
        return False

    def show(self, frame: np.ndarray) -> None:
        if self.image is None:
            self.image = self.ax.imshow(frame)
        else:
            self.image.set_data(frame)
        # Hold the control rate: wait (inside the GUI's event loop) until the frame is due.
        self.due = max(self.due + self.period, time.monotonic())
        self.plt.pause(max(1e-3, self.due - time.monotonic()))

    def close(self) -> None:
        self.plt.close(self.fig)


def display_problem() -> str | None:
    """Why matplotlib cannot open a window here (a non-interactive backend), or None."""
    import matplotlib

    backend = matplotlib.get_backend().lower()
    if backend in NON_INTERACTIVE or backend.startswith("module://"):
        return (
            f"render_mode='human' needs a display, and matplotlib's backend is {backend!r} "
            "(no screen, or MPLBACKEND set): no window opens; use render_mode='rgb_array' "
            "for frames"
        )
    return None


class Viewer:
    """What an environment with a render mode keeps: the trail of the vehicle it shows,
    and the scene (and window) made at the first render."""

    def __init__(self, task: TaskConfig, mode: str, caption: str):
        self.task, self.mode, self.caption = task, mode, caption
        self.trail = Trail(task)
        self.scene: Scene | None = None
        self.window: Window | None = None
        # Without a screen, human mode says so once and draws nothing, as matplotlib's
        # own show() does; refusing would also fail Gymnasium's check_env on a server.
        self.no_window = display_problem() if mode == "human" else None
        if self.no_window:
            warnings.warn(self.no_window, stacklevel=3)

    def restart(self, position: np.ndarray) -> None:
        self.trail.clear()
        self.trail.add(position)

    def render(self, batch, i: int) -> np.ndarray | None:
        if self.no_window or (self.window is not None and self.window.late()):
            return None
        if self.scene is None:
            self.scene = Scene(self.task)
        frame = self.scene.draw_batch(batch, i, self.trail, self.caption)
        if self.mode != "human":
            return frame
        if self.window is None:
            self.window = Window(self.caption, self.task.control_hz)
        self.window.show(frame)
        return None

    def close(self) -> None:
        for part in (self.window, self.scene):
            if part is not None:
                part.close()
        self.scene = self.window = None


NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
