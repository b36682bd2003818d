"""The language-model training loop for both models (single process, or torchrun + DDP / FSDP).

    from memory_mosaics.training import TrainConfig, train
    summary = train(TrainConfig(model="mosaic", preset="tiny", data="input.txt", out="runs/x", max_steps=200))

Batches are drawn by one generator seeded identically on every process: each optimizer step draws
`batch_size` window starts per step (split into grad_accum micro-batches, each split across processes), so the
data a step sees does not depend on the number of processes — 2 processes × 4 sequences train exactly like
1 process × 8. Schedule: linear warm-up then cosine to min_lr (optim.warmup_cosine). Evaluation uses a fixed
set of validation windows so curves from different runs and models are comparable.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import build_model
from ..config import CONFIGS, ConfigError, config_from_dict
from ..data import (build_tokenizer, check_length, content_key, tokenize_cached, tokenizer_from_dict,
                    train_val_split, windows_at)
from ..evaluation import per_position_loss
from ..optim import build_adamw, set_lr, warmup_cosine
from . import checkpoint as ckpt_io
from . import distributed as D
from .config import TrainConfig
from .metrics import MetricsLog


def prepare_data(cfg: TrainConfig, tokenizer=None):
    """(tokenizer, train tokens, val tokens, content key). The tokenizer is trained unless one is given.
    The data is streamed (data/sources.iter_segments): memory does not grow with the corpus."""
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg.tokenizer, cfg.data, cfg.bpe_vocab_size)
    key = content_key(cfg.data, tokenizer)
    tokens = tokenize_cached(cfg.data, tokenizer, key=key)
    train_tok, val_tok = train_val_split(tokens, cfg.val_fraction)
    return tokenizer, train_tok, val_tok, key


def model_config_for(cfg: TrainConfig, vocab_size: int):
    """The preset with overrides, its vocabulary sized to the tokenizer (padded to vocab_multiple)."""
    padded = math.ceil(vocab_size / cfg.vocab_multiple) * cfg.vocab_multiple
    args = dict(cfg.model_args)
    if args.get("vocab_size", padded) < vocab_size:
        raise ConfigError(f"model_args vocab_size={args['vocab_size']} is smaller than the tokenizer's {vocab_size}")
    args.setdefault("vocab_size", padded)
    return CONFIGS[cfg.model].preset(cfg.preset, **args)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None (float32) or the autocast dtype; mixed precision only on CUDA."""
    if cfg.dtype == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if cfg.dtype == "float32":
        return None
    if device.type != "cuda":
        raise ValueError(f"--dtype {cfg.dtype} (mixed precision) needs a CUDA device; use --dtype float32 on {device}")
    return getattr(torch, cfg.dtype)


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_out_dir(cfg: TrainConfig) -> Path:
    if not cfg.out:
        raise ValueError("no output directory given (pass --out DIR)")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if cfg.resume and not ckpt_io.has_checkpoint(out):
        raise ValueError(f"nothing to resume: {out} has no checkpoint (drop --resume to start a new run)")
    if not cfg.resume and ckpt_io.has_checkpoint(out):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    return out


