import pytest


def tiny_args(data, out, **over):
    """TrainConfig kwargs for a seconds-long tiny run."""
    args = dict(model="mosaic", preset="tiny", data=str(data), out=str(out), batch_size=4, max_steps=8,
                warmup_steps=2, lr=1e-2, eval_interval=4, eval_batches=2, log_interval=1, progress=False,
                threads=1)
    args.update(over)
    return args
