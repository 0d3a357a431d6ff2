"""The observation table (sim/observation.py) and everything derived from it."""

from __future__ import annotations

from pathlib import Path

from sim import observation as OB
from sim.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]


def test_docs_sim_md_holds_the_generated_table():
    assert OB.markdown_table() in (ROOT / "docs" / "sim.md").read_text()


def test_every_block_names_a_known_source_and_noise_field():
    task = make_task("hover")
    for b in OB.BLOCKS:
        assert b.source in OB.SOURCES
        for name in b.noise:
            assert hasattr(task, name), (b.name, name)
        if b.source == OB.BOARD:
            assert b.noise == ()


def test_the_hover_layout_splits_into_wire_and_board_blocks():
    layout = make_task("hover").obs_layout
    assert OB.wire_blocks(layout) == [
        ("position_error", 3),
        ("rotation_matrix", 9),
        ("velocity", 3),
        ("body_rates", 3),
    ]
    assert OB.board_blocks(layout) == [("position_integral", 3), ("past_actions", 32)]
    assert OB.wire_dim(layout) == 18
    described = OB.describe(layout)
    assert [d["offset"] for d in described] == [0, 3, 12, 15, 18, 21]
    assert {d["source"] for d in described} == {"estimate", "sensor", "board"}


def test_a_block_added_to_the_table_reaches_every_derived_place(monkeypatch):
    """One new row in the table (a 3-axis accelerometer read from the IMU) and the env's
    space, the compiled step's offsets, the policy spec, the ONNX metadata, both data
    headers, the wire (v4 STEP) and the docs' table all follow; no other file changes."""
    import json

    import gymnasium as gym
    import numpy as np
    import onnx
    import torch

    from export import header
    from export.model import from_actor
    from export.onnx_export import to_onnx
    from sim.contract.actor import Actor
    from sim.contract.spec import PolicySpec

    accel = OB.Block("accelerometer", 3, "m/s^2", "body", OB.SENSOR, "specific force")
    monkeypatch.setattr(OB, "BLOCKS", (*OB.BLOCKS, accel))
    monkeypatch.setattr(OB, "BY_NAME", {**OB.BY_NAME, "accelerometer": accel})

    task = make_task("hover")
    assert [n for n, *_ in task.obs_layout][-1] == "accelerometer"
    assert task.obs_dim == 56
    assert task.obs_offsets()[-1] == 53  # its slot, after every existing one
    assert gym.make("quadpilot/Hover-v0").observation_space.shape == (56,)
    spec = PolicySpec.of_task(task)
    assert spec.obs_dim == 56 and spec.layout_text.endswith(",accelerometer:3")
    assert OB.wire_dim(spec.obs_layout) == 21
    torch.manual_seed(0)
    policy = from_actor(Actor(56, 4, (8,)), spec, 0, "dummy")
    meta = {p.key: p.value for p in onnx.load_from_string(to_onnx(policy)).metadata_props}
    assert any("accelerometer" in json.dumps(v) for v in meta.values())
    obs = np.zeros((8, 56), dtype=np.float32)
    text = header.f32_header(policy, obs).text
    assert '"' + spec.layout_text + '"' in text
    assert "#define QP_IN_DIM 21" in text
    assert (
        "#define QP_STATE_BLOCKS {{0, 3}, {0, 9}, {0, 3}, {0, 3}, {1, 3}, {2, 32}, {0, 3}}" in text
    )
    assert "| accelerometer | 3 | m/s^2 | body | sensor |" in OB.markdown_table()
