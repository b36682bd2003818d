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


def test_to_argv_rebuilds_the_config():
    """What `mosaic icl --compare` hands its child processes: flags that parse back to the same config."""
    from memory_mosaics.cli.typed import add_command, to_argv
    from memory_mosaics.icl.config import IclConfig

    cfg = IclConfig(task="induction", model="transformer", out="o", layers=2, lr=1e-3, random_triggers=True,
                    dropout="off", progress=False, tag="t")
    seen = []
    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers(dest="command"), "icl", IclConfig, seen.append, help="")
    args = parser.parse_args(["icl", *to_argv(cfg)])
    args.func(args)
    assert seen == [cfg]


def test_the_library_is_free_of_the_cli():
    """No argparse and no `cli` import outside memory_mosaics/cli/ (the CLI is a layer over the library)."""
    import re
    from pathlib import Path

    import memory_mosaics

    root = Path(memory_mosaics.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "cli" not in p.relative_to(root).parts[:1]
                 and re.search(r"^\s*(import argparse|from \.+cli\b|from memory_mosaics\.cli\b)", p.read_text(), re.M)]
    assert offenders == []
