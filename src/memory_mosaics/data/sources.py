"""Where text comes from: a file, a folder of .txt files, a JSON-lines file of strings, or a named corpus.

    docs = load_documents("shakespeare")          # downloaded once to $MOSAIC_CACHE (or ~/.cache/memory-mosaics)
    docs = load_documents("stories.txt")          # split on <|endoftext|>; a cut-off last story is dropped

A document list is what the tokenizers see: each document is followed by the end-of-text token.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

EOT = "<|endoftext|>"


@dataclass(frozen=True)
class Corpus:
    url: str
    filename: str
    sha256: str | None  # None: not known in advance; the first download's digest is printed and recorded


CORPORA: dict[str, Corpus] = {
    # karpathy/char-rnn data/tinyshakespeare/input.txt — the file nanoGPT's shakespeare_char uses.
    "shakespeare": Corpus(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "tinyshakespeare.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    # roneneldan/TinyStories, train split as one text file (stories separated by <|endoftext|>), ~2.2 GB.
    # TODO(maintainers): fill in its sha256 once verified; until then the digest of the first download is
    # written beside the file and every later use is checked against it (trust on first use).
    "tinystories": Corpus(
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        "TinyStoriesV2-GPT4-train.txt",
        None,
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("MOSAIC_CACHE") or Path.home() / ".cache" / "memory-mosaics")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch_corpus(name: str) -> Path:
    """Path of a named corpus in the cache, downloading (and checking its sha256) on first use."""
    corpus = CORPORA[name]
    path = cache_dir() / "corpora" / corpus.filename
    digest_file = path.with_suffix(path.suffix + ".sha256")
    expected = corpus.sha256 or (digest_file.read_text().strip() if digest_file.exists() else None)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"downloading {name} from {corpus.url} to {path}", flush=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(corpus.url, timeout=60) as resp:
                while block := resp.read(1 << 20):
                    out.write(block)
            os.replace(tmp, path)  # only a complete download gets the final name
        except (urllib.error.URLError, OSError) as err:
            Path(tmp).unlink(missing_ok=True)
            raise FileNotFoundError(
                f"could not download the '{name}' corpus ({getattr(err, 'reason', err)}); if you are offline, "
                f"download {corpus.url} elsewhere and pass the file: --data /path/to/{corpus.filename} "
                f"(or place it at {path})") from None
    actual = sha256_file(path)
    if expected is None:
        digest_file.write_text(actual + "\n")
        print(f"{name}: sha256 {actual} (recorded in {digest_file}; no published checksum to compare)")
    elif actual != expected:
        raise ValueError(f"corpus file {path} has sha256 {actual}, expected {expected}: it is corrupt or "
                         f"a different file; delete it to download again")
    return path


def split_stories(text: str) -> list[str]:
    """Split on <|endoftext|>. With separators present, the piece after the last one is a story cut off by
    truncation (a complete corpus ends with a separator), so it is dropped. Empty pieces are dropped."""
    if EOT not in text:
        return [text] if text.strip() else []
    pieces = text.split(EOT)
    pieces = pieces[:-1]  # after the last separator: empty, or a cut-off story
    return [p.strip("\n") for p in pieces if p.strip()]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _read_jsonl(path: Path) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                item = item["text"]
            if not isinstance(item, str):
                raise ValueError(f"{path}:{n}: expected a JSON string (or an object with a 'text' string)")
            docs.append(item)
    return docs


TEXT_SUFFIXES = (".txt", ".text", ".md")


def load_documents(source: str | os.PathLike) -> list[str]:
    """The documents of SOURCE (a file, a folder of text files, a .jsonl file, or a corpus name)."""
    source = str(source)
    if not source:
        raise ValueError("no data source given (pass --data FILE, FOLDER, FILE.jsonl, or shakespeare/tinystories)")
    path = Path(source).expanduser()
    if not path.exists() and source in CORPORA:
        path = fetch_corpus(source)
    if not path.exists():
        names = ", ".join(CORPORA)
        raise FileNotFoundError(f"data source not found: {source} (expected a file, a folder, or one of: {names})")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES + (".jsonl",))
        if not files:
            raise ValueError(f"folder {path} has no text files ({', '.join(TEXT_SUFFIXES)}, .jsonl)")
        docs = [d for f in files for d in _load_file(f)]
    else:
        docs = _load_file(path)
    if not docs:
        raise ValueError(f"data source {source} contains no text")
    return docs


def _load_file(path: Path) -> list[str]:
    if path.suffix.lower() == ".jsonl":
        return [d for d in _read_jsonl(path) if d.strip()]
    return split_stories(_read_text(path))
