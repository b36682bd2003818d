"""Tokenizers: characters, byte-level BPE trained on the corpus (`tokenizers` library), GPT-2 BPE (`tiktoken`).

Every tokenizer has an end-of-text id (`eot_id`) appended after each document, round-trips through a JSON-able
dict saved with the checkpoint (`to_dict` / `tokenizer_from_dict`), and encodes text to a list of ids.

    tok = build_tokenizer("bpe", docs, vocab_size=2048)    # docs: a list of strings, or a data source (streamed)
    ids = tok.encode("Once upon a time")
    tok2 = tokenizer_from_dict(tok.to_dict())

A data source given by name or path is streamed (data/sources.iter_segments): the character alphabet is collected
in one pass, and BPE is trained on at most BPE_SAMPLE_BYTES of it (documents drawn uniformly at random, seed 0).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .sources import EOT, segments_of, source_bytes

BPE_SAMPLE_BYTES = 100 << 20  # BPE merges are learned from at most 100 MiB of text (enough for a 2k-50k vocabulary)
BPE_MIN_VOCAB = 257  # the 256 byte symbols of byte-level BPE plus <|endoftext|>
ENCODE_BATCH_CHARS = 1 << 22  # text encoded per batch when streaming


def _texts(data) -> Iterator[str]:
    """The texts of `data`: a data source (path or corpus name: streamed in segments) or an iterable of documents."""
    return (text for text, _ in segments_of(data))

KINDS = ("char", "bpe", "gpt2")


class CharTokenizer:
    """One id per character seen in the training text; id 0 is end-of-text."""

    kind = "char"

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.itos = [EOT] + self.chars
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.eot_id = 0
        # code point -> id (-1: not in the vocabulary), for vectorised encoding
        self.table = np.full(max(map(ord, self.chars), default=0) + 1, -1, dtype=np.int64)
        for i, c in enumerate(self.chars, 1):
            self.table[ord(c)] = i

    @classmethod
    def train(cls, data) -> CharTokenizer:
        """Every character of `data` (documents, or a source streamed once)."""
        seen = np.zeros(0, dtype=np.uint32)
        batch: list[str] = []
        size = 0
        for text in itertools.chain(_texts(data), [None]):  # vectorised over batches of ~4 M characters
            if text is not None:
                batch.append(text)
                size += len(text)
            if batch and (text is None or size >= ENCODE_BATCH_CHARS):
                codes = np.frombuffer("".join(batch).encode("utf-32-le"), dtype=np.uint32)
                seen = np.union1d(seen, np.unique(codes))
                batch, size = [], 0
        return cls([chr(c) for c in seen.tolist()])

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """The ids of `text` as an int64 array (a literal <|endoftext|> maps to eot_id)."""
        out = []
        for i, piece in enumerate(text.split(EOT)):
            if i:
                out.append(np.array([self.eot_id]))
            cps = np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
            ids = self.table[np.minimum(cps, len(self.table) - 1)]
            bad = (ids < 0) | (cps >= len(self.table))
            if bad.any():
                c = chr(int(cps[np.argmax(bad)]))
                raise ValueError(f"character {c!r} is not in the character tokenizer's vocabulary "
                                 f"({len(self.chars)} characters seen in training)")
            out.append(ids)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "char", "chars": self.chars}


class BPETokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenisation, no unknown tokens) trained with `tokenizers`."""

    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.eot_id = tok.token_to_id(EOT)

    @classmethod
    def train(cls, data, vocab_size: int) -> BPETokenizer:
        """Learn merges from `data` (documents, or a source: a sample of BPE_SAMPLE_BYTES if it is larger)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if not isinstance(vocab_size, int) or vocab_size < BPE_MIN_VOCAB:
            raise ValueError(f"BPE vocabulary size must be ≥ {BPE_MIN_VOCAB} (the 256 byte symbols and "
                             f"<|endoftext|>), got {vocab_size}")
        texts = _texts(data)
        if isinstance(data, (str, os.PathLike)):
            total = source_bytes(data)
            if total > BPE_SAMPLE_BYTES:  # each document kept with probability sample/total (seeded: reproducible)
                keep, rng = BPE_SAMPLE_BYTES / total, random.Random(0)
                texts = (t for t in texts if rng.random() < keep)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids  # EOT is a special token: a literal <|endoftext|> maps to eot_id

    def encode_batch(self, docs: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(docs)]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "bpe", "json": self.tok.to_str()}


class TiktokenTokenizer:
    """GPT-2 BPE through `tiktoken` (50257 tokens, EOT 50256), as in the paper's BabiStories runs."""

    kind = "gpt2"

    def __init__(self, name: str = "gpt2"):
        if importlib.util.find_spec("tiktoken") is None:
            raise ValueError("the gpt2 tokenizer needs tiktoken: pip install tiktoken (or use --tokenizer bpe)")
        import tiktoken

        try:
            self.enc = tiktoken.get_encoding(name)
        except Exception as err:  # tiktoken downloads its BPE files on first use
            raise ValueError(f"tiktoken could not load the '{name}' encoding ({type(err).__name__}); it downloads "
                             f"its files on first use — run once online, or set TIKTOKEN_CACHE_DIR to a folder "
                             f"holding them, or use --tokenizer bpe") from None
        self.name = name
        self.eot_id = self.enc.eot_token

    @property
    def vocab_size(self) -> int:
        return self.enc.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.enc.encode(text, allowed_special={EOT})

    def decode(self, ids) -> str:
        return self.enc.decode([int(i) for i in ids])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "gpt2", "name": self.name}


