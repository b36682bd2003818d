"""Every user error: one line on stderr, exit status 2, no traceback, the existing checkpoint untouched."""

import hashlib
import subprocess
import sys

import pytest

from memory_mosaics.cli import main
from tests.helpers import TINY, one_line_error


def tree_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "metrics.csv"}


def test_data_errors(capsys, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "data.bin").write_bytes(b"\x00")
    base = ["train", *TINY, "--max-steps", "1"]
    one_line_error(capsys, base + ["--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "a")],
                   "data source not found")
    one_line_error(capsys, base + ["--data", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "b")],
                   "contains no text")
    one_line_error(capsys, base + ["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")],
                   "has no text files")
    one_line_error(capsys, base + ["--out", str(tmp_path / "d")], "no training data")
    assert not any((tmp_path / x).exists() for x in "abcd")  # nothing written for a failed start


def test_config_errors(capsys, tmp_path, text_file):
    base = ["train", "--data", str(text_file), "--out", str(tmp_path / "r"), "--no-progress"]
    one_line_error(capsys, base + ["--preset", "huge"], "unknown preset 'huge'")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("preset: tiny\nlearning_rate: 0.1\n")
    one_line_error(capsys, base + ["--recipe", str(recipe)], "unknown key 'learning_rate'")
    recipe.write_text("preset: tiny\nmax_step: 3\n")
    one_line_error(capsys, base + ["--recipe", str(recipe)], "did you mean 'max_steps'")
    one_line_error(capsys, base + ["--preset", "tiny", "--model-args", "n_layers=1"], "did you mean 'n_layer'")
    one_line_error(capsys, base + ["--recipe", str(tmp_path / "none.yaml")], "recipe file not found")


def test_checkpoint_errors_leave_it_intact(capsys, trained, text_file, tmp_path):
    before = tree_digest(trained)
    data = ["--data", str(text_file)]
    # Resuming into a different config.
    one_line_error(capsys, ["train", "--out", str(trained), "--resume", "--preset", "small", *data],
                   "cannot resume into a different config (preset: checkpoint 'tiny', now 'small')")
    one_line_error(capsys, ["train", "--out", str(trained), "--resume", "--lr", "0.5"], "lr: checkpoint")
    # Starting a new run on top of an old one.
    one_line_error(capsys, ["train", *TINY, *data, "--out", str(trained)], "already holds a run")
    # Resuming on different data.
    other = tmp_path / "other.txt"
    other.write_text(text_file.read_text()[::-1])
    one_line_error(capsys, ["train", "--out", str(trained), "--resume", "--max-steps", "6", "--data", str(other)],
                   "differs from the data")
    one_line_error(capsys, ["train", "--out", str(tmp_path / "fresh"), "--resume", *data], "nothing to resume")
    assert tree_digest(trained) == before


@pytest.mark.parametrize("damage, match", [
    (lambda f: f.write_bytes(f.read_bytes()[:100]), "truncated"),
    (lambda f: f.write_bytes(f.read_bytes()[:-8] + b"garbage!"), "sha256"),
])
def test_corrupt_checkpoint(capsys, trained, text_file, damage, match):
    ckpt = trained / (trained / "latest").read_text().strip()
    damage(ckpt / "model.safetensors")
    for argv in (["eval", "--checkpoint", str(trained), "--data", str(text_file)],
                 ["sample", "--checkpoint", str(ckpt), "--prompt", "A"],
                 ["train", "--out", str(trained), "--resume", "--max-steps", "8"]):
        one_line_error(capsys, argv, match)


def test_unknown_character_in_prompt(capsys, trained):
    one_line_error(capsys, ["sample", "--checkpoint", str(trained), "--prompt", "日本"], "not in the character")


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "memory_mosaics.cli", "train", "--data", str(tmp_path / "no.txt"),
                           "--out", str(tmp_path / "o"), "--preset", "tiny"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"mosaic train: error: data source not found: {tmp_path}/no.txt "
                                                "(expected a file, a folder, or one of: shakespeare, tinystories)"]


def test_flag_typo_is_an_argparse_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "x.txt", "--out", str(tmp_path / "o"), "--learning-rate", "0.1"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --learning-rate" in capsys.readouterr().err
