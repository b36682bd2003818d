"""`mosaic export` user errors: one line, exit 2, nothing lost."""

import json

from memory_mosaics.cli import main


def test_export_refuses_a_non_empty_folder_and_overwrites_on_request(hf_runs, tmp_path, capsys):
    run, _ = hf_runs["transformer"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--checkpoint", str(run), "--hf", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert main(["export", "--checkpoint", str(run), "--hf", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "memory_mosaic_transformer" and config["auto_map"]["AutoModelForCausalLM"]
    assert not list(tmp_path.glob(".out.tmp-*")), "no temporary folder left behind"


def test_export_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope"), "--hf", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mosaic export: error:") and "\n" not in err
    assert not (tmp_path / "out").exists()
    assert main(["export", "--checkpoint", str(tmp_path)]) == 2
