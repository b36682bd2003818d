"""Looking inside a Memory Mosaic: retrieval weights, learned time scales and bandwidths, persistent-memory
slots. Everything here observes the model through forward hooks and recomputes what it needs with the
reference formulas, so the fast path used for training and generation is untouched."""

from .memories import ContextRetrieval, PersistentRecall, context_retrievals, head_table, persistent_recalls

__all__ = ["ContextRetrieval", "PersistentRecall", "context_retrievals", "head_table", "persistent_recalls"]
