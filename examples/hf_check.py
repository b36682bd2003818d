"""Check the Hugging Face adapter with whatever transformers is installed, on CPU and (if present) CUDA: both models
saved with save_pretrained and reloaded through AutoModelForCausalLM give the native logits, greedy generate equals
the native greedy generate, and a left-padded batch generates each prompt's own tokens. Seconds; no data, no
network. Prints one table; writes hf_check.json under $OUT when set.

    PYTHONPATH=src python3 examples/hf_check.py
"""

import json
import os
import tempfile

import torch
import transformers
from transformers import AutoModelForCausalLM

import memory_mosaics
from memory_mosaics import MosaicConfig, TransformerConfig
from memory_mosaics.hf import MemoryMosaicForCausalLM, MosaicTransformerForCausalLM


def rel_err(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def cut(row, eos=0):
    return row[: row.index(eos) + 1] if eos in row else row


def check(kind, device):
    torch.manual_seed(0)
    if kind == "mosaic":
        cls, lib = MemoryMosaicForCausalLM, MosaicConfig.preset("tiny")
    else:
        cls, lib = MosaicTransformerForCausalLM, TransformerConfig.preset("tiny")
    model = cls(cls.config_class.from_library(lib, eos_token_id=0, pad_token_id=0, bos_token_id=0))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        hf = AutoModelForCausalLM.from_pretrained(tmp).to(device).eval()
    native = memory_mosaics.build_model(lib).to(device).eval()
    native.load_state_dict(hf.model.state_dict())
    idx = torch.randint(1, lib.vocab_size, (3, 20), device=device)
    with torch.no_grad():
        logits_err = rel_err(hf(idx).logits, native(idx))
    ref = native.generate(idx, 16, temperature=0)
    out = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=16, do_sample=False)
    # transformers stops a row at end-of-text (id 0); the library's generate does not: compare up to there
    greedy_ok = all(cut(out[i, 20:].tolist()) == cut(ref[i, 20:].tolist()) for i in range(3))
    mask = torch.ones_like(idx)
    mask[0, :7], mask[1, :13] = 0, 0
    batch = hf.generate(idx, attention_mask=mask, max_new_tokens=16, do_sample=False, output_logits=True,
                        return_dict_in_generate=True)
    pad_err, pad_ok = 0.0, True
    for i in range(3):
        start = int((mask[i] == 0).sum())
        alone = hf.generate(idx[i:i + 1, start:], max_new_tokens=16, do_sample=False, output_logits=True,
                            return_dict_in_generate=True)
        k = min(len(alone.logits), len(batch.logits))
        pad_ok &= torch.equal(batch.sequences[i, 20:20 + k], alone.sequences[0, 20 - start:20 - start + k])
        pad_err = max(pad_err, rel_err(torch.stack(batch.logits, 1)[i, :k], torch.stack(alone.logits, 1)[0, :k]))
    return dict(kind=kind, device=str(device), logits_rel_err=logits_err, greedy_equal=greedy_ok,
                padded_equal=pad_ok, padded_logits_rel_err=pad_err)


def main():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [check(kind, d) for d in devices for kind in ("mosaic", "transformer")]
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"{'model':12} {'device':6} {'logits rel err':>15} {'greedy = native':>16} {'padded = alone':>15} {'padded rel err':>15}")
    for r in rows:
        print(f"{r['kind']:12} {r['device']:6} {r['logits_rel_err']:15.2e} {str(r['greedy_equal']):>16} "
              f"{str(r['padded_equal']):>15} {r['padded_logits_rel_err']:15.2e}")
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "hf_check.json"), "w") as f:
            json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "rows": rows}, f, indent=2)
    ok = all(r["greedy_equal"] and r["padded_equal"] and r["logits_rel_err"] < 1e-5 for r in rows)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
