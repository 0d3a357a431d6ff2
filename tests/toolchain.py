"""require_tool(), require_module(): skip a test when a tool or an optional Python package
is missing locally, fail it on CI.

CI=true means the environment promised every tool (.ci/run sets it), so a missing
one is a broken environment, not a reason to skip.
"""

from __future__ import annotations

import importlib.util
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


def require_module(name: str, install: str) -> None:
    """Skips (locally) or fails (CI=true) when Python package ``name`` is not installed;
    ``install`` says how to get it."""
    if importlib.util.find_spec(name) is None:
        message = f"Python package {name} not installed ({install})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true requires it")
        pytest.skip(message)
