import pytest

from memory_mosaics import ConfigError, MosaicConfig, TransformerConfig, config_from_dict


def test_presets_exist_and_mirror():
    for name in ("paper", "icll", "small", "tiny"):
        m, t = MosaicConfig.preset(name), TransformerConfig.preset(name)
        assert (m.n_embd, m.n_head, m.n_layer, m.block_size, m.vocab_size) == (
            t.n_embd, t.n_head, t.n_layer, t.block_size, t.vocab_size)
    p = MosaicConfig.preset("paper", n_layer=8)
    assert (p.n_embd, p.n_head, p.block_size, p.vocab_size, p.pmem_size, p.dropout, p.n_layer) == (
        768, 12, 512, 50304, 2688, 0.05, 8)
    assert p.cmem_attn_dropout == 0.0 and MosaicConfig.preset("icll").cmem_attn_dropout == 0.05
    i = MosaicConfig.preset("icll")
    assert (i.n_embd, i.n_head, i.n_layer, i.pmem_size) == (128, 8, 2, 448)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_embd=100, n_head=3), "divisible"),
        (dict(n_layer=0), "n_layer must be a positive integer"),
        (dict(vocab_size=-5), "vocab_size"),
        (dict(pmem_size=0), "pmem_size"),
        (dict(dropout=1.5), "dropout"),
        (dict(ffn="moe"), "ffn"),
        (dict(impl="triton"), "impl"),
        (dict(scan_chunk=1), "scan_chunk"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MosaicConfig(**kwargs)
    assert issubclass(ConfigError, ValueError)


def test_unknown_preset_and_typo():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*paper"):
        MosaicConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown MosaicConfig key 'n_layers'.*did you mean 'n_layer'"):
        MosaicConfig.preset("tiny", n_layers=3)
    with pytest.raises(ValueError, match="pmem_size"):
        TransformerConfig.preset("tiny", pmem_size=3)


def test_round_trip():
    for cfg in (MosaicConfig.preset("tiny", value_peek=False), TransformerConfig.preset("small")):
        assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="model_type"):
        config_from_dict({"model_type": "rnn"})
