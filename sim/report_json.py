"""Reports as strict JSON: a figure with nothing to measure (NaN, e.g. the hover quality
of a row where every episode crashed) is written as null, which every JSON reader takes;
Python's default would write the non-standard NaN."""

from __future__ import annotations

import json
import math


def finite_or_none(obj):
    """``obj`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
