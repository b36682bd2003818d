import json

import numpy as np
import pytest
import torch

from memory_mosaics.cli import main
from memory_mosaics.config import MosaicConfig, TransformerConfig
from memory_mosaics.longctx import MODELS, LongContextConfig, model_config
from memory_mosaics.longctx import task as T


@pytest.fixture(scope="module")
def filler(shared_data_module):
    from memory_mosaics.data.sources import load_documents

    return T.Filler.from_documents(load_documents(shared_data_module / "tinystories_train_head.txt"))


@pytest.fixture(scope="module")
def shared_data_module():
    from tests.helpers import SHARED_DATA

    assert SHARED_DATA.is_dir()
    return SHARED_DATA


def decode(x):
    return bytes(np.asarray(x, dtype=np.uint8)).decode("utf-8", "replace")


def test_example_layout(filler):
    rng = np.random.default_rng(0)
    for depth in (0.0, 0.5, 1.0, None):
        x, y, needle = T.make_example(filler, 400, 4, depth, rng)
        assert x.shape == y.shape == (400,)
        text = decode(x)
        asked = text[text.rindex("Answer: The code of ") + 20:].split(" is ")[0]
        code = decode(x[-4:])
        assert code.isdigit() and len(code) == 4
        assert decode(x[needle:needle + 40]).startswith(f" The code of {asked} is {code}.")
        assert text.count(" The code of ") == 4 + 1  # 4 facts + the question
        scored = y != -100
        assert scored.sum() == 4 and decode(y[scored]) == code  # labels: the answer digits, predicted one early
        assert np.array_equal(np.flatnonzero(scored), np.arange(395, 399))


def test_depth_moves_the_needle(filler):
    positions = [T.make_example(filler, 1024, 3, d, np.random.default_rng(1))[2] for d in (0.0, 0.3, 0.6, 1.0)]
    assert positions == sorted(positions) and positions[0] < 12 and positions[-1] > 900


def test_exact_match_needs_every_digit():
    y = torch.full((2, 6), -100)
    y[:, 2:6] = torch.tensor([1, 2, 3, 4])
    logits = torch.zeros(2, 6, 8)
    logits[0, torch.arange(2, 6), torch.tensor([1, 2, 3, 4])] = 1.0
    logits[1, torch.arange(2, 6), torch.tensor([1, 2, 3, 5])] = 1.0
    assert T.exact_match(logits, y).tolist() == [True, False]


def test_six_models():
    cfg = LongContextConfig(n_embd=32, n_head=2, n_layer=1)
    cfgs = {name: model_config(name, cfg) for name in MODELS}
    assert cfgs["v1"] == MosaicConfig(vocab_size=256, block_size=256, n_layer=1, n_head=2, n_embd=32, pmem_size=112,
                                      dropout=0.0, cmem_attn_dropout=0.0, pmem_attn_dropout=0.0)
    v2 = cfgs["v2"]
    assert (v2.key_gate, v2.adaptive_bandwidth, v2.short_window, v2.long_offset, v2.long_offset_max) == \
        (True, True, 64, 16, 64)
    assert cfgs["v2-no-long"].long_offset == 0 and cfgs["v2-fixed-m"].long_offset_max == 0
    assert cfgs["v2-fixed-m"].long_offset == 16
    assert isinstance(cfgs["gpt2"], TransformerConfig) and cfgs["gpt2"].positions == "learned"
    assert cfgs["rotary"].positions == "rotary"
    from memory_mosaics.longctx.experiment import ABLATIONS

    for name, switch in ABLATIONS.items():  # the full v2 with one reading of the paper changed
        assert model_config(name, cfg) == v2.replace(**switch) != v2


@pytest.mark.parametrize("bad", [dict(models=("v3",)), dict(train_len=100), dict(depths=(1.5,)),
                                 dict(long_offset_min=70), dict(device="tpu"), dict(steps=0), dict(names="nick"),
                                 dict(transformer_steps=0), dict(models=("v2-window",)), dict(curriculum=1.5),
                                 dict(n_queries=5), dict(n_queries=0)])
def test_config_errors(bad):
    with pytest.raises(ValueError):
        LongContextConfig(**bad)


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "lc"
    assert main(["longctx", "--out", str(out), "--models", "v2", "gpt2", "--train-len", "160", "--eval-lens", "160",
                 "320", "--depths", "0.2", "0.8", "--n-eval", "4", "--eval-batch", "2", "--steps", "2",
                 "--batch-size", "2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--short-window", "16",
                 "--long-offset-min", "4", "--long-offset-max", "8", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "longctx.json").read_text())
    assert set(summary["results"]) == {"v2", "gpt2"}
    for r in summary["results"].values():
        assert set(r["accuracy"]) == {"160", "320"} and set(r["accuracy"]["320"]) == {"0.2", "0.8"}
        assert all(0.0 <= a <= 1.0 for row in r["accuracy"].values() for a in row.values())
    assert summary["results"]["gpt2"]["cropped"] and not summary["results"]["v2"]["cropped"]
    table = (out / "table.md").read_text()
    assert "length × depth" in table and "| v2 |" in table
    assert (out / "longctx.png").stat().st_size > 0
    assert printed.rstrip().splitlines()[-1].startswith("| gpt2 |")  # the compact table is printed last


