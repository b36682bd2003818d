import dataclasses
from pathlib import Path

import pytest

from memory_mosaics.cli.typed import build_config
from memory_mosaics.training import TrainConfig
from memory_mosaics.training.trainer import model_config_for

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_recipes_exist():
    assert {p.name for p in RECIPES} >= {"paper-babistories.yaml", "shakespeare-char.yaml", "tinystories-bpe.yaml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("model", ["mosaic", "transformer"])
def test_recipe_builds_matched_configs(recipe, model):
    cfg = dataclasses.replace(build_config(TrainConfig, recipe=recipe), model=model)  # as --model does
    vocab = 50257 if cfg.tokenizer == "gpt2" else 66
    mc = model_config_for(cfg, vocab)
    assert mc.model_type == model
    # The vocabulary is sized to the tokenizer, padded to the recipe's multiple.
    assert vocab <= mc.vocab_size < vocab + cfg.vocab_multiple and mc.vocab_size % cfg.vocab_multiple == 0


def test_paper_recipe_matches_section_8():
    cfg = build_config(TrainConfig, recipe=[p for p in RECIPES if p.stem == "paper-babistories"][0])
    mc = model_config_for(cfg, 50257)
    assert (mc.vocab_size, mc.block_size, mc.n_embd, mc.n_head, mc.pmem_size) == (50304, 512, 768, 12, 2688)
    assert (cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps, cfg.batch_size) == (5e-3, 1e-4, 2000, 80000, 512)
    assert (cfg.weight_decay, cfg.grad_clip, cfg.beta2, cfg.dtype) == (0.1, 1.0, 0.95, "float16")
