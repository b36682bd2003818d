"""`dropout=0.0` means no dropout anywhere: the attention dropouts follow `dropout` unless given."""

import torch

from memory_mosaics import MemoryMosaic, MosaicConfig, config_from_dict


def test_attention_dropouts_follow_dropout_unless_given():
    c = MosaicConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8, pmem_size=4, dropout=0.0)
    assert (c.cmem_attn_dropout, c.pmem_attn_dropout) == (0.0, 0.0)
    c = MosaicConfig(dropout=0.1)
    assert (c.cmem_attn_dropout, c.pmem_attn_dropout) == (0.1, 0.1)
    c = MosaicConfig(dropout=0.0, pmem_attn_dropout=0.2)
    assert (c.cmem_attn_dropout, c.pmem_attn_dropout) == (0.0, 0.2)
    assert config_from_dict(c.to_dict()) == c  # saved configs record the values


def test_presets_keep_their_explicit_values():
    want = {"paper": (0.05, 0.0, 0.05), "icll": (0.05, 0.05, 0.05), "small": (0.0, 0.0, 0.0), "tiny": (0.0, 0.0, 0.0)}
    for name, values in want.items():
        c = MosaicConfig.preset(name)
        assert (c.dropout, c.cmem_attn_dropout, c.pmem_attn_dropout) == values, name


def test_dropout_zero_model_has_no_dropout_anywhere():
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=16, pmem_size=8,
                                      dropout=0.0)).train()
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    rates += [m.attn_dropout for m in model.modules() if hasattr(m, "attn_dropout")]
    assert rates and all(r == 0.0 for r in rates)
    idx = torch.randint(0, 32, (2, 16))
    assert torch.equal(model(idx), model(idx))  # in training mode: nothing random
    noisy = MemoryMosaic(MosaicConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=16, pmem_size=8,
                                      dropout=0.3)).train()
    assert not torch.equal(noisy(idx), noisy(idx))  # the check above could fail
