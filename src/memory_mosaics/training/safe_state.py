"""Resumable training state without pickle: tensors in safetensors, everything else in JSON.

    tree, tensors = pack({"step": 7, "optimizer": opt.state_dict(), "rng": [torch.get_rng_state()]})
    # tree: JSON-able, each tensor replaced by {"__tensor__": "t3"}; tensors: {"t3": tensor, ...}
    state = unpack(tree, tensors)  # the same structure back

Loading either file can only ever produce tensors, numbers, strings, lists and dicts: nothing in them is
executed (unlike `torch.load(weights_only=False)`, which unpickles and can run arbitrary code).
JSON has no tuples, non-string keys or non-finite floats, so those are tagged:
{"__tuple__": [...]}, {"__items__": [[key, value], ...]}, {"__float__": "nan" | "inf" | "-inf"}.
"""

from __future__ import annotations

import math
from typing import Any

import torch

_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")


class StateFormatError(ValueError):
    """The JSON tree or its tensors do not form a valid packed state."""


def pack(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """(JSON-able tree, {name: CPU tensor}). Raises TypeError for anything but tensors, numbers, strings,
    None, lists, tuples and dicts (a programming error: such a value could not be restored safely)."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(x):
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return float(x) if math.isfinite(x) else {"__float__": repr(float(x))}
        if isinstance(x, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = x.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
            return {"__tensor__": name}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, dict):
            if all(isinstance(k, str) and k not in _TAGS for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in x.items()]}
        raise TypeError(f"cannot store a {type(x).__name__} in a checkpoint's state (tensors, numbers, strings, "
                        f"None, lists, tuples and dicts only)")

    return enc(obj), tensors


def unpack(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `pack`; StateFormatError on anything `pack` cannot have written."""

    def dec(x):
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            raise StateFormatError(f"unexpected {type(x).__name__} in the state")
        tag = next((t for t in _TAGS if t in x), None)
        if tag is None:
            return {k: dec(v) for k, v in x.items()}
        if len(x) != 1:
            raise StateFormatError(f"malformed {tag} entry")
        value = x[tag]
        if tag == "__tensor__":
            if not isinstance(value, str) or value not in tensors:
                raise StateFormatError(f"the state refers to a tensor {value!r} that is not stored")
            return tensors[value]
        if tag == "__float__":
            if value not in ("nan", "inf", "-inf"):
                raise StateFormatError(f"bad float {value!r}")
            return float(value)
        if not isinstance(value, list):
            raise StateFormatError(f"malformed {tag} entry")
        if tag == "__tuple__":
            return tuple(dec(v) for v in value)
        if not all(isinstance(kv, list) and len(kv) == 2 for kv in value):
            raise StateFormatError("malformed __items__ entry")
        out = {}
        for k, v in value:
            k = dec(k)
            try:
                out[k] = dec(v)
            except TypeError:
                raise StateFormatError(f"unhashable key {k!r}") from None
        return out

    return dec(tree)