Tokenizer = CharTokenizer | BPETokenizer | TiktokenTokenizer


def build_tokenizer(kind: str, data, vocab_size: int = 4096) -> Tokenizer:
    """Train (char, bpe) or load (gpt2) a tokenizer for `data`: a list of documents or a data source (streamed)."""
    if kind == "char":
        return CharTokenizer.train(data)
    if kind == "bpe":
        return BPETokenizer.train(data, vocab_size)
    if kind == "gpt2":
        return TiktokenTokenizer()
    raise ValueError(f"unknown tokenizer '{kind}'; choose one of: {', '.join(KINDS)}")


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d["chars"])
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(d["json"]))
    if kind == "gpt2":
        return TiktokenTokenizer(d.get("name", "gpt2"))
    raise ValueError(f"unknown tokenizer kind {kind!r} in saved tokenizer")


def token_dtype(tok: Tokenizer) -> np.dtype:
    return np.dtype(np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32)


def _encode_flat(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(every text's ids concatenated, each text's id count)."""
    if isinstance(tok, CharTokenizer):
        joined = "".join(texts)
        if EOT not in joined:  # one vectorised call for the whole batch (corpora of millions of short stories)
            return tok.encode_array(joined), np.array([len(t) for t in texts], dtype=np.int64)
        encoded = [tok.encode_array(t) for t in texts]
    else:
        encoded = tok.encode_batch(texts) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in texts]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths


def encode_segments(tok: Tokenizer, segments: Iterable[tuple[str, bool]]) -> Iterator[np.ndarray]:
    """Stream (text, ends_document) segments -> flat id arrays, EOT after each document's last segment, batched
    by ENCODE_BATCH_CHARS characters so memory stays bounded whatever the corpus size."""
    dtype = token_dtype(tok)
    batch: list[tuple[str, bool]] = []
    size = 0

    def flush() -> np.ndarray:
        flat, lengths = _encode_flat(tok, [t for t, _ in batch])
        ends = np.array([e for _, e in batch], dtype=bool)
        return np.insert(flat.astype(dtype), np.cumsum(lengths)[ends], tok.eot_id)  # EOT after each finished doc

    for seg in segments:
        batch.append(seg)
        size += len(seg[0])
        if size >= ENCODE_BATCH_CHARS:
            yield flush()
            batch, size = [], 0
    if batch:
        yield flush()


def encode_documents(tok: Tokenizer, docs: Iterable[str]) -> np.ndarray:
    """All documents, each followed by EOT, as one flat id array (uint16 when the vocabulary allows)."""
    parts = list(encode_segments(tok, ((d, True) for d in docs)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=token_dtype(tok))
