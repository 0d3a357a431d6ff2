"""require_tool(): skip a test when a tool is missing locally, fail it on CI.

CI=true means the environment promised every tool (.ci/run sets it), so a missing
one is a broken environment, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Path of executable ``name``; skips (locally) or fails (CI=true) when absent."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (see `make deps`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true requires it")
        pytest.skip(message)
    return path
