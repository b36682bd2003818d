"""The library's tokenizers as Hugging Face fast tokenizers (`tokenizers`-backed), for `AutoTokenizer`.

- byte-level BPE: its `tokenizers.Tokenizer` is used as is;
- characters: a WordLevel model over the characters (id 0 = end-of-text), one character per pre-token, tokens
  fused back on decode. An unseen character is an error, as in the library (there is no unknown token).
End-of-text doubles as BOS, EOS and padding (as in GPT-2); nothing is added around the text, so ids equal the
library's `encode`. Padding is on the left, as decoder-only generation needs.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.sources import EOT


def tokenizers_object(tok):
    """A `tokenizers.Tokenizer` that encodes and decodes exactly like the library tokenizer `tok`."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    if tok.kind == "bpe":
        return Tokenizer.from_str(tok.tok.to_str())
    if tok.kind == "char":
        vocab = {c: i for i, c in enumerate(tok.itos)}
        hf = Tokenizer(models.WordLevel(vocab, unk_token=EOT + "<unk>"))  # not in vocab: unseen characters raise
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
        hf.decoder = decoders.Fuse()
        hf.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
        return hf
    raise ValueError(f"the {tok.kind!r} tokenizer (tiktoken) cannot be exported; its tokens are GPT-2's: export with "
                     f"--tokenizer false and load AutoTokenizer.from_pretrained('openai-community/gpt2')")


def export_tokenizer(tok, out, model_max_length: int):
    """Write tokenizer.json + tokenizer_config.json (+ special_tokens_map.json) to `out`; returns the HF tokenizer."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizers_object(tok), bos_token=EOT, eos_token=EOT,
                                 pad_token=EOT, model_max_length=model_max_length, padding_side="left",
                                 model_input_names=["input_ids", "attention_mask"],
                                 clean_up_tokenization_spaces=False)
    hf.save_pretrained(str(out))
    # transformers 5 writes its new class name ("TokenizersBackend"); the old name loads in 4.x and 5.x alike.
    path = Path(out) / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    return hf
