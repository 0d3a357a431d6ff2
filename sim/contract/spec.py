"""``PolicySpec``: what a trained policy observes and commands, the one description every
stage after training reads (export, the ONNX metadata, the C headers' notes, the HIL).

A checkpoint stores it as a plain dict (``to_dict``), so that checkpoints load with
``weights_only=True`` and ONNX metadata is JSON; every reader turns the dict back into a
``PolicySpec`` with ``from_dict``, which refuses a malformed one in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from numbers import Real

from sim.tasks import ACT_DIM, ACTION_MEANING, PRESETS, TaskConfig, make_task


class SpecError(ValueError):
    """A policy spec is malformed, or describes a task this version cannot build."""


def layout_text(layout) -> str:
    """A layout as one line, ``name:size,name:size,...`` (headers, messages)."""
    return ",".join(f"{name}:{int(size)}" for name, size, *_ in layout)


@dataclass(frozen=True)
class PolicySpec:
    task: str  # the task preset the policy was trained on
    task_overrides: dict = field(hash=False)  # its fields that differ from the preset
    airframe: str
    obs_dim: int
    act_dim: int
    obs_layout: tuple[tuple[str, int, str], ...]  # (name, size, meaning) blocks in order
    initial_action: float  # the command of the initial rotor speed (past actions start at it)
    action: str  # what the actions mean
    rotor_speed_min: float
    rotor_speed_max: float
    rotor_speed_unit: str
    control_hz: float

    @classmethod
    def of_task(cls, task: TaskConfig) -> PolicySpec:
        body = task.body()
        overrides = {
            f.name: getattr(task, f.name)
            for f in dataclasses.fields(task)
            if getattr(task, f.name) != getattr(PRESETS[task.name], f.name)
        }
        return cls(
            task=task.name,
            task_overrides=overrides,
            airframe=body.name,
            obs_dim=task.obs_dim,
            act_dim=ACT_DIM,
            obs_layout=tuple(tuple(item) for item in task.obs_layout),
            initial_action=task.initial_action(),
            action=ACTION_MEANING,
            rotor_speed_min=body.rotor_speed_min,
            rotor_speed_max=body.rotor_speed_max,
            rotor_speed_unit=body.rotor_speed_unit,
            control_hz=task.control_hz,
        )

    @property
    def layout_text(self) -> str:
        return layout_text(self.obs_layout)

    def to_dict(self) -> dict:
        """Plain containers only (checkpoints, JSON); ``from_dict`` inverts it."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["task_overrides"] = dict(self.task_overrides)
        d["obs_layout"] = [list(item) for item in self.obs_layout]
        return d

    @classmethod
    def from_dict(cls, d: object, source: object = "<policy spec>") -> PolicySpec:
        """The spec back from ``to_dict``'s dict; SpecError naming ``source`` and the field
        for anything missing, unknown, of the wrong type or inconsistent."""
        if isinstance(d, PolicySpec):
            return d
        if not isinstance(d, dict):
            raise SpecError(f"{source}: policy spec is a {type(d).__name__}, not a mapping")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in d]
        unknown = sorted(set(d) - set(names))
        if missing or unknown:
            raise SpecError(
                f"{source}: policy spec lacks {', '.join(missing) or 'nothing'} and has "
                f"unknown fields {', '.join(unknown) or 'none'}"
            )

        def want(name, kind, what):
            value = d[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise SpecError(f"{source}: policy spec field {name} is {value!r}, not {what}")
            return value

        layout = want("obs_layout", (list, tuple), "a list of [name, size, meaning]")
        blocks = []
        for item in layout:
            ok = (
                isinstance(item, (list, tuple))
                and len(item) == 3
                and isinstance(item[0], str)
                and isinstance(item[1], int)
                and not isinstance(item[1], bool)
                and item[1] > 0
                and isinstance(item[2], str)
            )
            if not ok:
                raise SpecError(
                    f"{source}: policy spec obs_layout entry {item!r} is not "
                    "[name, positive size, meaning]"
                )
            blocks.append((item[0], item[1], item[2]))
        spec = cls(
            task=want("task", str, "a task name"),
            task_overrides=dict(want("task_overrides", dict, "a mapping")),
            airframe=want("airframe", str, "an airframe name"),
            obs_dim=want("obs_dim", int, "an integer"),
            act_dim=want("act_dim", int, "an integer"),
            obs_layout=tuple(blocks),
            initial_action=float(want("initial_action", Real, "a number")),
            action=want("action", str, "a description"),
            rotor_speed_min=float(want("rotor_speed_min", Real, "a number")),
            rotor_speed_max=float(want("rotor_speed_max", Real, "a number")),
            rotor_speed_unit=want("rotor_speed_unit", str, "a unit"),
            control_hz=float(want("control_hz", Real, "a number")),
        )
        if sum(size for _, size, _ in spec.obs_layout) != spec.obs_dim:
            raise SpecError(
                f"{source}: policy spec obs_dim {spec.obs_dim} is not the size of its "
                f"layout {spec.layout_text}"
            )
        if spec.act_dim != ACT_DIM:
            raise SpecError(
                f"{source}: policy spec act_dim {spec.act_dim}; quadpilot policies command "
                f"{ACT_DIM} rotors"
            )
        if spec.control_hz <= 0:
            raise SpecError(f"{source}: policy spec control_hz {spec.control_hz} is not positive")
        return spec

    def task_config(self) -> TaskConfig:
        """The task the policy was trained for; refuses a task this version cannot build
        and one whose observation layout is not what the task now observes (naming both)."""
        try:
            task = make_task(self.task, **dict(self.task_overrides))
        except (TypeError, ValueError) as exc:
            raise SpecError(
                f"policy spec task {self.task!r} with overrides {dict(self.task_overrides)} "
                f"cannot be simulated: {exc}"
            ) from None
        if layout_text(task.obs_layout) != self.layout_text:
            raise SpecError(
                f"the policy observes {self.layout_text} but task {task.name!r} now observes "
                f"{layout_text(task.obs_layout)}: retrain it, or use the quadpilot version "
                "that trained it"
            )
        return task
