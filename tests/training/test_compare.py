"""`mosaic compare` / training.compare: same tokens and schedule for every run, scores and report files."""

import json

import numpy as np
import pytest

from memory_mosaics.cli import main
from memory_mosaics.config import ConfigError
from memory_mosaics.training import TrainConfig
from memory_mosaics.training.compare import CompareConfig, compare
from tests.helpers import TINY, tiny_args


def test_compare_trains_both_models_on_the_same_tokens(text_file, tmp_path, shared_data):
    base = TrainConfig(**tiny_args(text_file, "", max_steps=4))
    cc = CompareConfig(base, out=str(tmp_path / "cmp"), inits=("gpt2", "library"), seeds=(1, 2), jobs=1,
                       ood_data=str(shared_data / "tinystories_sample.txt"))
    report = compare(cc)
    runs = report["runs"]
    assert len(runs) == 2 * 2 * 2
    assert {(r["model"], r["init"], r["seed"]) for r in runs} == {
        (m, i, s) for m in ("mosaic", "transformer") for i in ("gpt2", "library") for s in (1, 2)}
    for r in runs:
        cfg = json.loads((tmp_path / "cmp" / "runs" / r["name"] / "summary.json").read_text())
        assert cfg["step"] == 4
        # the schedule and budget are the base's for every run; only model, seed, lr and init differ
        assert {k: v for k, v in r["train"].items() if k not in ("model", "seed", "out", "model_args")} == \
               {k: v for k, v in base.to_dict().items() if k not in ("model", "seed", "out", "model_args")}
        one, two = r["positions"]["1"], r["positions"]["2"]
        assert len(one["per_position"]) == 64
        if r["model"] == "mosaic":  # no positional encoding: scored past the training context
            assert len(two["per_position"]) == 128 and len(r["positions"]["4"]["per_position"]) == 256
            pp = np.array(two["per_position"])  # within / beyond split the same windows at the training context
            assert two["within"] == pytest.approx(pp[:64].mean(), rel=1e-4)
            assert two["beyond"] == pytest.approx(pp[64:].mean(), rel=1e-4)
        else:
            assert two is None
        assert r["ood"]["loss"] > 0 and r["ood"]["chars_dropped"] >= 0
        assert r["curve"] and r["curve"][-1]["step"] == 4
    # the two inits really differ (the head), and each run recorded which it used
    assert {json.loads((tmp_path / "cmp" / "runs" / r["name"] / "ckpt-0000004" / "model_config.json").read_text())
            ["init"] for r in runs} == {"gpt2", "library"}
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert table.count("| mosaic |") == 2 and table.count("| transformer |") == 2 and "± " in table
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["table"] == report["table"]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0


def test_compare_scores_a_rotary_transformer_past_its_training_context(text_file, tmp_path):
    """The scorer asks the model (max_context) whether it reads past T: a rotary transformer does, so its 2× context
    has real numbers, not the n/a of the learned-position one."""
    base = TrainConfig(**tiny_args(text_file, "", max_steps=2, eval_interval=2))
    report = compare(CompareConfig(base, out=str(tmp_path / "cmp"), models=("transformer",), contexts=(1, 2),
                                   jobs=1, model_args={"positions": "rotary"}))
    two = report["runs"][0]["positions"]["2"]
    assert two is not None and len(two["per_position"]) == 128
    pp = np.array(two["per_position"])
    assert two["beyond"] == pytest.approx(pp[64:].mean(), rel=1e-4) and np.isfinite(pp).all()
    row = next(line for line in report["table"].splitlines() if line.startswith("| transformer |"))
    assert "n/a" not in row


