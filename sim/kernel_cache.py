"""Keep numba's on-disk kernel cache in step with the sources it was compiled from.

numba keys a cached kernel on the file that defines it, but the kernels in ``batch.py``
inline functions from ``dynamics.py`` (and constants from ``layout.py`` and ``tasks.py``):
after an edit of one of those, the cache would go on serving the old code. So the cache
is dropped whenever the hash of these sources changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = ("layout.py", "dynamics.py", "observation.py", "tasks.py", "batch.py")
STAMP = "kernel-sources.sha256"


def sources_hash() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((HERE / name).read_bytes())
    return h.hexdigest()


def drop_if_stale(cache_dir: Path = HERE / "__pycache__") -> bool:
    """Delete the cached kernels if the sources changed since they were built; True if
    anything was deleted. A read-only install is left alone (numba then caches nothing)."""
    stamp = cache_dir / STAMP
    current = sources_hash()
    try:
        if stamp.exists() and stamp.read_text() == current:
            return False
        dropped = False
        for f in list(cache_dir.glob("*.nbi")) + list(cache_dir.glob("*.nbc")):
            f.unlink(missing_ok=True)
            dropped = True
        cache_dir.mkdir(exist_ok=True)
        stamp.write_text(current)
        return dropped
    except OSError:
        return False
