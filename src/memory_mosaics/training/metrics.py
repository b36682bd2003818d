"""Metrics: always a CSV (OUT/metrics.csv); TensorBoard and W&B when installed and asked for."""

from __future__ import annotations

import csv
import importlib.util
import warnings
from pathlib import Path

COLUMNS = ("step", "tokens", "lr", "train_loss", "val_loss", "tok_per_s", "elapsed_s")  # tok_per_s: training steps only, evaluations excluded


class MetricsLog:
    def __init__(self, out: Path, cfg, resume_step: int | None = None):
        self.path = out / "metrics.csv"
        rows = []
        if resume_step is not None and self.path.exists():
            # Keep what was logged up to the checkpoint; rows after it are replayed by the resumed run.
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()
        self.tb = self.wandb = None
        if cfg.tensorboard:
            if importlib.util.find_spec("tensorboard") is None:
                warnings.warn("--tensorboard: the tensorboard package is not installed; logging to CSV only", stacklevel=2)
            else:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
        if cfg.wandb:
            if importlib.util.find_spec("wandb") is None:
                warnings.warn("--wandb: the wandb package is not installed; logging to CSV only", stacklevel=2)
            else:
                import wandb

                self.wandb = wandb.init(project=cfg.wandb_project, config=cfg.to_dict(), dir=str(out),
                                        name=out.name, resume="allow")

    def log(self, **row) -> None:
        self.writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        if self.tb:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, row["step"])
        if self.wandb:
            self.wandb.log(scalars, step=row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb:
            self.tb.close()
        if self.wandb:
            self.wandb.finish()


def read_metrics(path: str | Path) -> list[dict]:
    """metrics.csv rows with numbers parsed (empty cells -> None)."""
    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]
