"""Every config value check names its field (ConfigError.key, and `others` for a check of two fields): the CLI
shows the flag the user typed, in one line, exit 2, nothing written."""

import pytest

from memory_mosaics.cli import _one_line
from memory_mosaics.config import ConfigError, MosaicConfig, TransformerConfig
from memory_mosaics.longctx import LongContextConfig
from memory_mosaics.training import TrainConfig
from memory_mosaics.training.compare import CompareConfig
from tests.helpers import one_line_error


@pytest.mark.parametrize("command, args, line", [
    ("train", ["--batch-size", "0"], "--batch-size must be ≥ 1, got 0"),
    ("train", ["--batch-size", "8", "--grad-accum", "3"], "--batch-size (8) must be divisible by --grad-accum (3)"),
    ("train", ["--warmup-steps", "-1"], "--warmup-steps must be ≥ 0, got -1"),
    ("train", ["--val-fraction", "1"], "--val-fraction must be in (0, 1), got 1.0"),
    ("train", ["--lr", "1e-3", "--min-lr", "1e-2"], "--min-lr must be in [0, --lr = 0.001], got 0.01"),
    ("train", ["--bpe-vocab-size", "0"], "--bpe-vocab-size must be ≥ 1, got 0"),
    ("train", ["--model-args", "scan_chunk=1"], "--model-args scan_chunk must be an integer ≥ 2, got 1"),
    ("compare", ["--batch-size", "0"], "--batch-size must be ≥ 1, got 0"),
    ("compare", ["--lrs", "0"], "--lrs (learning rates) must be finite and > 0, got 0.0"),
    ("compare", ["--contexts", "0"], "--contexts are multiples of the training context (≥ 1), got (0,)"),
    ("compare", ["--jobs", "0"], "--jobs must be ≥ 1, got 0"),
    ("compare", ["--model-args", "scan_chunk=1"],
     "--model-args scan_chunk must be an integer ≥ 2, got 1 (the mosaic runs)"),
    ("icl", ["--model", "mosaic", "--layers", "0"], "--layers must be ≥ 1, got 0"),
    ("longctx", ["--n-keys", "0"], "--n-keys must be ≥ 1, got 0"),
    ("longctx", ["--names", "token", "--n-keys", "200"],
     "--n-keys must be ≥ 1 and the facts per context ≤ 128, the size of the 'token' name pool (got 200 at length 2048)"),
    ("longctx", ["--eval-lens", "20"], "--eval-lens must be ≥ 143 for 4 facts and 1 question(s), got 20"),
    ("longctx", ["--train-len", "20"], "--train-len must be ≥ 143 for 4 facts and 1 question(s), got 20"),
    ("longctx", ["--n-embd", "10", "--n-head", "4"], "--n-embd (10) must be divisible by --n-head (4)"),
    ("longctx", ["--n-queries", "9"], "--n-queries must be in [1, --n-keys = 4], got 9"),
    ("longctx", ["--depths", "2"], "--depths must lie in [0, 1], got (2.0,)"),
    ("longctx", ["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    ("longctx", ["--long-offset-min", "99"], "--long-offset-min must be ≤ --long-offset-max"),
    ("longctx", ["--curriculum", "2"], "--curriculum must lie in [0, 1], got 2.0"),
    ("longctx", ["--transformer-steps", "0"], "--transformer-steps must be ≥ 1, got 0"),
    ("moons", ["--heads", "3", "--block", "10"], "--block must be ≥ 30 (25 generated steps need room)"),
])
def test_a_bad_value_names_its_flag(capsys, tmp_path, text_file, command, args, line):
    data = ["--data", str(text_file)] if command in ("train", "compare") else []
    err = one_line_error(capsys, [command, *data, "--out", str(tmp_path / "o"), *args], line)
    assert err == f"mosaic {command}: error: {line}"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("make, key", [
    (lambda: TrainConfig(batch_size=0), "batch_size"),
    (lambda: TrainConfig(batch_size=8, grad_accum=3), "batch_size"),
    (lambda: TrainConfig(lr=float("nan")), "lr"),
    (lambda: TrainConfig(beta2=1.0), "beta2"),
    (lambda: TrainConfig(preset="huge"), "preset"),
    (lambda: CompareConfig(TrainConfig(), out=""), "out"),
    (lambda: CompareConfig(TrainConfig(), out="x", seeds=()), "seeds"),
    (lambda: MosaicConfig(n_head=0), "n_head"),
    (lambda: MosaicConfig(n_embd=10, n_head=4), "n_embd"),
    (lambda: MosaicConfig(pmem_size=0), "pmem_size"),
    (lambda: MosaicConfig(short_window=1), "short_window"),
    (lambda: MosaicConfig(long_offset_min=3), "long_offset_min"),
    (lambda: TransformerConfig(rope_base=1.0), "rope_base"),
    (lambda: TransformerConfig(positions="rotary", n_embd=12, n_head=4), "positions"),
    (lambda: LongContextConfig(eval_lens=()), "eval_lens"),
    (lambda: LongContextConfig(models=("v9",)), "models"),
    (lambda: LongContextConfig(device="tpu"), "device"),
    (lambda: LongContextConfig(time_limit=0), "time_limit"),
    (lambda: LongContextConfig(train_len=20), "train_len"),
])
def test_every_value_check_is_keyed(make, key):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.key == key


def test_others_read_as_flags_only_where_the_command_has_them():
    err = ConfigError("batch_size (8) must be divisible by grad_accum (3)", key="batch_size", others=("grad_accum",))
    assert _one_line(err, frozenset({"--batch-size", "--grad-accum"})) == \
        "--batch-size (8) must be divisible by --grad-accum (3)"
    assert _one_line(err, frozenset({"--batch-size"})) == "--batch-size (8) must be divisible by grad_accum (3)"
    assert _one_line(err) == "batch_size (8) must be divisible by grad_accum (3)"
    # a field name inside a longer word is left alone
    err = ConfigError("min_lr must be in [0, lr = 0.1], got 1", key="min_lr", others=("lr",))
    assert _one_line(err, frozenset({"--min-lr", "--lr"})) == "--min-lr must be in [0, --lr = 0.1], got 1"


def test_a_value_from_a_recipe_is_named_by_its_key(capsys, tmp_path, text_file):
    # The recipe gave batch_size, no flag was typed: the error names the YAML key; a typed flag is still named.
    recipe = tmp_path / "r.yaml"
    recipe.write_text("batch_size: 0\n")
    base = ["train", "--data", str(text_file), "--out", str(tmp_path / "o"), "--recipe", str(recipe)]
    assert one_line_error(capsys, base, "batch_size") == "mosaic train: error: batch_size must be ≥ 1, got 0"
    assert one_line_error(capsys, [*base, "--batch-size", "-1"], "batch") == \
        "mosaic train: error: --batch-size must be ≥ 1, got -1"
    assert not (tmp_path / "o").exists()
