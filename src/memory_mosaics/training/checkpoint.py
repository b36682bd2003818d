"""Checkpoints: a run directory holds `ckpt-<step>/` folders and a `latest` file naming the newest.

    ckpt-0001000/
        model.safetensors     weights of the unwrapped model (no `module.` / `_orig_mod.` prefixes)
        model_config.json     config.to_dict() (records model_type)
        tokenizer.json        tokenizer.to_dict()
        train_config.json     TrainConfig.to_dict()
        state.safetensors     the tensors of the resumable state: optimizer moments, RNG states, sampler state
        state.json            the rest of it (step, scaler, data key...), tensors referenced by name (safe_state.py)
        manifest.json         size and sha256 of every file above; written last

Nothing is ever unpickled: every file is safetensors or JSON, so loading a checkpoint (even a hostile one with
a recomputed manifest — it is a checksum, not a signature) cannot run code. Checkpoints written before this
format kept the state in a pickle, `state.pt`: their model still loads (eval, sample, inspect); resuming them
is refused with a one-line message, because reading `state.pt` would mean unpickling it.

Atomicity: a checkpoint is written into a temporary folder (files fsynced) which is renamed to `ckpt-<step>`
only once complete, then `latest` is replaced atomically (temp file + os.replace), then checkpoints beyond the
newest `keep` are deleted. A kill at any moment leaves `latest` naming a complete checkpoint; a failed write
(a full disk) leaves no temporary folder and the previous checkpoints as they were. Loading verifies the
manifest, so a corrupt or truncated file is a clear CheckpointError, never a partial load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, config_from_dict
from .safe_state import StateFormatError, pack, unpack

MODEL_FILES = ("model.safetensors", "model_config.json", "tokenizer.json")
STATE_FILES = ("train_config.json", "state.safetensors", "state.json")  # what `--resume` needs besides the model
FILES = MODEL_FILES + STATE_FILES
LEGACY_STATE = "state.pt"  # the pickled state of checkpoints written before safetensors + JSON
_CKPT = re.compile(r"ckpt-(\d+)")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, or does not fit the model."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final` to fill; on success it replaces `final` (file or folder) in one
    rename, on any error it is removed and `final` is left as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def weights_bytes(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, metadata=metadata)


def json_payloads(files: dict[str, Any] | None) -> dict[str, bytes]:
    """{file name: JSON-able dict} -> the checkpoint files' bytes (indented JSON)."""
    return {name: json.dumps(d, indent=2).encode() for name, d in (files or {}).items()}


def lm_files(model_config: dict, tokenizer: dict, train_config: dict) -> dict[str, bytes]:
    """The JSON files of a language-model checkpoint (the tokenizer's unindented: a BPE vocabulary is large)."""
    return {"model_config.json": json.dumps(model_config, indent=2).encode(),
            "tokenizer.json": json.dumps(tokenizer).encode(),
            "train_config.json": json.dumps(train_config, indent=2).encode()}


def state_payloads(state: dict[str, Any]) -> dict[str, bytes]:
    """state.safetensors + state.json of a resumable state (tensors, numbers, strings, lists, dicts)."""
    from safetensors.torch import save

    tree, tensors = pack(state)
    return {"state.safetensors": save(tensors), "state.json": json.dumps(tree, allow_nan=False).encode()}


