"""Token arrays: tokenise once into a memory-mapped file cached by content hash, split, sample windows.

    tokens = tokenize_cached("big.txt", tok)          # np.memmap (N,), cached under $MOSAIC_CACHE/tokens/ (streamed)
    train, val = train_val_split(tokens, 0.1)          # the last 10% of tokens is validation (deterministic)
    x, y = windows_at(train, starts, 256)              # (B, 256) int64 each; y is x shifted by one

Windows start at any offset and may cross document boundaries (as in the paper, §8); sampling is with
replacement, driven only by the torch.Generator so a run is reproducible and resumable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .sources import EOT, cache_dir, segments_of, sha256_file, source_bytes
from .tokenizer import Tokenizer, encode_segments, token_dtype


def content_key(data, tok: Tokenizer) -> str:
    """sha256 over the tokenizer and the documents (a list, or a source streamed): the cache key of their tokens.
    A whole document is hashed as its 8-byte length then its bytes; the pieces of a document too long to hold
    in memory carry a flag bit in the length, so no two different segmentations collide."""
    h = hashlib.sha256(json.dumps(tok.to_dict(), sort_keys=True).encode())
    whole = True  # the next segment starts a document
    for text, ends in segments_of(data):
        b = text.encode("utf-8")
        flag = 0 if (whole and ends) else (1 << 62 if ends else 1 << 63)
        h.update((len(b) | flag).to_bytes(8, "little"))  # length prefix: ["ab","c"] and ["a","bc"] differ
        h.update(b)
        whole = ends
    return h.hexdigest()


def _rewrite_meta(meta_path: Path, meta: dict) -> None:
    """The sidecar .json replaced by a temporary file renamed: never half-written."""
    fd, tmp = tempfile.mkstemp(dir=meta_path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, meta_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(meta_path: Path, bin_path: Path, verify: bool = False) -> np.memmap | None:
    """The cached token array if it is complete and intact; None (after saying why) if it must be rebuilt.
    The sha256 of the .bin is recomputed when its size or mtime differs from the ones recorded when it was last
    written or verified (any rewrite changes the mtime), or always with verify=True; a hash that matches records
    the new mtime, so the next hit is a stat."""
    if not (meta_path.exists() and bin_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        dtype, length, digest = np.dtype(meta["dtype"]), int(meta["length"]), meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        print(f"token cache {meta_path} is unreadable or from an older version; rebuilding it", file=sys.stderr)
        return None
    stat = bin_path.stat()
    if stat.st_size != length * dtype.itemsize:
        print(f"token cache {bin_path} has {stat.st_size:,} bytes, expected {length * dtype.itemsize:,}: rebuilding "
              f"it", file=sys.stderr)
        return None
    if verify or meta.get("mtime_ns") != stat.st_mtime_ns:
        if sha256_file(bin_path) != digest:  # plain reads: mapped pages would count in the resident memory
            print(f"token cache {bin_path} is corrupt (its sha256 does not match {meta_path.name}): rebuilding it",
                  file=sys.stderr)
            return None
        if meta.get("mtime_ns") != stat.st_mtime_ns:
            try:
                _rewrite_meta(meta_path, {**meta, "mtime_ns": stat.st_mtime_ns})
            except OSError:  # a read-only cache: verified all the same, hashed again next time
                pass
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(length,))


def tokenize_cached(data, tok: Tokenizer, cache: Path | None = None, key: str | None = None,
                    verify: bool = False) -> np.ndarray:
    """The token ids of `data` (documents or a source, each document followed by EOT) as a read-only memmap.

    Tokenised once, streamed into OUT/<key>.bin (memory does not grow with the corpus), with a sidecar
    <key>.json recording dtype, length, the sha256 of the .bin and its mtime: a cached .bin whose size or mtime
    changed is hashed again (verify=True: always), and a damaged cache is rebuilt, never trained on. Both files
    are written to temporary names and renamed when complete; a failure (a full disk included) leaves no temporary
    file behind. `key` skips recomputing content_key(data, tok).
    """
    folder = Path(cache or cache_dir()) / "tokens"
    key = key or content_key(data, tok)
    meta_path, bin_path = folder / f"{key}.json", folder / f"{key}.bin"
    hit = _cached(meta_path, bin_path, verify)
    if hit is not None:
        return hit
    dtype = token_dtype(tok)
    total = source_bytes(data) if isinstance(data, (str, os.PathLike)) else sum(len(d) for d in data)
    tmps: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        tmps.append(tmp)
        h, length = hashlib.sha256(), 0
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="tokenising", disable=total < PROGRESS_BYTES,
                   dynamic_ncols=True)
        with os.fdopen(fd, "wb") as f, bar:
            counted = _counting(segments_of(data), bar)
            for ids in encode_segments(tok, counted):
                payload = ids.tobytes()
                f.write(payload)
                h.update(payload)
                length += len(ids)
            f.flush()
            os.fsync(f.fileno())
        fd, meta_tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        tmps.append(meta_tmp)
        with os.fdopen(fd, "w") as f:  # the .bin's mtime: a rename keeps it
            json.dump({"dtype": dtype.name, "length": length, "sha256": h.hexdigest(),
                       "mtime_ns": os.stat(tmp).st_mtime_ns}, f)
        os.replace(tmp, bin_path)
        os.replace(meta_tmp, meta_path)  # the .json is renamed last: its presence means the .bin is complete
    except BaseException as err:
        for t in tmps:
            Path(t).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ValueError(f"no space left on the device holding the token cache {folder} "
                             f"({total:,} bytes of text to tokenise); free some space or point MOSAIC_CACHE "
                             f"at another disk") from None
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            raise ValueError(f"cannot write the token cache in {folder}: {err.strerror or err}") from None
        raise
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(length,))


PROGRESS_BYTES = 16 << 20  # show a progress bar when tokenising more than this


def _counting(segments, bar):
    """Pass segments through, advancing the bar by their characters (≈ bytes) every MiB or so."""
    pending = 0
    for text, ends in segments:
        pending += len(text) + (len(EOT) if ends else 0)
        if pending >= 1 << 20:
            bar.update(pending)
            pending = 0
        yield text, ends
    bar.update(pending)


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

