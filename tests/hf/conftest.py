"""Two tiny real runs (a Memory Mosaic with a byte-level BPE, a transformer with characters), trained with
`mosaic train` for a few steps, and their `mosaic export` folders. Built once per session; all offline."""

import os

import pytest

pytest.importorskip("transformers", reason="the Hugging Face tests need transformers (installed by `make test`)")

from memory_mosaics.cli import main  # noqa: E402
from tests.helpers import SHARED_DATA, TINY  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def hf_runs(tmp_path_factory):
    """{"mosaic": (run_dir, hf_dir), "transformer": (run_dir, hf_dir)}."""
    root = tmp_path_factory.mktemp("hf")
    text = root / "sh.txt"
    with open(SHARED_DATA / "tinyshakespeare.txt", encoding="utf-8") as f:
        text.write_text(f.read(20_000))
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSAIC_CACHE", str(root / "cache"))
        for kind, tok in (("mosaic", ["--tokenizer", "bpe", "--bpe-vocab-size", "300"]), ("transformer", [])):
            run, out = root / f"{kind}-run", root / f"{kind}-hf"
            assert main(["train", "--model", kind, *TINY, "--max-steps", "6", "--lr", "1e-2", *tok,
                         "--data", str(text), "--out", str(run)]) == 0
            assert main(["export", "--checkpoint", str(run), "--hf", str(out)]) == 0
            runs[kind] = (run, out)
    return runs