def step_of(path: Path) -> int | None:
    m = _CKPT.fullmatch(path.name)
    return int(m.group(1)) if m else None


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoint folders, oldest first."""
    found = [p for p in Path(run_dir).glob("ckpt-*") if p.is_dir() and step_of(p) is not None]
    return sorted(found, key=step_of)


def write_checkpoint(run_dir: str | Path, step: int, payloads: dict[str, bytes], keep: int = 2) -> Path:
    """Write the files of ckpt-<step> atomically with their manifest, point `latest` at it, keep the newest
    `keep` checkpoints. A checkpoint of a later step (left by a run resumed from an older checkpoint) is
    removed: the resumed run replaces that future. OSError (full disk, read-only folder) -> CheckpointError,
    with no temporary folder left and the older checkpoints untouched."""
    run_dir = Path(run_dir)
    name = f"ckpt-{step:07d}"
    final = run_dir / name
    manifest = {"step": step, "files": {n: {"bytes": len(b), "sha256": _sha256(b)} for n, b in payloads.items()}}
    try:
        # An existing `final` is a leftover not named by `latest` (a crashed run, or a corrupt one we fell back from).
        with atomic_folder(final) as tmp:
            for fname, data in payloads.items():
                _write_synced(tmp / fname, data)
            _write_synced(tmp / "manifest.json", json.dumps(manifest, indent=2).encode())
        _atomic_write(run_dir / "latest", (name + "\n").encode())
    except OSError as err:
        reason = err.strerror or str(err)
        raise CheckpointError(f"cannot write checkpoint {name} in {run_dir}: {reason}"
                              f"{' (' + err.filename + ')' if getattr(err, 'filename', None) else ''}; "
                              f"earlier checkpoints are untouched") from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    ckpts = checkpoints(run_dir)
    older = [p for p in ckpts if step_of(p) <= step]
    for old in older[:-keep] + [p for p in ckpts if step_of(p) > step]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in run_dir.glob(".ckpt-*.tmp-*"):  # left by a run killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    return final


def save_checkpoint(run_dir: str | Path, step: int, *, model_state: dict[str, torch.Tensor],
                    model_config: dict, tokenizer: dict, train_config: dict, state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write ckpt-<step> (see the module docstring) and keep the newest `keep` checkpoints."""
    payloads = {"model.safetensors": weights_bytes(model_state), **lm_files(model_config, tokenizer, train_config),
                **state_payloads(state)}
    return write_checkpoint(run_dir, step, payloads, keep)


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "latest").is_file()


def _latest(run_dir: Path) -> Path:
    try:
        name = (run_dir / "latest").read_bytes().decode("utf-8", errors="replace").strip()
    except OSError as err:
        raise CheckpointError(f"cannot read {run_dir}/latest ({err.strerror or err})") from None
    if not _CKPT.fullmatch(name):  # never a path: `latest` must not point outside the run folder
        raise CheckpointError(f"{run_dir}/latest is corrupt (it should name a ckpt-<step> folder)")
    target = run_dir / name
    if not target.is_dir():
        raise CheckpointError(f"{run_dir}/latest names {name}, which does not exist")
    return target


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder whose `latest` names one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (path / "manifest.json").exists() or (path / "model.safetensors").exists():
        return path
    if (path / "latest").is_file():
        return _latest(path)
    if (path / "model.pt").is_file():
        raise CheckpointError(f"{path} holds model.pt, a pickle written by an older mosaic; pickles are never "
                              f"loaded (unpickling can run code): rerun the experiment to get a safe checkpoint")
    raise CheckpointError(f"{path} is not a checkpoint (no manifest.json) or a run folder (no 'latest' file)")


