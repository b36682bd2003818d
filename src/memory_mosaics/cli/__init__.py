"""The `mosaic` command line. Each subcommand lives in its own module `cmd_<name>.py` in this package and
defines `add_parser(subparsers)` (which registers itself and sets `func`) — they are discovered here, so
adding a subcommand never touches this file.

User errors (bad paths, bad config keys, corrupt checkpoints...) are raised as `UserError` (or ValueError /
FileNotFoundError) and printed as one line, with exit status 2 — no traceback. `MOSAIC_DEBUG=1` shows it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys

from .typed import flag_name


class UserError(Exception):
    """An error caused by the user's input; printed as one line without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mosaic", description="Memory Mosaics: train, evaluate, sample, inspect.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").add_parser(sub)
    return parser


def _one_line(err: BaseException, flags: frozenset[str] = frozenset()) -> str:
    """The error as one line. A ConfigError about one field (`key`) names the command's flag for it where the
    command has one (`flags`), a model config field given in --model-args as such, and otherwise the field; the
    other fields it names (`others`) read as their flags where the command has them."""
    if isinstance(err, OSError) and err.strerror:  # errno errors: "No space left on device: PATH"
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    text = " ".join(str(err).splitlines()) or type(err).__name__
    key = getattr(err, "key", None)
    if not key:
        return text
    head = len(key) if text.startswith(key + " ") else 0
    for other in getattr(err, "others", ()):  # "... divisible by grad_accum (3)" -> "... by --grad-accum (3)"
        if flag_name(other) in flags:
            text = text[:head] + re.sub(rf"(?<![\w-]){re.escape(other)}(?!\w)", flag_name(other), text[head:])
    flag = flag_name(key)
    if flag not in flags:
        from ..config import CONFIGS

        if "--model-args" not in flags or not any(key in cls.field_names() for cls in CONFIGS.values()):
            return text  # the message starts with the field's name
        flag = f"--model-args {key}"
    return flag + text[len(key):] if text.startswith(key + " ") else f"{flag}: {text}"


def main(argv: list[str] | None = None) -> int:
    from ..training import TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (UserError, ValueError, OSError) as err:  # OSError: full disk, read-only folder, missing file...
        if os.environ.get("MOSAIC_DEBUG"):
            raise
        print(f"mosaic {args.command}: error: {_one_line(err, getattr(args, 'command_flags', frozenset()))}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:  # SIGINT / SIGTERM: a checkpoint was saved at a step boundary
        print(f"mosaic {args.command}: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(f"mosaic {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
