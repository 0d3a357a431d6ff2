"""The pipeline's imports point down it (sim < train < export < firmware_bridge) and no
two modules import each other, however indirectly - counting imports inside functions and
under TYPE_CHECKING, which hide a cycle without removing it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sim", "train", "export", "firmware_bridge")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every project module ``path`` imports, wherever the import statement is.
    ``from pkg import name`` counts as importing pkg.name when that is a module, else pkg."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                base = ".".join([package, *([base] if base else [])])
            subs = {f"{base}.{a.name}" for a in node.names} & modules
            found |= subs or {base}
    return {m for m in found if m in modules and m != me}


def graph() -> dict[str, set[str]]:
    files = [p for stage in STAGES for p in (ROOT / stage).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    return {name: imports_of(path, set(modules)) for name, path in modules.items()}


def test_no_module_imports_a_later_stage():
    upward = [
        f"{name} imports {m}"
        for name, deps in graph().items()
        for m in deps
        if STAGES.index(m.split(".")[0]) > STAGES.index(name.split(".")[0])
    ]
    assert not upward, upward


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_see_what_they_look_for():
    # A cycle and an upward import are found when present (so the tests above can fail).
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    g = graph()
    assert "export.quant_params" in g["export.int_reference"]  # relative and absolute
    assert "firmware_bridge.hil_report" in g["firmware_bridge.hil_run"]
    assert "sim.tasks" in g["train.loop"]