def verify(ckpt: Path, need: tuple[str, ...] = MODEL_FILES) -> None:
    """Every file the manifest lists has the size and sha256 it records, and the files in `need` are listed."""
    try:
        manifest = json.loads((ckpt / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
        sizes = {name: (int(entry["bytes"]), str(entry["sha256"])) for name, entry in files.items()}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {ckpt} has no manifest.json (incomplete or not written by mosaic)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointError(f"checkpoint {ckpt} has a corrupt manifest.json") from None
    for fname in need:
        if fname not in sizes:
            raise CheckpointError(f"checkpoint {ckpt}: manifest does not list {fname}")
    for fname, (nbytes, sha) in sizes.items():
        path = ckpt / fname
        if Path(fname).name != fname:
            raise CheckpointError(f"checkpoint {ckpt} has a corrupt manifest.json (file name {fname!r})")
        if not path.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is missing {fname}")
        size = path.stat().st_size
        if size != nbytes:
            raise CheckpointError(f"checkpoint {ckpt} is truncated or corrupt: {fname} has {size} bytes, "
                                  f"expected {nbytes}")
        if _sha256(path.read_bytes()) != sha:
            raise CheckpointError(f"checkpoint {ckpt} is corrupt: {fname} does not match its sha256")


def read_json(ckpt: Path, name: str) -> dict:
    try:
        data = json.loads((ckpt / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bad UTF-8
        raise CheckpointError(f"checkpoint {ckpt}: cannot read {name} ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {ckpt}: {name} is not a JSON object")
    return data


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot read {path}: {first}") from None


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `model`, refusing any missing, unexpected, mis-shaped or non-finite tensor."""
    tensors = _read_tensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k} {tuple(tensors[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
              if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]})")
        raise CheckpointError(f"weights {path} do not fit this model: {'; '.join(parts)} — "
                              f"the checkpoint is from a different model or config")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"weights {path} hold NaN or infinite values ({len(bad)} tensors, e.g. {bad[0]}): "
                              f"the run diverged before this checkpoint; use an earlier one")
    model.load_state_dict(tensors, strict=True)


def _refuse_legacy(ckpt: Path) -> None:
    if not (ckpt / "state.json").is_file() and (ckpt / LEGACY_STATE).is_file():
        raise CheckpointError(f"checkpoint {ckpt} was written by an older mosaic: its training state is a pickle "
                              f"(state.pt), which is never loaded because unpickling can run code; its model still "
                              f"loads for eval / sample / inspect, but to train further start a new run")


def load_state(ckpt: Path) -> dict[str, Any]:
    """The resumable state (step, optimizer, RNG...). Never unpickles: a pre-safetensors checkpoint is refused."""
    _refuse_legacy(ckpt)
    tree = read_json(ckpt, "state.json")
    tensors = _read_tensors(ckpt / "state.safetensors")
    try:
        state = unpack(tree, tensors)
    except StateFormatError as err:
        raise CheckpointError(f"checkpoint {ckpt}: corrupt state.json ({err})") from None
    if not isinstance(state.get("step"), int) or state["step"] < 0:
        raise CheckpointError(f"checkpoint {ckpt}: state.json has no valid step")
    return state


def resumable(run_dir: str | Path, log: Callable[[str], None] | None = None,
              need: tuple[str, ...] = FILES) -> tuple[Path, dict[str, Any]]:
    """(checkpoint, state) to resume from: the one `latest` names, or, when it is corrupt, the newest older one
    that is intact (said through `log`); `need`: the files it must hold. CheckpointError naming the problem when
    none is usable."""
    run_dir = Path(run_dir)
    ckpts = checkpoints(run_dir)
    try:
        newest = _latest(run_dir)
        candidates = [newest] + [p for p in reversed(ckpts) if step_of(p) < step_of(newest)]
    except CheckpointError as err:
        if not ckpts:
            raise
        newest, candidates = None, list(reversed(ckpts))
        problems = [str(err)]
    else:
        problems = []
    for ckpt in candidates:
        _refuse_legacy(ckpt)  # an old-format run: say so, never fall back past it to an even older one
        try:
            verify(ckpt, need=need)
            state = load_state(ckpt)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if problems and log is not None:
            log(f"{problems[0]}; resuming from {ckpt.name}, the newest intact checkpoint")
        return ckpt, state
    raise CheckpointError(f"no usable checkpoint in {run_dir}: {problems[0]}" +
                          (f" (and {len(problems) - 1} older ones are damaged too)" if len(problems) > 1 else ""))


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer, train_config dict, checkpoint folder) from a checkpoint or run folder."""
    from .. import build_model
    from ..data.tokenizer import tokenizer_from_dict

    ckpt = resolve(path)
    verify(ckpt, need=MODEL_FILES)
    config_dict = read_json(ckpt, "model_config.json")
    if config_dict.get("model_type") == "moons":
        raise CheckpointError(f"{ckpt} holds a three-moons model, not a language model: use `mosaic inspect`")
    try:
        config = config_from_dict(config_dict)
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"checkpoint {ckpt}: bad model_config.json ({err})") from None
    model = build_model(config)
    load_weights(model, ckpt / "model.safetensors")
    try:
        tokenizer = tokenizer_from_dict(read_json(ckpt, "tokenizer.json"))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {ckpt}: bad tokenizer.json ({err})") from None
    train_config = read_json(ckpt, "train_config.json") if (ckpt / "train_config.json").is_file() else {}
    return model.to(device), tokenizer, train_config, ckpt
