"""Token arrays: tokenise once into a memory-mapped file cached by content hash, split, sample windows.

    tokens = tokenize_cached(docs, tok)               # np.memmap (N,), cached under $MOSAIC_CACHE/tokens/
    train, val = train_val_split(tokens, 0.1)          # the last 10% of tokens is validation (deterministic)
    x, y = windows_at(train, starts, 256)              # (B, 256) int64 each; y is x shifted by one

Windows start at any offset and may cross document boundaries (as in the paper, §8); sampling is with
replacement, driven only by the torch.Generator so a run is reproducible and resumable.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .sources import cache_dir
from .tokenizer import Tokenizer, encode_documents


def content_key(docs: list[str], tok: Tokenizer) -> str:
    """sha256 over the tokenizer and the documents: the cache key of their token array."""
    h = hashlib.sha256(json.dumps(tok.to_dict(), sort_keys=True).encode())
    for d in docs:
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))  # length prefix: ["ab","c"] and ["a","bc"] differ
        h.update(b)
    return h.hexdigest()


def tokenize_cached(docs: list[str], tok: Tokenizer, cache: Path | None = None) -> np.ndarray:
    """The documents' token ids (each document followed by EOT) as a read-only memmap, tokenised once."""
    folder = Path(cache or cache_dir()) / "tokens"
    key = content_key(docs, tok)
    meta_path, bin_path = folder / f"{key}.json", folder / f"{key}.bin"
    if meta_path.exists() and bin_path.exists():
        meta = json.loads(meta_path.read_text())
        if bin_path.stat().st_size == meta["length"] * np.dtype(meta["dtype"]).itemsize:
            return np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["length"],))
    ids = encode_documents(tok, docs)
    folder.mkdir(parents=True, exist_ok=True)
    for path, payload in ((bin_path, ids.tobytes()),
                          (meta_path, json.dumps({"dtype": ids.dtype.name, "length": len(ids)}).encode())):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)  # the .json is written last: its presence means the .bin is complete
    return np.memmap(bin_path, dtype=ids.dtype, mode="r", shape=(len(ids),))


def train_val_split(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """First (1 - val_fraction) of the tokens for training, the rest for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(tokens) * (1.0 - val_fraction))
    return tokens[:cut], tokens[cut:]


def check_length(tokens: np.ndarray, context: int, what: str) -> None:
    if len(tokens) < context + 1:
        raise ValueError(f"the {what} data has {len(tokens)} tokens, fewer than context+1 = {context + 1}; "
                         f"use more text, a shorter context, or a different --val-fraction")


def windows_at(tokens: np.ndarray, starts: list[int], context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of context+1 tokens at the given starts -> inputs and next-token targets, each (B, context)."""
    rows = torch.from_numpy(np.stack([np.asarray(tokens[s:s + context + 1], dtype=np.int64) for s in starts]))
    return rows[:, :-1], rows[:, 1:]

