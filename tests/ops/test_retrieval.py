import math

import torch
import torch.nn.functional as F

from memory_mosaics.ops import kernel_regression, retrieval_weights, retrieve
from tests.helpers import assert_close


def explicit_nadaraya_watson(q, k, v, beta):
    """f(q) = Σ_i exp(-β‖q-k_i‖²) v_i / Σ_j exp(-β‖q-k_j‖²), written out with loops."""
    out = torch.zeros(q.shape[0], v.shape[1], dtype=q.dtype)
    for a in range(q.shape[0]):
        w = torch.tensor([math.exp(-beta * float(((q[a] - k[i]) ** 2).sum())) for i in range(k.shape[0])], dtype=q.dtype)
        out[a] = (w[:, None] * v).sum(0) / w.sum()
    return out


def test_kernel_regression_matches_explicit_formula():
    torch.manual_seed(0)
    q, k, v = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    assert_close(kernel_regression(q, k, v, 0.7), explicit_nadaraya_watson(q, k, v, 0.7), 1e-10)


def test_equal_norm_keys_turn_kernel_regression_into_softmax():
    torch.manual_seed(1)
    q = F.normalize(torch.randn(2, 4, 6, 8, dtype=torch.float64), dim=-1)
    k = F.normalize(torch.randn(2, 4, 9, 8, dtype=torch.float64), dim=-1) * 1.3  # any common norm
    v = torch.randn(2, 4, 9, 5, dtype=torch.float64)
    beta = 3.0
    assert_close(retrieve(q, k, v, 2 * beta), kernel_regression(q, k, v, beta), 1e-10)


def test_unequal_norms_differ_from_softmax():
    # The identity needs equal key norms: it must fail without them, or the test above proves nothing.
    torch.manual_seed(2)
    q = torch.randn(4, 3, dtype=torch.float64)
    k = torch.randn(6, 3, dtype=torch.float64) * torch.arange(1, 7)[:, None]  # unequal key norms
    v = torch.randn(6, 2, dtype=torch.float64)
    assert not torch.allclose(retrieve(q, k, v, 2.0), kernel_regression(q, k, v, 1.0))


def test_mask_and_empty_rows():
    torch.manual_seed(3)
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    mask = torch.tensor([[False] * 5, [True, False, False, False, False], [True, True, False, True, False]])
    w = retrieval_weights(q, k, 1.0, mask)
    assert torch.equal(w[0], torch.zeros(5))
    assert_close(w[1:].sum(-1), torch.ones(2))
    assert torch.all(w[~mask] == 0)
    y = retrieve(q, k, v, 1.0, mask)
    assert torch.equal(y[0], torch.zeros(2)) and torch.isfinite(y).all()
    assert_close(y[1], v[0])
