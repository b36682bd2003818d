import json
import urllib.error

import numpy as np
import pytest
import torch

from memory_mosaics.data import (
    EOT,
    CharTokenizer,
    build_tokenizer,
    check_length,
    encode_documents,
    load_documents,
    sources,
    split_stories,
    tokenize_cached,
    tokenizer_from_dict,
    train_val_split,
    windows_at,
)


def test_split_stories_keeps_text_after_the_last_separator():
    text = f"first story.\n{EOT}\nsecond story.\n{EOT}\nthird story cut o"
    assert split_stories(text) == ["first story.", "second story.", "third story cut o"]  # nothing dropped
    assert split_stories(f"a{EOT}b{EOT}") == ["a", "b"]
    assert split_stories("no separators here") == ["no separators here"]
    assert split_stories("  \n") == []


def test_shared_stories_sample(shared_data):
    text = (shared_data / "tinystories_sample.txt").read_text()
    docs = load_documents(shared_data / "tinystories_sample.txt")
    assert all(EOT not in d and d.strip() for d in docs)
    # every character but the separators and the newlines around them is kept
    assert sum(map(len, docs)) == len(text.replace(EOT, "").replace("\n", "")) + sum(d.count("\n") for d in docs)
    assert len(docs) == text.count(EOT) + bool(text.rsplit(EOT, 1)[-1].strip())


def test_sources_file_folder_jsonl(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("bee")
    (tmp_path / "d" / "a.txt").write_text("ay")
    (tmp_path / "d" / "skip.bin").write_bytes(b"\x00\x01")
    assert load_documents(tmp_path / "d") == ["ay", "bee"]  # sorted, non-text skipped
    jl = tmp_path / "x.jsonl"
    jl.write_text(json.dumps("one") + "\n\n" + json.dumps({"text": "two"}) + "\n")
    assert load_documents(jl) == ["one", "two"]


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.txt", "not found"),
    (lambda p: (p / "empty.txt").write_text("") and None or p / "empty.txt", "contains no text"),
    (lambda p: (p / "e").mkdir() or p / "e", "has no text files"),
    (lambda p: (p / "bad.jsonl").write_text("{oops\n") and None or p / "bad.jsonl", "not valid JSON"),
    (lambda p: (p / "n.jsonl").write_text("3\n") and None or p / "n.jsonl", "expected a JSON string"),
    (lambda p: (p / "bin.txt").write_bytes(b"\xff\xfe\x00") and None or p / "bin.txt", "not UTF-8"),
])
def test_bad_sources(tmp_path, make, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_documents(make(tmp_path))


def test_named_corpus_download_checksum_and_offline(tmp_path, monkeypatch):
    src = tmp_path / "remote.txt"
    src.write_text("hello corpus")
    good = sources.sha256_file(src)
    monkeypatch.setitem(sources.CORPORA, "shakespeare", sources.Corpus(src.as_uri(), "sh.txt", good))
    assert load_documents("shakespeare") == ["hello corpus"]
    cached = sources.cache_dir() / "corpora" / "sh.txt"
    assert cached.read_text() == "hello corpus"
    src.unlink()  # second use is served from the cache
    assert load_documents("shakespeare") == ["hello corpus"]
    cached.write_text("tampered")
    with pytest.raises(ValueError, match="sha256"):
        load_documents("shakespeare")
    cached.unlink()

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(sources.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="--data /path/to/sh.txt"):
        load_documents("shakespeare")
    assert not any(p.name.startswith(".download") for p in cached.parent.iterdir())


def test_char_tokenizer_roundtrip_and_unknown():
    tok = CharTokenizer.train(["hello", "world"])
    assert tok.vocab_size == len(set("helloworld")) + 1 and tok.eot_id == 0
    text = f"low{EOT}hold"
    assert tok.decode(tok.encode(text)) == text
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).encode("hello") == tok.encode("hello")
    with pytest.raises(ValueError, match="'z' is not in"):
        tok.encode("zap")


def test_bpe_tokenizer_roundtrip(shared_data):
    docs = load_documents(shared_data / "tinystories_sample.txt")
    tok = build_tokenizer("bpe", docs, vocab_size=400)
    assert tok.vocab_size <= 400 and tok.encode(EOT) == [tok.eot_id]
    for d in docs[:3]:
        assert tok.decode(tok.encode(d)) == d
    assert len(tok.encode(docs[0])) < len(docs[0].encode())  # merges actually compress
    tok2 = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert tok2.encode(docs[1]) == tok.encode(docs[1])


def test_gpt2_tokenizer_clear_error_without_tiktoken():
    pytest.importorskip("tokenizers")
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install tiktoken"):
            build_tokenizer("gpt2", ["x"])
    with pytest.raises(ValueError, match="unknown tokenizer"):
        build_tokenizer("wordpiece", ["x"])


def test_encode_documents_and_cache(tmp_path):
    docs = ["ab", "ba", "aab"]
    tok = CharTokenizer.train(docs)
    ids = encode_documents(tok, docs)
    assert ids.dtype == np.uint16
    assert ids.tolist() == tok.encode(f"ab{EOT}ba{EOT}aab{EOT}")
    first = tokenize_cached(docs, tok)
    folder = sources.cache_dir() / "tokens"
    files = sorted(folder.iterdir())
    assert isinstance(first, np.memmap) and first.tolist() == ids.tolist()
    again = tokenize_cached(docs, tok)
    assert sorted(folder.iterdir()) == files and again.filename == first.filename  # served from cache
    other = tokenize_cached(["a", "bba"], tok)  # same characters, different documents -> different key
    assert other.filename != first.filename


def test_split_and_windows():
    tokens = np.arange(1000, dtype=np.uint16)
    train, val = train_val_split(tokens, 0.1)
    assert len(train) == 900 and val[0] == 900
    x, y = windows_at(train, [0, 5, 868], 31)
    assert x.shape == y.shape == (3, 31) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y - x, torch.ones_like(x))
    assert x[1, 0] == 5 and x[2, -1] == 898 and y[2, -1] == 899
    with pytest.raises(ValueError, match="fewer than context"):
        check_length(val, 200, "sampled")
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(tokens, 1.0)
