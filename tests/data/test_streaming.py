"""Corpora of any size and hostile files: streamed tokenisation, a cache that detects damage and leaves nothing
behind on a full disk, NUL files, text after the last separator, too-small BPE vocabularies, unreadable paths."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from memory_mosaics.cli import main
from memory_mosaics.data import (
    EOT,
    CharTokenizer,
    build_tokenizer,
    content_key,
    dataset,
    encode_documents,
    sources,
    tokenize_cached,
    tokenizer,
)
from tests.helpers import TINY


def stories(n: int, tail: str = "") -> str:
    return "".join(f"story {i}: the cat sat on mat {i % 7}.\n{EOT}\n" for i in range(n)) + tail


def test_streamed_tokens_equal_in_memory_tokens(tmp_path, monkeypatch):
    """Small chunks and segments force every streaming path; a character tokenizer is segmentation-invariant."""
    long_doc = "".join(f"line {i} of a very long document\n" for i in range(200))  # > SEGMENT_CHARS below
    text = stories(30) + long_doc + EOT + stories(5, tail="the end, no separator")
    path = tmp_path / "c.txt"
    path.write_text(text)
    monkeypatch.setattr(sources, "CHUNK_CHARS", 37)
    monkeypatch.setattr(sources, "SEGMENT_CHARS", 500)
    monkeypatch.setattr(tokenizer, "ENCODE_BATCH_CHARS", 300)
    segments = list(sources.iter_segments(path))
    assert any(not ends for _, ends in segments)  # the long document really was streamed in pieces
    docs = sources.load_documents(path)
    assert docs[30] == "\n" + long_doc  # whole again (streamed pieces are passed on unstripped)
    assert docs[-1] == "the end, no separator"  # the text after the last separator is kept
    tok = build_tokenizer("char", str(path))
    assert tok.chars == CharTokenizer.train(docs).chars
    streamed = tokenize_cached(str(path), tok)
    assert streamed.tolist() == encode_documents(tok, docs).tolist()
    assert content_key(str(path), tok) != content_key(docs, tok)  # segmentation is part of the key
    monkeypatch.setattr(sources, "SEGMENT_CHARS", 1 << 22)  # no document split: same key as the list
    assert content_key(str(path), tok) == content_key(sources.load_documents(path), tok)


def test_bpe_trains_on_a_sample_of_a_large_source(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text(stories(3000))
    monkeypatch.setattr(tokenizer, "BPE_SAMPLE_BYTES", path.stat().st_size // 10)
    seen = []
    real = tokenizer._texts

    def spy(data):
        for t in real(data):
            seen.append(t)
            yield t

    monkeypatch.setattr(tokenizer, "_texts", spy)
    tok = build_tokenizer("bpe", str(path), vocab_size=300)
    assert tok.vocab_size <= 300 and tok.encode(EOT) == [tok.eot_id]
    assert len(seen) == 3000  # every document streamed past, about a tenth kept (checked via the vocabulary)
    tokens = tokenize_cached(str(path), tok)
    assert tok.decode(tokens[:20]).startswith("story 0: the cat")


def test_bpe_vocabulary_smaller_than_the_byte_alphabet_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="must be ≥ 257"):
        build_tokenizer("bpe", ["hello"], vocab_size=200)
    f = tmp_path / "t.txt"
    f.write_text(stories(50))
    code = main(["train", *TINY, "--max-steps", "1", "--data", str(f), "--tokenizer", "bpe",
                 "--bpe-vocab-size", "100", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "must be ≥ 257" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_damaged_cache_is_detected_and_rebuilt(tmp_path, capsys):
    path = tmp_path / "c.txt"
    path.write_text(stories(40))
    tok = build_tokenizer("char", str(path))
    good = np.array(tokenize_cached(str(path), tok))
    (bin_path,) = (sources.cache_dir() / "tokens").glob("*.bin")
    raw = bytearray(bin_path.read_bytes())
    raw[10:14] = bytes(4)  # damage in place: same size, different tokens
    bin_path.write_bytes(bytes(raw))
    _age(bin_path)  # a rewrite changes the mtime, unless it falls in the same clock tick as the cache's write
    again = tokenize_cached(str(path), tok)
    assert "is corrupt" in capsys.readouterr().err
    assert np.array_equal(np.array(again), good)
    bin_path.write_bytes(bytes(raw[:-2]))  # truncated
    assert np.array_equal(np.array(tokenize_cached(str(path), tok)), good)
    assert "expected" in capsys.readouterr().err


def _age(path, seconds=10):
    """Move a file's mtime by `seconds`: a later rewrite, whatever the file system's clock granularity."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_cache_hit_hashes_only_a_changed_file(tmp_path, capsys, monkeypatch):
    """A hit whose .bin has the size and mtime recorded at writing (or last verification) is a stat, not a sha256
    of the whole file; a same-size change with a new mtime and a truncation are still caught; verify=True hashes."""
    path = tmp_path / "c.txt"
    path.write_text(stories(40))
    tok = build_tokenizer("char", str(path))
    good = np.array(tokenize_cached(str(path), tok))
    (bin_path,) = (sources.cache_dir() / "tokens").glob("*.bin")
    hashed = []
    real = dataset.sha256_file
    monkeypatch.setattr(dataset, "sha256_file", lambda p: hashed.append(p) or real(p))

    assert np.array_equal(tokenize_cached(str(path), tok), good) and hashed == []  # unchanged: no hash
    assert np.array_equal(tokenize_cached(str(path), tok, verify=True), good) and len(hashed) == 1

    _age(bin_path)  # touched, same bytes: hashed once, found intact, the new mtime recorded
    assert np.array_equal(tokenize_cached(str(path), tok), good) and len(hashed) == 2
    assert np.array_equal(tokenize_cached(str(path), tok), good) and len(hashed) == 2
    assert "corrupt" not in capsys.readouterr().err

    raw = bytearray(bin_path.read_bytes())
    raw[20:24] = bytes(4)  # same size, other tokens, a new mtime
    bin_path.write_bytes(bytes(raw))
    _age(bin_path, -10)
    assert np.array_equal(tokenize_cached(str(path), tok), good) and len(hashed) == 3
    assert "is corrupt" in capsys.readouterr().err

    bin_path.write_bytes(bin_path.read_bytes()[:-2])  # truncated: the size alone tells
    assert np.array_equal(tokenize_cached(str(path), tok), good) and len(hashed) == 3
    assert "expected" in capsys.readouterr().err

    meta_path = bin_path.with_suffix(".json")  # a cache written before mtimes were recorded: verified once
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "mtime_ns"}))
    assert np.array_equal(tokenize_cached(str(path), tok), good) and len(hashed) == 4
    assert np.array_equal(tokenize_cached(str(path), tok), good) and len(hashed) == 4
    assert json.loads(meta_path.read_text()) == meta


