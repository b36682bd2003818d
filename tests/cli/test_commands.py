import csv
import json

from memory_mosaics.cli import main
from memory_mosaics.training.metrics import read_metrics
from tests.helpers import TINY


def test_eval_json_and_curves(capsys, trained, text_file):
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained), "--data", str(text_file), "--batches", "2",
                 "--batch-size", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["context"] == 64 and report["tokens"] == 2 * 2 * 64
    assert abs(report["perplexity"] - 2.718281828 ** report["loss"]) < 1e-6 * report["perplexity"]
    assert set(report["contexts"]) == {"64", "128", "256"}  # the Memory Mosaic goes past its training context
    with open(report["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 256 and rows[0].keys() == {"position", "loss_ctx64", "loss_ctx128", "loss_ctx256"}
    assert rows[100]["loss_ctx64"] == "" and rows[100]["loss_ctx128"] != ""
    mean64 = sum(float(r["loss_ctx64"]) for r in rows[:64]) / 64
    assert abs(mean64 - report["loss"]) < 1e-5 * report["loss"]  # CSV keeps 6 decimals of losses ≈ 3-6
    assert open(report["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_transformer_eval_notes_its_limit(capsys, text_file, tmp_path):
    out = tmp_path / "gpt"
    assert main(["train", "--model", "transformer", *TINY, "--max-steps", "2", "--data", str(text_file),
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--data", str(text_file), "--batches", "1",
                 "--context-multiples", "1", "2", "--out", str(tmp_path / "ev")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "block_size=64" in report["contexts"]["128"]["note"] and "loss" in report["contexts"]["64"]


def test_sample_is_seeded(capsys, trained):
    def sample(*extra):
        capsys.readouterr()
        assert main(["sample", "--checkpoint", str(trained), "--prompt", "ROMEO:", "--max-new-tokens", "20",
                     *extra]) == 0
        return capsys.readouterr().out

    a, b, c = sample("--seed", "1"), sample("--seed", "1"), sample("--seed", "2", "--top-k", "3")
    assert a == b and a.startswith("ROMEO:") and len(a.rstrip("\n")) > len("ROMEO:")
    assert sample("--temperature", "0") == sample("--temperature", "0", "--seed", "9")  # greedy
    assert c.startswith("ROMEO:") and c != a
    assert sample("--max-new-tokens", "0") == "ROMEO:\n"


def test_resume_from_cli_reuses_saved_config(capsys, trained):
    assert main(["train", "--out", str(trained), "--resume", "--max-steps", "6"]) == 0
    steps = [r["step"] for r in read_metrics(trained / "metrics.csv")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (trained / "latest").read_text().strip() == "ckpt-0000006"


def test_bpe_recipe_style_run(capsys, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tokenizer: bpe\nbpe_vocab_size: 300\nvocab_multiple: 64\npreset: tiny\nbatch_size: 2\n"
                      "eval_batches: 1\nprogress: false\nthreads: 1\n")
    out = tmp_path / "bpe"
    assert main(["train", "--recipe", str(recipe), "--model", "mosaic", "--max-steps", "2",
                 "--data", str(shared_data / "tinystories_sample.txt"), "--model-args", "block_size=32",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "ckpt-0000002" / "model_config.json").read_text())
    assert cfg["vocab_size"] == 320 and cfg["block_size"] == 32  # 300 BPE tokens padded to a multiple of 64
    tok = json.loads((out / "ckpt-0000002" / "tokenizer.json").read_text())
    assert tok["kind"] == "bpe"
