"""`MosaicConfig.preset("small-v2")` trains with `mosaic train` and decodes with `mosaic sample` / generate."""

import torch

from memory_mosaics.cli import main
from memory_mosaics.training.checkpoint import load_model
from tests.helpers import TINY


def test_small_v2_trains_and_generates_past_window_and_context(capsys, text_file, tmp_path):
    out = tmp_path / "v2"
    args = [a if a != "tiny" else "small-v2" for a in TINY]
    # small-v2 at toy width; windows shrunk with the context so 80 new tokens cross h, m and the training context.
    model_args = ["n_layer=1", "n_embd=32", "n_head=2", "pmem_size=64", "block_size=32", "short_window=8",
                  "long_offset=4", "long_offset_min=4", "long_offset_max=16"]
    assert main(["train", "--model", "mosaic", *args, "--max-steps", "3", "--data", str(text_file), "--out", str(out),
                 *[x for a in model_args for x in ("--model-args", a)]]) == 0
    model = load_model(out)[0]
    cfg = model.config
    assert (cfg.key_gate, cfg.adaptive_bandwidth, cfg.short_window, cfg.long_offset_max) == (True, True, 8, 16)
    prompt = torch.tensor([[1, 2, 3]])
    cached = model.generate(prompt, 80, temperature=0.0)
    assert torch.equal(cached, model.generate(prompt, 80, temperature=0.0, use_cache=False))
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "80",
                 "--temperature", "0"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) > 40
