"""Training: config, loop, checkpoints, distributed helpers."""

from .checkpoint import CheckpointError, load_model, save_checkpoint
from .config import TrainConfig, merge_for_resume
from .loop import Loop, Task, TrainingInterrupted
from .trainer import train

__all__ = ["CheckpointError", "Loop", "Task", "TrainConfig", "TrainingInterrupted", "load_model", "merge_for_resume",
           "save_checkpoint", "train"]
