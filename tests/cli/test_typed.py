import argparse
from dataclasses import dataclass, field
from typing import Optional

import pytest

from memory_mosaics.cli.typed import add_dataclass_args, build_config, load_recipe
from memory_mosaics.config import ConfigError


@dataclass
class Demo:
    name: str = "x"
    steps: int = 10
    lr: float = 1e-3
    flag: bool = False
    on: bool = True
    limit: Optional[int] = None
    extra: dict = field(default_factory=dict)
    sizes: list[int] = field(default_factory=lambda: [1, 2])


def parse(argv, recipe=None):
    p = argparse.ArgumentParser()
    add_dataclass_args(p, Demo)
    return build_config(Demo, p.parse_args(argv), recipe=recipe)


def test_flags_are_fields():
    cfg = parse(["--steps", "5", "--lr", "0.5", "--flag", "--no-on", "--limit", "7",
                 "--extra", "a=1", "--extra", "b=[1, 2]", "--sizes", "3", "4"])
    assert cfg == Demo(name="x", steps=5, lr=0.5, flag=True, on=False, limit=7, extra={"a": 1, "b": [1, 2]},
                       sizes=[3, 4])
    assert parse([]) == Demo()
    assert parse(["--flag", "false", "--limit", "none"]).flag is False


def test_precedence_defaults_recipe_flags(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("steps: 20\nlr: 1\nname: from-recipe\n")
    cfg = parse(["--steps", "30"], recipe=r)
    assert (cfg.steps, cfg.lr, cfg.name) == (30, 1.0, "from-recipe")  # int 1 accepted for a float field


def test_recipe_errors(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("stpes: 20\n")
    with pytest.raises(ConfigError, match="unknown key 'stpes'.*did you mean 'steps'"):
        load_recipe(r, Demo)
    r.write_text("steps: twenty\n")
    with pytest.raises(ConfigError, match="'steps' must be int"):
        parse([], recipe=r)
    r.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(r, Demo)
    r.write_text("a: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(r, Demo)
    with pytest.raises(FileNotFoundError):
        load_recipe(tmp_path / "none.yaml", Demo)


def test_bad_flag_value_is_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parse(["--steps", "many"])
    assert "invalid" in capsys.readouterr().err
