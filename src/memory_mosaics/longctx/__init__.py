"""Long-context benchmark: RULER-style multi-key retrieval over TinyStories, six models side by side."""

from .experiment import MODELS, LongContextConfig, model_config, run_longctx, run_model

__all__ = ["MODELS", "LongContextConfig", "model_config", "run_longctx", "run_model"]
