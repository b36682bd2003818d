"""Checkpoints: a run directory holds `ckpt-<step>/` folders and a `latest` file naming the newest.

    ckpt-0001000/
        model.safetensors     weights of the unwrapped model (no `module.` / `_orig_mod.` prefixes)
        model_config.json     config.to_dict() (records model_type)
        tokenizer.json        tokenizer.to_dict()
        train_config.json     TrainConfig.to_dict()
        state.pt              optimizer, grad scaler, RNG states, step, data-sampler state
        manifest.json         size and sha256 of every file above; written last

Atomicity: a checkpoint is written into a temporary folder which is renamed to `ckpt-<step>` only once
complete, then `latest` is replaced atomically (temp file + os.replace), then older checkpoints are deleted.
A kill at any moment leaves `latest` naming a complete checkpoint. Loading verifies the manifest, so a
corrupt or truncated file is a clear CheckpointError, never a partial load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, config_from_dict

FILES = ("model.safetensors", "model_config.json", "tokenizer.json", "train_config.json", "state.pt")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, or does not fit the model."""


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's model inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def save_checkpoint(run_dir: str | Path, step: int, *, model_state: dict[str, torch.Tensor],
                    model_config: dict, tokenizer: dict, train_config: dict, state: dict[str, Any],
                    keep: int = 1) -> Path:
    """Write ckpt-<step> atomically, point `latest` at it, keep the newest `keep` checkpoints."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = run_dir / "latest"
    if latest.is_file() and latest.read_text().strip() == f"ckpt-{step:07d}":
        return run_dir / f"ckpt-{step:07d}"  # this step is already saved (a resumed run with nothing to do)
    buf = io.BytesIO()
    torch.save(state, buf)
    payloads = {
        "model.safetensors": weights_bytes(model_state),
        "model_config.json": json.dumps(model_config, indent=2).encode(),
        "tokenizer.json": json.dumps(tokenizer).encode(),
        "train_config.json": json.dumps(train_config, indent=2).encode(),
        "state.pt": buf.getvalue(),
    }
    manifest = {"step": step, "files": {n: {"bytes": len(b), "sha256": _sha256(b)} for n, b in payloads.items()}}
    name = f"ckpt-{step:07d}"
    final = run_dir / name
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{name}.tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is an ordinary folder
    try:
        for fname, data in payloads.items():
            (tmp / fname).write_bytes(data)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if final.exists():  # a leftover of an earlier run not named by `latest` (a step is saved once)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic_write(run_dir / "latest", (name + "\n").encode())
    ckpts = sorted(p for p in run_dir.glob("ckpt-*") if p.is_dir())
    for old in ckpts[:-keep] if keep > 0 else []:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in run_dir.glob(".ckpt-*.tmp-*"):  # left by a run killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    return final


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "latest").is_file()


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder whose `latest` names one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (path / "manifest.json").exists() or (path / "model.safetensors").exists():
        return path
    if (path / "latest").is_file():
        target = path / (path / "latest").read_text().strip()
        if not target.is_dir():
            raise CheckpointError(f"{path}/latest names {target.name}, which does not exist")
        return target
    raise CheckpointError(f"{path} is not a checkpoint (no manifest.json) or a run folder (no 'latest' file)")


def verify(ckpt: Path) -> None:
    """Every file present with the size and sha256 the manifest records."""
    try:
        manifest = json.loads((ckpt / "manifest.json").read_text())
        files = manifest["files"]
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {ckpt} has no manifest.json (incomplete or not written by mosaic)") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint {ckpt} has a corrupt manifest.json") from None
    for fname in FILES:
        path = ckpt / fname
        if fname not in files:
            raise CheckpointError(f"checkpoint {ckpt}: manifest does not list {fname}")
        if not path.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is missing {fname}")
        size = path.stat().st_size
        if size != files[fname]["bytes"]:
            raise CheckpointError(f"checkpoint {ckpt} is truncated or corrupt: {fname} has {size} bytes, "
                                  f"expected {files[fname]['bytes']}")
        if _sha256(path.read_bytes()) != files[fname]["sha256"]:
            raise CheckpointError(f"checkpoint {ckpt} is corrupt: {fname} does not match its sha256")


def read_json(ckpt: Path, name: str) -> dict:
    try:
        return json.loads((ckpt / name).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {ckpt}: cannot read {name} ({err})") from None


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `model`, refusing any missing, unexpected or mis-shaped tensor."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"cannot read weights {path}: {err}") from None
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
    model.load_state_dict(tensors, strict=True)


def load_state(ckpt: Path) -> dict[str, Any]:
    try:
        return torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
    except Exception as err:  # pickle / zip errors of a damaged file
        raise CheckpointError(f"checkpoint {ckpt}: cannot read state.pt ({type(err).__name__})") from None


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer, train_config dict, checkpoint folder) from a checkpoint or run folder."""
    from .. import build_model
    from ..data.tokenizer import tokenizer_from_dict

    ckpt = resolve(path)
    verify(ckpt)
    try:
        config = config_from_dict(read_json(ckpt, "model_config.json"))
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"checkpoint {ckpt}: bad model_config.json ({err})") from None
    model = build_model(config)
    load_weights(model, ckpt / "model.safetensors")
    tokenizer = tokenizer_from_dict(read_json(ckpt, "tokenizer.json"))
    return model.to(device), tokenizer, read_json(ckpt, "train_config.json"), ckpt