def test_the_filler_is_read_once_per_process(tmp_path, capsys, monkeypatch):
    """prepare reads the filler corpus; the models and the summary's needle distances take it from there (the summary
    read it again, and each model too). --jobs 2, its children run in this process: the parent reads it once and
    each child once; the API's run_longctx once in all. Same summary as before (test_cli_end_to_end)."""
    import memory_mosaics.data.sources as sources
    import memory_mosaics.processes as processes

    reads = []
    load = sources.load_documents
    monkeypatch.setattr(sources, "load_documents", lambda path, *a, **k: reads.append(str(path)) or load(path, *a, **k))
    monkeypatch.setattr(processes, "run_commands", lambda command, runs, *a, **k: [
        main([command, *argv]) for _, argv in runs])
    tiny = ["--train-len", "160", "--eval-lens", "160", "--depths", "0.5", "--n-eval", "2", "--eval-batch", "2",
            "--steps", "1", "--batch-size", "2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--short-window", "16", "--long-offset-min", "4", "--long-offset-max", "8"]
    assert main(["longctx", "--out", str(tmp_path / "a"), "--models", "v2", "gpt2", *tiny, "--jobs", "2"]) == 0
    assert len(reads) == 1 + 2
    summary = json.loads((tmp_path / "a" / "longctx.json").read_text())
    assert set(summary["results"]) == {"v2", "gpt2"} and set(summary["needle_distance"]) == {"160@0.5"}
    reads.clear()
    from memory_mosaics.longctx import run_longctx
    from memory_mosaics.longctx.experiment import load_filler, needle_distances

    cfg = LongContextConfig(out=str(tmp_path / "b"), models=("v2", "gpt2"), train_len=160, eval_lens=(160,),
                            depths=(0.5,), n_eval=2, eval_batch=2, steps=1, batch_size=2, n_layer=1, n_embd=16,
                            n_head=2, short_window=16, long_offset_min=4, long_offset_max=8)
    assert run_longctx(cfg, log=lambda s: None)["needle_distance"] == needle_distances(cfg, load_filler(cfg))
    assert len(reads) == 1 + 1  # run_longctx, then the check's own load_filler
    capsys.readouterr()


@pytest.mark.parametrize("kind", ["single", "shared", "token"])
def test_name_kinds_table_matches_the_names_drawn(kind):
    """One table (T.NAME_KINDS) holds each kind's pool size and longest name: draw_names draws `pool` distinct names
    and none longer than `longest`, min_length counts `longest`, LongContextConfig refuses more facts than `pool`."""
    kind_ = T.NAME_KINDS[kind]
    names = T.draw_names(kind_.pool, kind, np.random.default_rng(0))
    assert len(set(names)) == kind_.pool
    assert max(len(n) for n in names) == len(kind_.longest)
    assert T.min_length(3, 1, kind) - T.min_length(2, 1, kind) == len(T.fact(kind_.longest, "9999"))
    with pytest.raises(ValueError, match=f"facts per context ≤ {kind_.pool}, the size of the {kind!r} name pool"):
        LongContextConfig(names=kind, n_keys=kind_.pool + 1, train_len=1 << 16, eval_lens=(1 << 16,))
    assert kind in LongContextConfig.__dataclass_fields__["names"].metadata["choices"]


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["longctx", "--out", str(tmp_path / "x"), "--models", "v9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model" in err[0]
    assert main(["longctx", "--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing.txt")]) == 2