def test_compare_verify_cache_hashes_the_token_cache_once(text_file, tmp_path, monkeypatch, capsys):
    """--verify-cache is the parent's: it hashes the cache once (here: finds it damaged with its size and mtime kept,
    and rebuilds it); the workers, training and scoring, use the verified cache unhashed (each hashed it twice)."""
    import os

    from memory_mosaics.data import dataset, sources
    from memory_mosaics.training.trainer import prepare_data

    prepare_data(TrainConfig(**tiny_args(text_file, "")))  # the cache, as an earlier run left it
    (bin_path,) = (sources.cache_dir() / "tokens").glob("*.bin")
    good, st = bin_path.read_bytes(), bin_path.stat()
    bin_path.write_bytes(good[:100] + bytes(8) + good[108:])
    os.utime(bin_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashed, real = [], dataset.sha256_file
    monkeypatch.setattr(dataset, "sha256_file", lambda path: hashed.append(path) or real(path))
    capsys.readouterr()
    assert main(["compare", *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(tmp_path / "c"),
                 "--jobs", "1", "--contexts", "1", "--verify-cache"]) == 0
    assert len(hashed) == 1 and capsys.readouterr().err.count("is corrupt") == 1
    assert bin_path.read_bytes() == good


def test_compare_lr_sweep_keeps_the_decay_ratio(tmp_path):
    base = TrainConfig(data="x", lr=3e-3, min_lr=3e-4)
    specs = CompareConfig(base, out=str(tmp_path), lrs=(1e-3, 4e-3)).runs()
    got = sorted((s["train"]["lr"], s["train"]["min_lr"]) for s in specs)
    assert [x for pair in got for x in pair] == pytest.approx([1e-3, 1e-4, 1e-3, 1e-4, 4e-3, 4e-4, 4e-3, 4e-4])


def test_compare_parallel_workers(text_file, tmp_path):
    base = TrainConfig(**tiny_args(text_file, "", max_steps=2, eval_interval=2))
    report = compare(CompareConfig(base, out=str(tmp_path / "cmp"), jobs=2, contexts=(1,)))
    assert [r["model"] for r in report["runs"]] == ["mosaic", "transformer"]
    assert all(r["summary"]["step"] == 2 for r in report["runs"])


@pytest.mark.parametrize("bad,msg", [
    (["--lrs", "0"], "--lrs (learning rates) must be finite"),
    (["--contexts", "0"], "contexts are multiples"),
    (["--jobs", "0"], "--jobs must be"),
])
def test_compare_cli_bad_values_exit_2(text_file, tmp_path, capsys, bad, msg):
    code = main(["compare", *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(tmp_path / "c"), *bad])
    err = capsys.readouterr().err
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_compare_refuses_an_existing_comparison(text_file, tmp_path):
    (tmp_path / "c" / "runs" / "x").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already holds a comparison"):
        compare(CompareConfig(TrainConfig(**tiny_args(text_file, "")), out=str(tmp_path / "c")))


def test_compare_records_written_with_v2_init_name_their_init():
    """compare.json runs from before init="v2" hold `v2_init` in their model_args: the table and plot read them."""
    from memory_mosaics.training.compare import _init_of

    def run(model, preset, model_args):
        return {"model": model, "train": {"preset": preset, "model_args": model_args}}

    assert _init_of(run("mosaic", "tiny", {"v2_init": True})) == "v2"
    assert _init_of(run("mosaic", "paper", {"v2_init": True, "init": "gpt2"})) == "v2"
    assert _init_of(run("mosaic", "small-v2", {"v2_init": False})) == "gpt2"
    assert _init_of(run("transformer", "tiny", {})) == "gpt2"


def test_compare_refuses_v2_for_the_transformer_before_any_run(text_file, tmp_path, capsys):
    """init v2 is the Memory Mosaic's: with the transformer among the models it is refused up front (it failed at
    the transformer's build, after the mosaic had trained); with the mosaic alone it runs, by --inits or
    --model-args."""
    for given in (dict(inits=("v2",)), dict(base_args={"init": "v2"})):
        base = TrainConfig(**tiny_args(text_file, "", model_args=given.get("base_args", {})))
        inits = given.get("inits", ("preset",))
        with pytest.raises(ConfigError, match="the transformer runs: init must be one of library, gpt2, got 'v2'"):
            CompareConfig(base, out=str(tmp_path / "c"), inits=inits)
        specs = CompareConfig(base, out=str(tmp_path / "c"), inits=inits, models=("mosaic",)).runs()
        assert [s["train"]["model_args"] for s in specs] == [{"init": "v2"}]
    code = main(["compare", *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(tmp_path / "c"),
                 "--model-args", "init=v2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the transformer runs: init must be one of" in err[0]
    assert err[0].endswith("(v2 is the Memory Mosaic's init: compare it alone, --models mosaic)")
    assert not (tmp_path / "c").exists()


def test_compare_model_args_of_one_model_go_to_its_runs_only(text_file, tmp_path, capsys):
    """--model-args may name a field only one model has (positions: the transformer's; pmem_size: the Memory
    Mosaic's); each run gets the fields its model has. It used to be refused by the base TrainConfig (model mosaic)."""
    out = tmp_path / "c"
    code = main(["compare", *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(out), "--jobs", "1",
                 "--contexts", "1", "--model-args", "positions=rotary", "pmem_size=48"])
    assert code == 0, capsys.readouterr().err
    runs = {r["model"]: r for r in json.loads((out / "compare.json").read_text())["runs"]}
    assert runs["transformer"]["train"]["model_args"] == {"positions": "rotary"}
    assert runs["mosaic"]["train"]["model_args"] == {"pmem_size": 48}
    built = json.loads((out / "runs" / runs["transformer"]["name"] / "ckpt-0000002" / "model_config.json").read_text())
    assert built["positions"] == "rotary"
    code = main(["compare", *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(tmp_path / "d"),
                 "--model-args", "bogus=1"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown model_args bogus" in err and len(err.strip().splitlines()) == 1
