"""Tokenizers: characters, byte-level BPE trained on the corpus (`tokenizers` library), GPT-2 BPE (`tiktoken`).

Every tokenizer has an end-of-text id (`eot_id`) appended after each document, round-trips through a JSON-able
dict saved with the checkpoint (`to_dict` / `tokenizer_from_dict`), and encodes text to a list of ids.

    tok = build_tokenizer("bpe", docs, vocab_size=2048)
    ids = tok.encode("Once upon a time")
    tok2 = tokenizer_from_dict(tok.to_dict())
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from .sources import EOT

KINDS = ("char", "bpe", "gpt2")


class CharTokenizer:
    """One id per character seen in the training text; id 0 is end-of-text."""

    kind = "char"

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.itos = [EOT] + self.chars
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.eot_id = 0

    @classmethod
    def train(cls, docs: list[str]) -> CharTokenizer:
        return cls(sorted(set().union(*map(set, docs))))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for i, piece in enumerate(text.split(EOT)):
            if i:
                out.append(self.eot_id)
            try:
                out.extend(self.stoi[c] for c in piece)
            except KeyError as err:
                raise ValueError(f"character {err.args[0]!r} is not in the character tokenizer's vocabulary "
                                 f"({len(self.chars)} characters seen in training)") from None
        return out

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
    def train(cls, docs: list[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(docs, trainer)
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


def build_tokenizer(kind: str, docs: list[str], vocab_size: int = 4096) -> Tokenizer:
    """Train (char, bpe) or load (gpt2) a tokenizer for these documents."""
    if kind == "char":
        return CharTokenizer.train(docs)
    if kind == "bpe":
        return BPETokenizer.train(docs, vocab_size)
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


def encode_documents(tok: Tokenizer, docs: list[str]) -> np.ndarray:
    """All documents, each followed by EOT, as one flat id array (uint16 when the vocabulary allows)."""
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32
    batch = tok.encode_batch(docs) if hasattr(tok, "encode_batch") else [tok.encode(d) for d in docs]
    total = sum(len(ids) + 1 for ids in batch)
    out = np.empty(total, dtype=dtype)
    pos = 0
    for ids in batch:
        out[pos:pos + len(ids)] = ids
        out[pos + len(ids)] = tok.eot_id
        pos += len(ids) + 1
    return out