def test_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.txt"
    path.write_text(stories(40))
    tok = build_tokenizer("char", str(path))
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(dataset.os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    with pytest.raises(ValueError, match="no space left"):
        tokenize_cached(str(path), tok)
    assert list((sources.cache_dir() / "tokens").iterdir()) == []
    code = main(["train", *TINY, "--max-steps", "1", "--data", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "no space left" in err and len(err.strip().splitlines()) == 1
    assert list((sources.cache_dir() / "tokens").iterdir()) == []


def test_nul_file_is_refused_and_stray_nuls_reported(tmp_path, capsys):
    nul = tmp_path / "zeros.txt"
    nul.write_bytes(b"\x00" * 5000)
    code = main(["train", *TINY, "--max-steps", "1", "--data", str(nul), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "only NUL bytes" in err and len(err.strip().splitlines()) == 1
    some = tmp_path / "some.txt"
    some.write_text(stories(3) + "\x00\x00")
    assert len(sources.load_documents(some)) == 4
    assert "2 NUL characters" in capsys.readouterr().err


def test_text_after_the_last_separator_is_trained_on(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(stories(2, tail="a cut-off story with the letter Z"))
    tok = build_tokenizer("char", str(path))
    assert "Z" in tok.chars
    ids = tokenize_cached(str(path), tok)
    assert tok.decode(ids[-34:]) == "a cut-off story with the letter Z" + EOT


def test_unreadable_data_path_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    path = tmp_path / "secret.txt"
    path.write_text(stories(5))

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sources, "open", denied, raising=False)  # root reads through chmod 000, so simulate
    code = main(["train", *TINY, "--max-steps", "1", "--data", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot read {path}: Permission denied" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_streaming_a_2gb_file_stays_under_1gb_rss(tmp_path, shared_data):
    """Tokenise a generated 2 GB story file (the shared TinyStories sample repeated; character tokenizer) in a
    fresh process: its peak RSS stays under 1 GB, and the token count is the sample's times the repeats."""
    block = (shared_data / "tinystories_sample.txt").read_bytes()
    assert block.rstrip().endswith(EOT.encode())
    repeats = (2 << 30) // len(block) + 1
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        for _ in range(repeats // 1000):
            f.write(block * 1000)
        f.write(block * (repeats % 1000))
    tok = CharTokenizer.train(sources.load_documents(shared_data / "tinystories_sample.txt"))
    per_block = len(encode_documents(tok, sources.load_documents(shared_data / "tinystories_sample.txt")))
    script = textwrap.dedent(f"""
        import resource, time
        from memory_mosaics.data import build_tokenizer, tokenize_cached, train_val_split
        t = time.time()
        tok = build_tokenizer("char", {str(path)!r})
        tokens = tokenize_cached({str(path)!r}, tok)
        again = tokenize_cached({str(path)!r}, tok)  # a hit: size and mtime as recorded, no re-hash
        train, val = train_val_split(tokens, 0.01)
        print(len(tokens), int(tokens[-1]), tok.vocab_size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              round(time.time() - t))
    """)
    env = {**os.environ, "MOSAIC_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    n, last, vocab, peak_kb, seconds = map(int, out.stdout.split())
    print(f"{path.stat().st_size:,} bytes: {n:,} tokens, peak RSS {peak_kb / 1024:.0f} MiB, {seconds} s")
    assert vocab == tok.vocab_size and n == repeats * per_block and last == tok.eot_id
    assert peak_kb < 1 << 20, f"peak RSS {peak_kb / 1024:.0f} MiB"
