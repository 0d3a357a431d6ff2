"""``PolicySpec``: what a trained policy observes and commands, the one description every
stage after training reads (export, the ONNX metadata, the C headers' notes, the HIL).

A checkpoint stores it as a plain dict (``to_dict``), so that checkpoints load with
``weights_only=True`` and ONNX metadata is JSON; every reader turns the dict back into a
``PolicySpec`` with ``from_dict``, which refuses a malformed one in one line.

A spec keeps the whole world its policy was trained in: every field of the task
(``task_fields``) and every number of its airframe (``airframe_fields``), as JSON's own
types (tuples as lists, infinities as the strings "inf" and "-inf"). ``task_config``
rebuilds the task from them, so editing a preset or an airframe in sim/ does not move the
world an older policy is calibrated, evaluated and flown in. A spec saved before these
fields existed gets today's preset, and ``from_dict`` says so on stderr, once per file.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from sim.airframes import Airframe, get_airframe
from sim.tasks import ACT_DIM, ACTION_MEANING, PRESETS, TaskConfig, make_task

# The fields a spec of an older quadpilot may lack (it then gets today's preset).
WORLD_FIELDS = ("task_fields", "airframe_fields")
_noted: set[str] = set()  # sources already told that they get today's preset


class SpecError(ValueError):
    """A policy spec is malformed, or describes a task this version cannot build."""


def layout_text(layout) -> str:
    """A layout as one line, ``name:size,name:size,...`` (headers, messages)."""
    return ",".join(f"{name}:{int(size)}" for name, size, *_ in layout)


def plain(value):
    """``value`` in JSON's own types: tuples as lists, infinities and NaN as the strings
    "inf", "-inf" and "nan", numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _typed(value, text: bool = False):
    """``plain``'s inverse for a dataclass field: lists back to tuples, "inf"/"-inf"/"nan"
    back to floats unless the field holds text."""
    if isinstance(value, list):
        return tuple(_typed(v) for v in value)
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if not text and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def fields_of(obj) -> dict:
    """Every field of a dataclass instance (a TaskConfig, an Airframe), ``plain``."""
    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _rebuild(cls, stored: dict, what: str) -> dict:
    """``stored`` (``fields_of``'s dict) as keyword arguments of ``cls``; SpecError
    naming the fields this version of ``cls`` lacks."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(stored) - set(known))
    if unknown:
        raise SpecError(
            f"the policy was trained with {what} fields {', '.join(unknown)}, which this "
            "version of quadpilot does not have: use the version that trained it"
        )
    return {k: _typed(v, known[k].type in ("str", str)) for k, v in stored.items()}


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
    # The world it was trained in: every TaskConfig field and every Airframe number
    # (``fields_of``); None in specs saved before they were kept (today's preset then).
    task_fields: dict | None = field(default=None, hash=False)
    airframe_fields: dict | None = field(default=None, hash=False)

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
            task_fields=fields_of(task),
            airframe_fields=fields_of(body),
        )

    @property
    def layout_text(self) -> str:
        return layout_text(self.obs_layout)

    def to_dict(self) -> dict:
        """Plain containers only (checkpoints, JSON); ``from_dict`` inverts it."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["task_overrides"] = dict(self.task_overrides)
        d["obs_layout"] = [list(item) for item in self.obs_layout]
        for name in WORLD_FIELDS:
            d[name] = copy.deepcopy(d[name])
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
        old = [n for n in WORLD_FIELDS if n not in d]
        missing = [n for n in names if n not in d and n not in WORLD_FIELDS]
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
            task_fields=_world(d, "task_fields", source),
            airframe_fields=_world(d, "airframe_fields", source),
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
        if (spec.task_fields is None) != (spec.airframe_fields is None):
            raise SpecError(
                f"{source}: policy spec has task_fields or airframe_fields without the other"
            )
        if spec.task_fields is not None:
            stored = {
                "task_fields name": (spec.task_fields.get("name"), spec.task),
                "task_fields airframe": (spec.task_fields.get("airframe"), spec.airframe),
                "airframe_fields name": (spec.airframe_fields.get("name"), spec.airframe),
            }
            for what, (value, want_value) in stored.items():
                if value != want_value:
                    raise SpecError(
                        f"{source}: policy spec {what} is {value!r}, not {want_value!r}"
                    )
        if old and str(source) not in _noted:
            _noted.add(str(source))
            print(
                f"note: {source} was saved before policies kept their world; it is judged "
                f"in today's {spec.task!r} preset",
                file=sys.stderr,
            )
        return spec

    def task_config(self) -> TaskConfig:
        """The task the policy was trained for, rebuilt from the stored world (today's
        preset and the overrides for a spec that predates it); refuses a task this
        version cannot build and one whose observation layout is not what the task now
        observes (naming both)."""
        try:
            if self.task_fields is None:
                task = make_task(self.task, **dict(self.task_overrides))
            else:
                task = self._stored_task()
        except (TypeError, ValueError) as exc:
            what = (
                f"with overrides {dict(self.task_overrides)}"
                if self.task_fields is None
                else "as stored in its spec"
            )
            raise SpecError(
                f"policy spec task {self.task!r} {what} cannot be simulated: {exc}"
            ) from None
        if layout_text(task.obs_layout) != self.layout_text:
            raise SpecError(
                f"the policy observes {self.layout_text} but task {task.name!r} now observes "
                f"{layout_text(task.obs_layout)}: retrain it, or use the quadpilot version "
                "that trained it"
            )
        return task

    def _stored_task(self) -> TaskConfig:
        """The stored task, its airframe's numbers as airframe_overrides on today's
        airframe of that name (only those that differ from it, beside the task's own)."""
        kwargs = _rebuild(TaskConfig, self.task_fields, "task")
        numbers = _rebuild(Airframe, self.airframe_fields, "airframe")
        overrides = dict(kwargs.get("airframe_overrides") or {})
        today = get_airframe(kwargs.get("airframe", self.airframe)).replace(**overrides)
        for name, value in numbers.items():
            if name != "name" and getattr(today, name) != value:
                overrides[name] = value
        kwargs["airframe_overrides"] = overrides
        return TaskConfig(**kwargs).validate()


def _world(d: dict, name: str, source) -> dict | None:
    """One of the world fields of a spec dict: a mapping of field names, or None."""
    value = d.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SpecError(f"{source}: policy spec field {name} is {value!r}, not a mapping")
    return copy.deepcopy(value)
