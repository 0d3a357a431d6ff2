"""Removing what a killed writer left: atomic_write (sim/contract/files.py) writes
``.<name>.<random>.tmp`` beside its target and renames it; a kill -9 between the two
leaves that file behind. The next export or HIL run into the same directory removes
those of the files it writes (and only those: another program's temporary files are
not touched)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def remove_stale(directory: Path | str, names: Iterable[str]) -> list[Path]:
    """Delete ``.<name>.*.tmp`` in ``directory`` for each of ``names``; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for name in names:
        for tmp in directory.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except FileNotFoundError:  # a concurrent run removed or renamed it
                continue
            removed.append(tmp)
    return removed
