"""Where text comes from: a file, a folder of .txt files, a JSON-lines file of strings, or a named corpus.

    docs = load_documents("shakespeare")          # downloaded once to $MOSAIC_CACHE (or ~/.cache/memory-mosaics)
    docs = load_documents("stories.txt")          # split on <|endoftext|>; text after the last one is kept
    for text, ends in iter_segments("big.txt"):   # streamed: memory independent of the corpus size

A document list (or segment stream) is what the tokenizers see: each document is followed by the end-of-text token.
Files are read in chunks of CHUNK_CHARS characters; a document longer than SEGMENT_CHARS is passed on in pieces
(split after a newline) so that no corpus, however large, is ever held in memory whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
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
    # Not pinned, on purpose: the URL resolves the dataset's `main` branch, a moving revision the dataset's
    # owners may re-upload, and this package was built without network access, so no digest could be measured
    # here (an unverified number copied from elsewhere would be worse than none). Instead the digest of the first
    # download is written beside the file and every later use is checked against it (trust on first use): a
    # file that changes or is damaged after that is refused. To pin it, set sha256 below to that recorded digest.
    "tinystories": Corpus(
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        "TinyStoriesV2-GPT4-train.txt",
        None,
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("MOSAIC_CACHE") or Path.home() / ".cache" / "memory-mosaics")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
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


CHUNK_CHARS = 1 << 20  # characters read from a file at a time
SEGMENT_CHARS = 1 << 22  # a document longer than this (4 M characters) is streamed in pieces


def split_stories(text: str) -> list[str]:
    """Split on <|endoftext|>, dropping empty pieces. With separators present each story is stripped of the
    newlines around it; the text after the last separator is kept (a file need not end with one)."""
    return [d for d, _ in _split_stream(iter([text]), "<text>")]


def _split_stream(chunks: Iterator[str], name: str) -> Iterator[tuple[str, bool]]:
    """(text, ends_document) segments of a character stream split on EOT. A document is yielded whole unless it
    grows past SEGMENT_CHARS, in which case it is yielded in pieces ending after a newline (ends_document False
    until its last piece), unstripped. Counts NUL characters: a stream of nothing but NULs (and whitespace) is
    refused, a few are reported."""
    buf, seen_eot, open_doc, nul, visible = "", False, False, 0, 0
    for chunk in chunks:
        nul += chunk.count("\x00")
        visible += len(chunk) - sum(chunk.count(c) for c in " \n\t\r")
        buf += chunk
        if EOT in buf:
            pieces = buf.split(EOT)  # one split per chunk (splitting one story at a time would copy the rest)
            buf = pieces.pop()  # after the last separator: kept for the next chunk
            seen_eot = True
            for piece in pieces:
                if open_doc:  # the last piece of a long document
                    yield piece, True
                    open_doc = False
                elif piece.strip():
                    yield piece.strip("\n"), True
        if len(buf) > SEGMENT_CHARS:  # a long document: pass on all but its last line (it may hold part of an EOT)
            cut = buf.rfind("\n", 0, len(buf) - len(EOT)) + 1 or len(buf) - len(EOT)
            yield buf[:cut], False
            buf, open_doc = buf[cut:], True
    if nul and nul == visible:
        raise ValueError(f"{name} contains only NUL bytes ({nul:,}) and whitespace: not text (a damaged or "
                         f"preallocated file?)")
    if nul:
        print(f"warning: {name} contains {nul:,} NUL characters; they are kept as text", file=sys.stderr)
    if open_doc:
        yield buf, True
    elif buf.strip():
        yield (buf.strip("\n") if seen_eot else buf), True


def _read_chunks(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            while chunk := f.read(CHUNK_CHARS):
                yield chunk
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except (FileNotFoundError, IsADirectoryError):
        raise
    except OSError as err:  # permission denied, I/O error...
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None


def _read_jsonl(path: Path) -> Iterator[str]:
    try:
        f = open(path, encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    with f:
        try:
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
                yield item
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text ({err.reason})") from None


TEXT_SUFFIXES = (".txt", ".text", ".md")


def source_files(source: str | os.PathLike) -> list[Path]:
    """The files SOURCE names (a file, a folder's text files sorted, or a named corpus, fetched if needed)."""
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
        return files
    return [path]


def iter_segments(source: str | os.PathLike) -> Iterator[tuple[str, bool]]:
    """Stream (text, ends_document) segments of every document of SOURCE; memory does not grow with its size."""
    empty = True
    for f in source_files(source):
        if f.suffix.lower() == ".jsonl":
            segments = ((d, True) for d in _read_jsonl(f) if d.strip())
        else:
            segments = _split_stream(_read_chunks(f), str(f))
        for seg in segments:
            empty = False
            yield seg
    if empty:
        raise ValueError(f"data source {source} contains no text")


def segments_of(data) -> Iterator[tuple[str, bool]]:
    """A data source (path or corpus name: streamed by iter_segments) or an iterable of documents -> (text,
    ends_document) segments."""
    if isinstance(data, (str, os.PathLike)):
        return iter_segments(data)
    return ((d, True) for d in data)


def iter_documents(source: str | os.PathLike) -> Iterator[str]:
    """Stream the documents of SOURCE (each whole: a very long one is joined from its segments)."""
    parts: list[str] = []
    for text, ends in iter_segments(source):
        parts.append(text)
        if ends:
            yield "".join(parts)
            parts = []


def load_documents(source: str | os.PathLike) -> list[str]:
    """The documents of SOURCE (a file, a folder of text files, a .jsonl file, or a corpus name), in memory.
    For corpora of any size use iter_segments (what training uses)."""
    return list(iter_documents(source))


def source_bytes(source: str | os.PathLike) -> int:
    """Total size of SOURCE's files on disk (for sampling and progress)."""
    return sum(f.stat().st_size for f in source_files(source))