def train(cfg: TrainConfig, tokenizer=None) -> dict:
    """Train as configured; returns the summary also written to OUT/summary.json ({} on ranks other than 0).
    A given tokenizer is used instead of training one (training/compare.py: every run on the same tokens)."""
    out = _check_out_dir(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info, device = D.setup(cfg.device)
    try:
        return _train(cfg, out, info, device, tokenizer)
    finally:
        D.teardown()


def _train(cfg: TrainConfig, out: Path, info: D.DistInfo, device: torch.device, tokenizer=None) -> dict:
    amp_dtype = autocast_dtype(cfg, device)
    micro_global = cfg.batch_size // cfg.grad_accum  # sequences per micro-step over all processes
    if micro_global % info.world:
        raise ConfigError(f"batch_size / grad_accum = {micro_global} must be divisible by the {info.world} processes")
    per_rank = micro_global // info.world

    # Everything that can fail on user input happens before the first write to OUT.
    saved = None
    if cfg.resume:
        ckpt_dir = ckpt_io.resolve(out)
        ckpt_io.verify(ckpt_dir)
        saved = ckpt_io.load_state(ckpt_dir)
        tokenizer = tokenizer_from_dict(ckpt_io.read_json(ckpt_dir, "tokenizer.json"))
        tokenizer, train_tok, val_tok, key = prepare_data(cfg, tokenizer)
        if key != saved["data_key"]:
            raise ConfigError(f"the data of {cfg.data} differs from the data this run was trained on; "
                              f"resume with the same data or start a new run")
    else:
        tokenizer, train_tok, val_tok, key = prepare_data(cfg, tokenizer)
    model_config = model_config_for(cfg, tokenizer.vocab_size)
    block = model_config.block_size
    check_length(train_tok, block, "training")
    check_length(val_tok, block, "validation")
    if saved is not None:
        saved_config = config_from_dict(ckpt_io.read_json(ckpt_dir, "model_config.json"))
        if "init" not in cfg.model_args:  # a run keeps the head it started with (a preset's default may change)
            model_config = model_config.replace(init=saved_config.init)
        if saved_config != model_config:
            raise ConfigError(f"cannot resume: the checkpoint's model config {saved_config.to_dict()} differs "
                              f"from this run's {model_config.to_dict()}")

    torch.manual_seed(cfg.seed)  # identical initialisation on every process
    raw = build_model(model_config).to(device)
    if saved is not None:
        ckpt_io.load_weights(raw, ckpt_dir / "model.safetensors")
    model = D.wrap(raw, info, device, cfg.fsdp)
    optimizer = build_adamw(raw, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    sampler = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed + info.rank)  # dropout differs per process, as in the reference
    step = 0
    if saved is not None:
        D.load_optim_state(model, optimizer, saved["optimizer"], cfg.fsdp)
        scaler.load_state_dict(saved["scaler"])
        sampler.set_state(saved["sampler"])
        rngs = saved["rng"]  # per rank; a run resumed on a different process count reuses rank 0's
        set_rng_state(rngs[info.rank] if len(rngs) == info.world else rngs[0], device)
        step = saved["step"]
    fwd = torch.compile(model) if cfg.compile else model
    amp = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext

    eval_bs = cfg.eval_batch_size or micro_global  # independent of the process count: comparable curves

    def evaluate() -> float:
        return per_position_loss(raw, val_tok, block, cfg.eval_batches, eval_bs, seed=cfg.seed + 1,
                                 device=device, autocast_dtype=amp_dtype).loss

    def save(at_step: int) -> None:
        m_state = D.model_state(model, raw, cfg.fsdp)
        o_state = D.optim_state(model, optimizer, cfg.fsdp)
        rngs = D.gather_objects(rng_state(device), info)
        if info.main:
            state = {"step": at_step, "optimizer": o_state, "scaler": scaler.state_dict(), "rng": rngs,
                     "sampler": sampler.get_state(), "data_key": key, "world": info.world}
            ckpt_io.save_checkpoint(out, at_step, model_state=m_state, model_config=model_config.to_dict(),
                                    tokenizer=tokenizer.to_dict(), train_config=cfg.to_dict(), state=state)

    metrics = None
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(out, cfg, resume_step=step if saved is not None else None)
        n_params = raw.num_params()
        print(f"{cfg.model} ({cfg.preset}): {n_params:,} parameters, vocab {model_config.vocab_size}, "
              f"context {block}; {len(train_tok):,} train / {len(val_tok):,} val tokens; "
              f"{info.world} process(es) on {device}", flush=True)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (cfg.progress and info.main), unit="step",
               dynamic_ncols=True)
    tokens_per_step = cfg.batch_size * block
    ckpt_every = cfg.checkpoint_interval or cfg.eval_interval
    t_start, steps_since, train_time, total_train_time = time.time(), 0, 0.0, 0.0  # train_time: no evals
    train_loss = val_loss = float("nan")
    tok_s = 0.0
    model.train()
    while step < cfg.max_steps:
        t_step = time.time()
        lr = warmup_cosine(step, lr=cfg.lr, warmup=cfg.warmup_steps, total=cfg.decay_steps, min_lr=cfg.min_lr)
        set_lr(optimizer, lr)
        losses = []
        for micro in range(cfg.grad_accum):
            starts = torch.randint(len(train_tok) - block, (micro_global,), generator=sampler).tolist()
            x, y = windows_at(train_tok, starts[info.rank * per_rank:(info.rank + 1) * per_rank], block)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            last = micro == cfg.grad_accum - 1
            sync = model.no_sync() if (info.enabled and not cfg.fsdp and not last) else nullcontext()
            with sync:
                with amp():
                    logits = fwd(x)  # (B, T, V)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
                scaler.scale(loss / cfg.grad_accum).backward()
            losses.append(loss.detach())
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_since += 1
        train_loss = D.all_mean(torch.stack(losses).mean().item(), info, device)  # .item() syncs the device
        train_time += time.time() - t_step
        if not math.isfinite(train_loss):
            raise ValueError(f"training loss is {train_loss} at step {step}; lower --lr or use --dtype float32")
        is_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        is_log = step % cfg.log_interval == 0 or is_eval
        row_val = None
        if is_eval:
            val_loss = row_val = evaluate()
        if is_log:
            now = time.time()
            tok_s = steps_since * tokens_per_step / max(train_time, 1e-9)
            total_train_time += train_time
            steps_since, train_time = 0, 0.0
            if metrics:
                metrics.log(step=step, tokens=step * tokens_per_step, lr=lr, train_loss=train_loss,
                            val_loss=row_val if row_val is not None else "", tok_per_s=round(tok_s, 1),
                            elapsed_s=round(now - t_start, 3))
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
        bar.update(1)
        if step % ckpt_every == 0 or step == cfg.max_steps:
            save(step)
    bar.close()
    elapsed = time.time() - t_start
    trained_steps = step - (saved["step"] if saved is not None else 0)
    summary = {"model": cfg.model, "preset": cfg.preset, "params": raw.num_params(), "step": step,
               "tokens": step * tokens_per_step, "train_loss": train_loss, "val_loss": val_loss,
               "val_perplexity": math.exp(min(val_loss, 700)) if math.isfinite(val_loss) else None,
               "elapsed_s": round(elapsed, 2), "processes": info.world,
               "train_tok_per_s": round(trained_steps * tokens_per_step / total_train_time, 1)
               if total_train_time > 0 else None}
    if not info.main:
        return {}
    metrics.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
