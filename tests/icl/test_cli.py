import json

import pytest

from memory_mosaics.cli import main


def test_regbench_single_run_writes_results(tmp_path, restore_threads, capsys):
    out = tmp_path / "run"
    rc = main(["icl", "--task", "regbench", "--model", "transformer", "--layers", "1", "--envs", "4",
               "--n-test", "6", "--steps", "2", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert 0 <= res["accuracy"] <= 1 and 0 <= res["tvd"] <= 1
    assert len(res["history"]) == 2 and res["config"]["n_layer"] == 1 and res["wall_seconds"] > 0
    assert res["budget"]["name"] == "demo" and res["grad_clip"] is None
    assert (out / "curve.png").stat().st_size > 0
    assert "budget 'demo': 2 steps of batch 32" in capsys.readouterr().out


@pytest.mark.parametrize("task, extra", [("induction", ["--seq-len", "32", "--vocab", "16"]),
                                         ("mqar", ["--seq-len", "32", "--pairs", "2", "--vocab", "64"])])
def test_stream_tasks_write_results_with_null_tvd(tmp_path, restore_threads, task, extra):
    out = tmp_path / task
    rc = main(["icl", "--task", task, "--model", "mosaic", "--steps", "2", "--test-batch", "8",
               "--out", str(out), *extra])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["tvd"] is None and 0 <= res["accuracy"] <= 1 and res["config"]["n_layer"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--envs", "0"], "--envs must be"),
    (["--corpus", "/nonexistent/file.txt", "--task", "induction"], "no such file"),
    (["--steps", "0"], "--steps must be"),
    (["--task", "mqar", "--pairs", "40", "--seq-len", "64"], "MQAR needs"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, restore_threads, capsys, argv, message):
    rc = main(["icl", "--model", "mosaic", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_compare_prints_a_table_beside_the_paper(tmp_path, capsys):
    rc = main(["icl", "--task", "regbench", "--compare", "--layers", "1", "--envs", "100", "--n-test", "6",
               "--steps", "2", "--out", str(tmp_path)])  # N = 100: a published row exists
    assert rc == 0
    text = (tmp_path / "table.md").read_text()
    assert "0.925" in text and "0.523" in text and "Memory Mosaic" in text and "Transformer" in text
    assert (tmp_path / "compare.png").stat().st_size > 0
