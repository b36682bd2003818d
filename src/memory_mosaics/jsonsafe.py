"""JSON that stays JSON: NaN and ±inf become null (Python's json writes bare `NaN`, which is not JSON)."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """A copy of obj with every non-finite float replaced by None (dicts, lists and tuples walked)."""
    if isinstance(obj, float):  # numpy float64 is a float subclass
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        return finite(obj.item())
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """json.dumps with non-finite floats as null; anything else non-JSON is an error, never written."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
