"""Smaller things a user hit: streamed samples, --model-args with several pairs, bench --quick writing nothing
into the working tree, inspect on a transformer leaving no folder, the schedule a resumed run follows."""

import io
import json
import sys

from memory_mosaics import generation
from memory_mosaics.cli import main
from tests.helpers import TINY


class Recorder(io.StringIO):
    """stdout that remembers how much had been written each time a token was sampled."""


def test_sample_streams_tokens_as_they_are_sampled(trained, monkeypatch):
    out = Recorder()
    seen = []
    real = generation.sample_next

    def sample_next(*a, **kw):
        seen.append(len(out.getvalue()))
        return real(*a, **kw)

    monkeypatch.setattr(generation, "sample_next", sample_next)
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["sample", "--checkpoint", str(trained), "--prompt", "ROMEO:", "--max-new-tokens", "8",
                 "--temperature", "0"]) == 0
    # Before token i is sampled, the prompt and the i tokens before it are already printed (characters here).
    assert seen == [len("ROMEO:") + i for i in range(8)]
    assert len(out.getvalue()) == len("ROMEO:") + 8 + 1


def test_ctrl_c_keeps_what_was_printed(trained, monkeypatch, capsys):
    real = generation.sample_next
    calls = {"n": 0}

    def sample_next(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(generation, "sample_next", sample_next)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(trained), "--prompt", "ROMEO:", "--max-new-tokens", "50"]) == 130
    captured = capsys.readouterr()
    assert captured.out.startswith("ROMEO:") and len(captured.out) == len("ROMEO:") + 5
    assert captured.err.strip() == "mosaic sample: interrupted"


def test_model_args_take_several_pairs(text_file, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "1", "--data", str(text_file), "--out", str(out),
                 "--model-args", "n_layer=1", "n_head=4", "--model-args", "block_size=32"]) == 0
    cfg = json.loads((out / "ckpt-0000001" / "model_config.json").read_text())
    assert (cfg["n_layer"], cfg["n_head"], cfg["block_size"]) == (1, 4, 32)


def test_bench_quick_writes_nothing_unless_asked(tmp_path, monkeypatch, capsys):
    import memory_mosaics.bench as bench

    seen = []
    monkeypatch.setattr(bench, "run_benchmarks", lambda cfg: seen.append(cfg) or {"seq_lens": list(cfg.seq_lens)})
    monkeypatch.setattr(bench, "format_table", lambda result: "table")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--quick"]) == 0
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory
    assert main(["bench", "--quick", "--out", "sub/b.json", "--seq-lens", "32"]) == 0
    # --quick is the QUICK preset; a flag given with it overrides the preset's value
    assert all(getattr(seen[0], k) == (tuple(v) if isinstance(v, list) else v) for k, v in bench.QUICK.items())
    assert tuple(seen[1].seq_lens) == (32,) and seen[1].preset == bench.QUICK["preset"]
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"seq_lens": [32]}


def test_inspect_a_transformer_is_one_line_and_leaves_no_folder(text_file, tmp_path, capsys):
    run = tmp_path / "gpt"
    assert main(["train", "--model", "transformer", *TINY, "--max-steps", "1", "--data", str(text_file),
                 "--out", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "inspect"
    assert main(["inspect", "--checkpoint", str(run), "--text", "ROMEO: hi", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "only for Memory Mosaics" in err
    assert not out.exists()


def test_resume_says_which_schedule_it_follows(trained, capsys):
    capsys.readouterr()
    assert main(["train", "--out", str(trained), "--resume", "--max-steps", "6"]) == 0
    err = capsys.readouterr().err
    assert "resuming at step 4 of 6" in err and "cosine from 0.003 to 0.0001 at step 4" in err
    assert "steps 5-6 run at min_lr 0.0001" in err and "--lr-decay-steps 6" in err


def test_resume_with_a_stretched_schedule(trained, capsys):
    capsys.readouterr()
    assert main(["train", "--out", str(trained), "--resume", "--max-steps", "6", "--lr-decay-steps", "6"]) == 0
    err = capsys.readouterr().err
    assert "cosine from 0.003 to 0.0001 at step 6" in err and "run at min_lr" not in err


def test_streamed_bpe_sample_equals_decoding_all_tokens(tmp_path, monkeypatch, capsys):
    """Byte-level BPE: a character's bytes can span tokens; the stream holds them back and prints the same text."""
    import random

    import torch

    from memory_mosaics.training.checkpoint import load_model

    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    rng = random.Random(0)
    words = ["café", "naïve", "日本語", "Ωμέγα", "the", "cat", "🙂", "straße", "über"]
    data = tmp_path / "multi.txt"
    data.write_text(" ".join(rng.choice(words) for _ in range(6000)), encoding="utf-8")
    run = tmp_path / "bpe"
    assert main(["train", *TINY, "--max-steps", "1", "--tokenizer", "bpe", "--bpe-vocab-size", "300", "--data",
                 str(data), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(run), "--prompt", "café", "--max-new-tokens", "60", "--seed", "3"]) == 0
    streamed = capsys.readouterr().out
    model, tok, _, _ = load_model(run)
    ids = tok.encode("café")
    out = model.generate(torch.tensor([ids]), 60, generator=torch.Generator().manual_seed(3))
    assert streamed == "café" + tok.decode(out[0, len(ids):].tolist()) + "\n"
