"""Every config field that lists `choices` refuses other values however the config is made (Python, YAML
recipe, CLI), with one ConfigError naming the field and the allowed values (config.check_choices)."""

import pytest

from memory_mosaics.bench import BenchConfig
from memory_mosaics.cli import main
from memory_mosaics.config import ConfigError, MosaicConfig, TransformerConfig
from memory_mosaics.icl import IclConfig
from memory_mosaics.moons import MoonsConfig
from memory_mosaics.training import TrainConfig
from memory_mosaics.training.compare import CompareConfig


@pytest.mark.parametrize("make, key, allowed", [
    (lambda: IclConfig(task="regbnch"), "task", "regbench, induction, mqar"),
    (lambda: IclConfig(model="gpt"), "model", "mosaic, transformer"),
    (lambda: IclConfig(dropout="yes"), "dropout", "on, off"),  # was checked by argparse only
    (lambda: IclConfig(dtype="fp8"), "dtype", "float32, bfloat16, float16, auto"),  # argparse only
    (lambda: MoonsConfig(heads=2), "heads", "1, 3"),
    (lambda: MoonsConfig(heads=True), "heads", "1, 3"),  # True == 1, but is not a head count
    (lambda: MoonsConfig(dtype="half"), "dtype", "float32"),  # argparse only
    (lambda: TrainConfig(tokenizer="bytes"), "tokenizer", "char, bpe, gpt2"),  # argparse only
    (lambda: TrainConfig(dtype="fp16"), "dtype", "auto, float32"),  # argparse only
    (lambda: TrainConfig(model="rnn"), "model", "mosaic, transformer"),
    (lambda: CompareConfig(TrainConfig(), out="x", inits=("gpt2", "xavier")), "inits", "preset, library, gpt2"),
    (lambda: BenchConfig(dtype="auto"), "dtype", "float32, bfloat16, float16"),
    (lambda: BenchConfig(skip=("train", "eval")), "skip", "train, generate"),
    (lambda: MosaicConfig(ffn="moe"), "ffn", "pmem, mlp, swiglu"),
    (lambda: MosaicConfig(window_convention="eq9"), "window_convention", "eq10, appc"),
    (lambda: TransformerConfig(positions="alibi"), "positions", "learned, rotary, none"),
])
def test_bad_choice_is_a_config_error_naming_field_and_choices(make, key, allowed):
    with pytest.raises(ConfigError, match=f"{key} must be one of {allowed}") as err:
        make()
    assert err.value.key == key


def test_unset_optional_choices_and_good_values_pass():
    assert IclConfig().model is None and MoonsConfig().heads is None
    assert IclConfig(model="mosaic", dropout="off").dropout == "off"
    assert BenchConfig(skip=("generate",)).skip == ("generate",)


@pytest.mark.parametrize("make, key", [
    (lambda: CompareConfig(TrainConfig(), out="x", models="transformer"), "models"),  # was a KeyError 't' later
    (lambda: CompareConfig(TrainConfig(), out="x", inits="gpt2"), "inits"),
    (lambda: BenchConfig(skip="train"), "skip"),  # was accepted: then "rain" in skip was True
])
def test_a_string_where_a_tuple_of_choices_is_due_is_refused(make, key):
    with pytest.raises(ConfigError, match=f"{key} must be a tuple or list of ") as err:
        make()
    assert err.value.key == key


def test_a_tuple_where_one_choice_is_due_is_refused():
    with pytest.raises(ConfigError, match="ffn must be one of pmem, mlp, swiglu, got \\('pmem',\\)"):
        MosaicConfig(ffn=("pmem",))
    assert CompareConfig(TrainConfig(), out="x", models=["mosaic"]).models == ["mosaic"]  # a list is a sequence


def test_recipe_with_a_bad_choice_is_one_line_exit_2(tmp_path, capsys):
    """`mosaic eval` has no __post_init__: build_config checks its choices (before: split 'test' got through)."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("split: test\n")
    assert main(["eval", "--recipe", str(recipe), "--checkpoint", "x", "--data", "y"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mosaic eval: error: split must be one of val, train, all, got 'test'"  # the recipe key: no flag typed
    recipe.write_text("task: regbnch\n")
    assert main(["icl", "--recipe", str(recipe), "--model", "mosaic", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mosaic icl: error: task must be one of regbench, induction, mqar, got 'regbnch'"]


@pytest.mark.parametrize("args, line", [
    (["--model-args", "ffn=moe"], "--model-args ffn must be one of pmem, mlp, swiglu, got 'moe'"),
    (["--model-args", "init=v3"], "--model-args init must be one of library, gpt2, v2, got 'v3'"),
    (["--model", "transformer", "--model-args", "positions=alibi"],
     "--model-args positions must be one of learned, rotary, none, got 'alibi'"),
])
def test_bad_model_args_value_names_model_args_not_a_missing_flag(tmp_path, capsys, args, line):
    """A bad value inside --model-args is reported there: `mosaic train` has no --ffn / --init / --positions."""
    data = tmp_path / "t.txt"
    data.write_text("hello there\n" * 50)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--preset", "tiny", *args]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"mosaic train: error: {line}"]
    assert not (tmp_path / "o").exists()


def test_a_field_without_a_flag_is_named_as_the_field():
    from memory_mosaics.cli import _one_line

    err = ConfigError("dtype must be one of float32, got 'x'", key="dtype")
    assert _one_line(err, frozenset({"--dtype"})) == "--dtype must be one of float32, got 'x'"
    assert _one_line(err, frozenset({"--model-args"})) == "dtype must be one of float32, got 'x'"  # not a model field
    assert _one_line(err) == "dtype must be one of float32, got 'x'"
    assert _one_line(ConfigError("no output directory given", key="out"), frozenset({"--out"})) == \
        "--out: no output directory given"
