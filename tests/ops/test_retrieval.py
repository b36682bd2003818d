import math

import pytest
import torch
import torch.nn.functional as F

from memory_mosaics.ops import kernel_regression, retrieval_weights, retrieve, shared_bank_retrieval
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


@pytest.mark.parametrize("layout", ["htbd", "hbtd", "bhtd"])
def test_shared_bank_retrieval_matches_retrieve_forward_and_backward(layout):
    """Banks shared by the batch, every query in one attention per head, for queries in each memory order (the
    first two are read without a copy): the same as `retrieve` with the banks broadcast, in float64."""
    torch.manual_seed(0)
    B, H, T, D, P = 3, 2, 5, 4, 7
    order = {"htbd": (2, 0, 1, 3), "hbtd": (1, 0, 2, 3), "bhtd": (0, 1, 2, 3)}[layout]
    shape = [(B, H, T, D)[i] for i in order]  # the memory's shape, permuted back to (B, H, T, D) below
    q = torch.randn(*shape, dtype=torch.float64).permute(*[order.index(i) for i in range(4)]).requires_grad_()
    mk = torch.randn(H, P, D, dtype=torch.float64, requires_grad=True)
    mv = torch.randn(H, P, D, dtype=torch.float64, requires_grad=True)
    y, y_ref = shared_bank_retrieval(q, mk, mv), retrieve(q, mk, mv)
    assert y.shape == (B, H, T, D)
    assert_close(y, y_ref, 1e-12, what="forward")
    g = torch.randn_like(y_ref)
    grads, grads_ref = torch.autograd.grad(y, (q, mk, mv), g), torch.autograd.grad(y_ref, (q, mk, mv), g)
    for name, a, r in zip(("q", "bank k", "bank v"), grads, grads_ref):
        assert_close(a, r, 1e-12, what=f"grad {name}")
