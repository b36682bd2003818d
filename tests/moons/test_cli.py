import json

import pytest

from memory_mosaics.cli import main
from memory_mosaics.moons.experiment import load_model
from memory_mosaics.moons.train import train
from memory_mosaics.training import checkpoint as ck

FAST = ["--iters", "3", "--batch", "4", "--eval-windows", "4", "--context-stride", "97"]


def test_single_run_writes_summary_and_figures(tmp_path):
    assert main(["moons", "--heads", "3", "--out", str(tmp_path), "--seed", "5", *FAST]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["params"] == 54
    # The flags reached the training (not only the summary): 3 iterations were run, from seed 5's stream and init.
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["ckpt-0000003"]
    losses = ck.load_state(ck.resolve(tmp_path))["losses"]
    _, expect, _ = train(3, seed=5, iters=3, batch=4, log=None)
    assert losses == expect and s["final_loss"] == expect[-1]
    assert s["periods"]["val"]["joint_period_steps"] == pytest.approx(266.67, abs=0.01)
    assert s["periods"]["val"]["longest_period_steps"] == pytest.approx(133.33, abs=0.01)
    assert s["periods"]["train"]["triple"] == [0.5, 1.0, 2.5]
    assert "val_context_threshold" in s
    for split in ("train", "val"):
        ev = s[split]
        assert ev["contexts"] == list(range(1, 775, 97))
        assert len(ev["error_5"]) == len(ev["error_25"]) == len(ev["contexts"])
    for name in ("error", "attention", "weights"):
        assert (tmp_path / f"moons_{name}_3heads.png").stat().st_size > 1000
    model = load_model(tmp_path)
    assert model.n_head == 3 and model.num_params() == 54


def test_compare_runs_both_models_and_resumes(tmp_path, capsys):
    args = ["moons", "--compare", "--out", str(tmp_path), "--seeds", "1", *FAST]
    assert main(args) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s["runs"]) == {"heads1_seed1", "heads3_seed1"}
    assert set(s["val_context_threshold"]) == {"1", "3"}
    assert set(s["val_mid_context_error"]["3"]["1"]) == {"error_5", "error_25"}
    assert (tmp_path / "moons_compare.png").is_file()
    capsys.readouterr()
    assert main(args) == 0  # second call reuses the finished runs
    assert capsys.readouterr().out.count("reusing") == 2


def test_bad_arguments(tmp_path, capsys):
    assert main(["moons", "--heads", "3", "--out", str(tmp_path), "--iters", "0"]) == 2
    assert "--iters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["moons", "--heads", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["moons", "--out", str(tmp_path)])  # neither --heads nor --compare
