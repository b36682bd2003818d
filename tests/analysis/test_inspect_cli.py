"""`mosaic inspect` on a real (4-step) training run; the slow test renders the HTML in headless Chromium."""

import re
import shutil
import subprocess

import pytest

from memory_mosaics.cli import main


@pytest.fixture
def run_dir(trained, text_file):
    return trained, text_file


def test_inspect_writes_self_contained_report(run_dir, tmp_path):
    run, text = run_dir
    out = tmp_path / "inspect"
    assert main(["inspect", "--checkpoint", str(run), "--text", "ROMEO: What say you?", "--data", str(text),
                 "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    for name in ("retrieval_layer0", "retrieval_layer1", "head_constants", "per_position_loss"):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert f'id="{name}"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 4
    assert "top retrieved past positions" in page and "persistent-memory slots" in page


def test_inspect_errors_are_one_line(run_dir, tmp_path, capsys):
    run, _ = run_dir
    assert main(["inspect", "--checkpoint", str(tmp_path / "nope"), "--text", "x", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["inspect", "--checkpoint", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "--text is required" in capsys.readouterr().err


@pytest.mark.slow
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium")
    run, _ = run_dir
    out = tmp_path / "inspect"
    assert main(["inspect", "--checkpoint", str(run), "--text", "ROMEO: What say you?", "--out", str(out)]) == 0
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chr'}",
         "--dump-dom", (out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    # Chromium parsed the page and kept every embedded figure.
    assert dom.count("data:image/png;base64,") == 3 and "Memory Mosaic inspection" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chr2'}",
                    f"--screenshot={shot}", "--window-size=1200,2000", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000


def test_inspect_a_three_moons_run(tmp_path):
    run = tmp_path / "moons"
    assert main(["moons", "--heads", "3", "--out", str(run), "--iters", "3", "--batch", "4", "--eval-windows", "4",
                 "--context-stride", "97"]) == 0
    out = tmp_path / "inspect"
    assert main(["inspect", "--checkpoint", str(run), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert 'id="retrieval_moons"' in page and "|complex entries|" in page
    assert (out / "retrieval_moons.png").stat().st_size > 1000
