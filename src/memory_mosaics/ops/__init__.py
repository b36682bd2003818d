"""Functional kernels. Each fast path sits beside the plain reference it is tested against."""

from .leaky_average import leaky_average, leaky_average_reference, leaky_average_step
from .retrieval import kernel_regression, key_dropout, retrieval_weights, retrieve, shared_bank_retrieval
from .strict_past import (
    strict_past_mask,
    strict_past_retrieval,
    strict_past_retrieval_reference,
    strict_past_weights,
)

__all__ = [
    "leaky_average", "leaky_average_reference", "leaky_average_step",
    "key_dropout", "kernel_regression", "retrieve", "retrieval_weights", "shared_bank_retrieval",
    "strict_past_mask", "strict_past_retrieval", "strict_past_retrieval_reference", "strict_past_weights",
]
