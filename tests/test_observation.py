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
    assert OB.board_blocks(layout) == [("position_integral", 3), ("past_actions", 16)]
    assert OB.wire_dim(layout) == 18
    described = OB.describe(layout)
    assert [d["offset"] for d in described] == [0, 3, 12, 15, 18, 21]
    assert {d["source"] for d in described} == {"estimate", "sensor", "board"}
