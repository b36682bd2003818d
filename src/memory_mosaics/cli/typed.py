"""Typed configs on the command line: a dataclass's fields become argparse flags and YAML recipe keys.
Every `mosaic` command is made by `add_command(subparsers, name, Config, run, help=...)` (at the end of this file);
the pieces below are what it is built from.

    @dataclass
    class EvalConfig:
        checkpoint: str = ""        # the help text is the comment-free field name; add `metadata={"help": ...}`
        batch_size: int = 8

    add_dataclass_args(parser, EvalConfig)          # --checkpoint, --batch-size
    cfg = build_config(EvalConfig, args, recipe="r.yaml")   # defaults < recipe < flags given on the command line

Flags default to argparse.SUPPRESS so "given on the command line" is known exactly; unknown recipe keys (typos)
raise ConfigError with a suggestion. Supported field types: str, int, float, bool, Optional[...] of those,
tuples/lists of them, and dict[str, Any] (flag `--name KEY=VALUE [KEY=VALUE ...]`, repeatable, VALUE parsed as YAML).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, check_choices, check_keys


def _strip_optional(tp):
    """Optional[X] / X | None -> (X, True)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def add_dataclass_args(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                       exclusive: tuple[str, ...] = ()) -> None:
    """One flag per dataclass field (`foo_bar` -> `--foo-bar`); help from `field.metadata["help"]`
    (`metadata["hidden"]` hides it). The flags of the `exclusive` fields are mutually exclusive."""
    hints = _field_types(cls)
    group = parser.add_mutually_exclusive_group() if exclusive else None
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        target = group if f.name in exclusive else parser
        tp, optional = _strip_optional(hints[f.name])
        origin = typing.get_origin(tp)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {default!r})" if help_text else f"default: {default!r}"
        if f.metadata.get("hidden"):
            help_text = argparse.SUPPRESS
        kw: dict[str, Any] = dict(default=argparse.SUPPRESS, help=help_text, dest=f.name)
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        flag = flag_name(f.name)
        if tp is bool:
            # `--flag` sets True; `--flag false` / `--no-flag` also work.
            target.add_argument(flag, nargs="?", const=True, type=_parse_bool, metavar="BOOL", **kw)
            parser.add_argument("--no-" + f.name.replace("_", "-"), action="store_false", dest=f.name,
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        elif origin is dict or tp is dict:  # --model-args a=1 b=2, or repeated: --model-args a=1 --model-args b=2
            target.add_argument(flag, action="extend", nargs="+", type=_key_value, metavar="KEY=VALUE", **kw)
        elif origin in (list, tuple):
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
            target.add_argument(flag, nargs="+", type=inner, **kw)
        else:
            kind = tp if tp in (int, float, str) else str
            target.add_argument(flag, type=_none_or(kind) if optional else kind, **kw)


def load_recipe(path: str | Path, cls) -> dict[str, Any]:
    """A YAML mapping of field values, keys checked against `cls`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a YAML mapping of config keys, got {type(data).__name__}")
    check_keys(cls, data, f"recipe {path}")
    return data


def given_values(args: argparse.Namespace, cls) -> dict[str, Any]:
    """The fields explicitly given on the command line (flags default to SUPPRESS)."""
    names = {f.name for f in dataclasses.fields(cls)}
    out = {k: v for k, v in vars(args).items() if k in names}
    for k, v in out.items():
        if isinstance(v, list) and v and isinstance(v[0], tuple):  # KEY=VALUE pairs -> dict
            out[k] = dict(v)
    return out


def coerce(cls, values: dict[str, Any]) -> dict[str, Any]:
    """Check YAML values against the field types (ints where ints are due, etc.)."""
    hints = _field_types(cls)
    out = {}
    for key, value in values.items():
        tp, optional = _strip_optional(hints[key])
        origin = typing.get_origin(tp)
        if value is None:
            if not optional:
                raise ConfigError(f"config key '{key}' may not be null")
        elif tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif tp in (int, str, bool) and type(value) is not tp:
            raise ConfigError(f"config key '{key}' must be {tp.__name__}, got {value!r}")
        elif (origin is dict or tp is dict) and not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        elif origin in (list, tuple):
            if not isinstance(value, (list, tuple)):
                value = [value]
            value = origin(value)
        out[key] = value
    return out


def build_config(cls, args: argparse.Namespace | None = None, recipe: str | Path | None = None,
                 base: dict[str, Any] | None = None):
    """defaults < base < recipe < command-line flags."""
    values: dict[str, Any] = dict(base or {})
    if recipe:
        values.update(load_recipe(recipe, cls))
    if args is not None:
        values.update(given_values(args, cls))
    check_keys(cls, values, "config")
    cfg = cls(**coerce(cls, values))
    check_choices(cfg)  # also for configs without a __post_init__ that checks them
    return cfg


def add_command(subparsers, name: str, cls, run: Callable[[Any], int | None], *, help: str,
                description: str | None = None, one_of: tuple[str, ...] = (),
                preset: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                make: Callable[[dict[str, Any]], Any] | None = None,
                skip: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """The one way a `mosaic` subcommand is made: a flag per field of the typed config `cls`, `--recipe FILE`,
    `--help`, and `run(config)` with the config built from defaults < preset < recipe < flags.
    `one_of`: fields of which exactly one must be set (their flags are exclusive). `preset(given)` maps the
    given values (recipe and flags) to the base values they start from (e.g. `bench --quick`); `make(given)`
    replaces building the config from defaults (e.g. `train --resume` starts from the checkpoint's config).
    `skip`: fields that get no flag (the command sets them itself)."""
    p = subparsers.add_parser(name, help=help, description=description or help,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="YAML file of config values (command-line flags override it)")
    add_dataclass_args(p, cls, exclusive=one_of, skip=skip)

    def func(args: argparse.Namespace):
        recipe = load_recipe(args.recipe, cls) if args.recipe else {}
        typed = given_values(args, cls)
        given = {**recipe, **typed}
        # A value the recipe gave (no flag typed) is named by its YAML key in errors, not by a flag never typed.
        args.command_flags = flags - {flag_name(k) for k in recipe if k not in typed}
        if one_of and sum(bool(given.get(k)) for k in one_of) != 1:
            p.error(f"exactly one of the arguments {' '.join(flag_name(k) for k in one_of)} is required")
        if make is not None:
            return run(make(given))
        return run(build_config(cls, base={**(preset(given) if preset else {}), **given}))

    # The flags this command has: an error about a field names the flag only where there is one (cli._one_line).
    flags = frozenset({"--recipe", *(flag_name(f.name) for f in dataclasses.fields(cls) if f.name not in skip)})
    p.set_defaults(func=func, command_flags=flags)
    return p


def flag_name(field: str) -> str:
    """The command-line flag of a config field: batch_size -> --batch-size."""
    return "--" + field.replace("_", "-")


def to_argv(cfg) -> list[str]:
    """The flags that rebuild `cfg` (fields that differ from their defaults): the inverse of the parser."""
    argv: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if value == default:
            continue
        flag = flag_name(f.name)
        if isinstance(value, bool):
            argv += [flag, str(value).lower()]
        elif value is None:
            argv += [flag, "none"]
        elif isinstance(value, dict):
            argv += [flag, *(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in value.items())]
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv
