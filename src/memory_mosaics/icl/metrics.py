"""RegBench metrics, pooled over every input position of every test sequence.

    p_DFA(·|j)   uniform over the legal next letters after input j (`allowed`, never "|" or ".")
    p_model(·|j) softmax over all 20 logits
    accuracy     argmax p_model is a legal letter                      (figure metric (a))
    acc_c        the same, skipping positions whose next token is "|"  (the official train.py log)
    tvd          ½ Σ_v |p_model(v) − p_DFA(v)| ∈ [0, 1]                 (figure metric)
    l1           2·tvd                                                (logged `model_dfa_diff`)
"""

from __future__ import annotations

import numpy as np
import torch


class RegBenchScore:
    """Accumulates sums over positions; `result()` gives the pooled means."""

    def __init__(self):
        self.n = 0
        self.correct = 0
        self.tvd_sum = 0.0
        self.n_c = 0
        self.correct_c = 0

    def update(self, probs: torch.Tensor, allowed: torch.Tensor, next_is_sep: torch.Tensor) -> None:
        """probs (n, V) rows summing to 1, allowed (n, V) bool, next_is_sep (n,) bool — valid positions only."""
        allowed = allowed.to(probs.device)
        p_true = allowed.to(probs.dtype) / allowed.sum(-1, keepdim=True).clamp_min(1)
        ok = allowed.gather(1, probs.argmax(-1, keepdim=True)).squeeze(1)  # (n,)
        keep = ~next_is_sep.to(probs.device)
        self.n += probs.shape[0]
        self.correct += int(ok.sum())
        self.n_c += int(keep.sum())
        self.correct_c += int(ok[keep].sum())
        self.tvd_sum += float(0.5 * (probs - p_true).abs().sum(-1).double().sum())

    def result(self) -> dict:
        if self.n == 0:
            raise ValueError("no positions were scored")
        tvd = self.tvd_sum / self.n
        return dict(accuracy=self.correct / self.n, acc_c=self.correct_c / max(1, self.n_c), tvd=tvd, l1=2 * tvd,
                    positions=self.n)


def score_distributions(probs_per_seq, examples) -> dict:
    """probs_per_seq: list of (n_i, V) arrays/tensors (predictors), examples: the matching regbench.Example list."""
    score = RegBenchScore()
    for probs, ex in zip(probs_per_seq, examples):
        probs = torch.as_tensor(np.asarray(probs), dtype=torch.float64)
        score.update(probs, torch.as_tensor(ex.allowed), torch.as_tensor(ex.labels < 0))
    return score.result()