@pytest.mark.parametrize("limit, steps_run", [(3.5, 4), (None, 6)])
def test_train_stream_time_limit_stops_after_an_evaluation(limit, steps_run, monkeypatch):
    """A clock that advances 1 s per training batch: a 3.5 s limit stops a 6-step run after step 4 (the first check
    past the limit), evaluates there once (not at step eval_every = 500) and scores the model as trained; no limit
    runs every step. The accuracy returned is the one the evaluation computed on the final weights."""
    import time

    from memory_mosaics.icl.train import Budget, train_stream
    from memory_mosaics.longctx.experiment import build

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the training clock (loop.Stopwatch)
    model = build("v1", LongContextConfig(n_layer=1, n_embd=16, n_head=2))
    before = [p.detach().clone() for p in model.parameters()]
    budget = Budget("t", steps=6, lr=1e-3, warmup=1, eval_every=500, val_subset=0, dropout=False, batch_size=2)
    x = np.random.default_rng(0).integers(0, 256, (2, 32))
    y = np.roll(x, -1, axis=1)

    def sample(rng):
        now[0] += 1.0
        return x, y

    def weights_score(m):  # a number of the weights: it moves with every optimizer step
        return dict(accuracy=float(sum(p.detach().double().sum() for p in m.parameters())))

    res = train_stream(model, sample, weights_score, budget, time_limit_s=limit, log=lambda s: None)
    assert res["steps"] == len(res["history"]) == steps_run
    assert [e["step"] for e in res["evals"]] == [steps_run]  # one evaluation, at the stop
    assert res["accuracy"] == weights_score(model)["accuracy"]  # of the weights training ended with
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_lm_loss_labels_every_next_token(filler):
    x, y, _ = T.make_example(filler, 300, 4, 0.5, np.random.default_rng(3), lm_loss=True)
    assert np.array_equal(y[:-1], x[1:]) and y[-1] == -100
    x2, y2, _ = T.make_example(filler, 300, 4, 0.5, np.random.default_rng(3))
    assert np.array_equal(x, x2) and np.array_equal(y[y2 != -100], y2[y2 != -100])  # same example, same answer


def test_multi_query_labels_every_answer_in_training_and_the_last_when_scoring(filler):
    x, y, needle = T.make_example(filler, 512, 6, 0.3, np.random.default_rng(4), n_queries=3)
    text = decode(x)
    asked = [q.split(" is ")[0] for q in text.split("\nAnswer: The code of ")[1:]]
    assert len(asked) == len(set(asked)) == 3
    assert decode(x[needle:needle + 40]).startswith(f" The code of {asked[-1]} is ")  # the last asks the needle
    assert (y != -100).sum() == 12  # 3 answers × 4 digits
    codes = [text.split(f" The code of {a} is ")[1][:4] for a in asked]
    assert decode(y[y != -100]) == "".join(codes)
    x2, y2, _ = T.make_example(filler, 512, 6, 0.3, np.random.default_rng(4), n_queries=3, label_all=False)
    assert np.array_equal(x, x2) and decode(y2[y2 != -100]) == codes[-1]


def test_token_names_are_one_byte_absent_from_the_filler(filler):
    assert filler.tokens.max() < 128  # the filler is ASCII
    x, y, needle = T.make_example(filler, 300, 5, 0.5, np.random.default_rng(5), names="token")
    names = x[x >= 128]
    assert len(names) == 5 + 1 and len(set(names[:-1].tolist())) == 5 and names[-1] in names[:-1]
    assert x[needle + len(" The code of ")] == names[-1]  # the needle's name is the asked one


def test_shared_names_share_a_word_with_the_asked_name():
    names = T.draw_names(9, "shared", np.random.default_rng(6))
    first, last = names[0].split()
    assert len(set(names)) == 9
    assert all((n.split()[0] == first) != (n.split()[1] == last) for n in names[1:])  # exactly one word shared


def test_key_density_grows_the_facts_with_length(filler):
    cfg = LongContextConfig(n_keys=4, key_density=True, names="token", eval_lens=(256, 1024))
    assert [cfg.facts(L) for L in (256, 512, 1024)] == [4, 8, 16]
    x, _, _ = cfg.examples(filler, 1, 1024, 0.5, np.random.default_rng(7))
    assert decode(x[0]).count(" The code of ") == 16 + 1
    with pytest.raises(ValueError, match="facts per context"):
        LongContextConfig(n_keys=4, key_density=True, eval_lens=(256, 4096))  # 64 facts > 32 first names


def test_curriculum_grows_the_facts_from_one_and_the_length_from_a_quarter(filler):
    cfg = LongContextConfig(n_keys=4, n_queries=2, curriculum=0.5, names="token")
    xs = [cfg.examples(filler, 1, 256, None, np.random.default_rng(8), train=True, progress=p)[0][0]
          for p in (0.0, 0.2, 0.4, 0.5, 0.9)]
    assert [decode(x).count(" The code of ") for x in xs] == [1 + 1, 2 + 2, 3 + 2, 4 + 2, 4 + 2]  # facts + questions
    assert [len(x) for x in xs] == [T.min_length(1, 1, "token") + 16, 141, 218, 256, 256]  # 256·(1/4 + 3/4·p/0.5)
    x, _, _ = cfg.examples(filler, 1, 256, 0.5, np.random.default_rng(8), progress=0.0)  # scoring: never
    assert decode(x[0]).count(" The code of ") == 4 + 2 and x.shape[1] == 256
