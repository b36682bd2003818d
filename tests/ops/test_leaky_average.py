import pytest
import torch

from memory_mosaics.ops import leaky_average, leaky_average_reference, leaky_average_step
from memory_mosaics.ops.leaky_average import _LeakyAverage, leaky_average_chunked, scan_htk
from tests.helpers import assert_close


def recurrence(x, b):
    """The definition, one step at a time."""
    out, state = [], None
    for t in range(x.shape[2]):
        state = leaky_average_step(state, x[:, :, t], b)
        out.append(state)
    return torch.stack(out, dim=2)


def test_reference_matches_recurrence():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 4, dtype=torch.float64)
    b = torch.tensor([0.5, 1.7, 5.0], dtype=torch.float64)
    assert_close(leaky_average_reference(x, b), recurrence(x, b), what="T×T matrix vs recurrence")


@pytest.mark.parametrize("fn", [leaky_average, leaky_average_chunked])
@pytest.mark.parametrize("T,chunk", [(1, 4), (7, 4), (16, 4), (37, 4), (70, 4), (300, 8), (200, 64)])
def test_chunked_scan_matches_reference_forward_and_backward(T, chunk, fn):
    # chunk² < T exercises the recursive carry (chunks of chunks).
    torch.manual_seed(T)
    x = torch.randn(2, 3, T, 5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.05, 0.9, 5.0], dtype=torch.float64, requires_grad=True)
    y_ref = leaky_average_reference(x, b)
    y_fast = fn(x, b, chunk=chunk)
    assert_close(y_fast, y_ref, 1e-10, what="forward")
    g = torch.randn_like(y_ref)
    gx_ref, gb_ref = torch.autograd.grad(y_ref, (x, b), g)
    gx, gb = torch.autograd.grad(y_fast, (x, b), g)
    assert_close(gx, gx_ref, 1e-10, what="grad x")
    assert_close(gb, gb_ref, 1e-10, what="grad b")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("T,chunk", [(1, 4), (3, 4), (4, 4), (5, 4), (17, 4), (70, 4), (300, 8)])
def test_scan_htk_forward_and_reverse(T, chunk, reverse):
    """The (H, T, K) scan against the T×T reference; reversed in time it is the reference on flipped inputs."""
    torch.manual_seed(T + 7)
    x = torch.randn(3, T, 6, dtype=torch.float64)
    b = torch.tensor([0.05, 0.9, 5.0], dtype=torch.float64)
    x4 = x.transpose(0, 1)[None].transpose(1, 2)  # (1, H, T, K)
    want = leaky_average_reference(x4.flip(2), b).flip(2) if reverse else leaky_average_reference(x4, b)
    assert_close(scan_htk(x, b, chunk, reverse), want[0], 1e-12)


def test_chunked_scan_float32_long_sequence_is_stable():
    # No exp(+b t) factors: a long sequence with fast decay must stay finite and match the reference.
    torch.manual_seed(1)
    x = torch.randn(1, 2, 2000, 8)
    b = torch.tensor([0.01, 20.0])
    y = leaky_average(x, b, chunk=32)
    assert torch.isfinite(y).all()
    assert_close(y, leaky_average_reference(x, b), 1e-4, what="T=2000 float32")


def test_is_causal():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 50, 3)
    b = torch.tensor([0.3, 2.0])
    x2 = x.clone()
    x2[:, :, 30] += 1.0
    y, y2 = leaky_average(x, b, chunk=8), leaky_average(x2, b, chunk=8)
    assert torch.equal(y[:, :, :30], y2[:, :, :30])
    assert not torch.allclose(y[:, :, 30:], y2[:, :, 30:])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_low_precision_stays_causal_past_256_positions(dtype, impl):
    # bf16 cannot represent every integer above 256: positions must not be built in the input's dtype.
    torch.manual_seed(3)
    x = torch.randn(1, 2, 300, 4).to(dtype)
    b = torch.tensor([0.5, 3.0])
    f = (lambda x: leaky_average(x, b, chunk=64)) if impl == "fast" else (lambda x: leaky_average_reference(x, b))
    x2 = x.clone()
    x2[:, :, 260] += 4.0
    y, y2 = f(x), f(x2)
    assert torch.equal(y[:, :, :260], y2[:, :, :260])
    assert_close(y.float(), leaky_average_reference(x.float(), b), 2e-2, what=f"{dtype} vs float32")


def test_chunk_must_be_at_least_two():
    with pytest.raises(ValueError, match="chunk"):
        leaky_average(torch.randn(1, 1, 10, 2), torch.tensor([1.0]), chunk=1)


# --- the hand-written backward (the CUDA path's autograd.Function), here around the PyTorch chunked scan ---

@pytest.mark.parametrize("T,chunk", [(1, 4), (5, 4), (37, 4), (70, 4), (256, 64), (300, 8)])
def test_fused_backward_matches_autograd_reference(T, chunk):
    torch.manual_seed(T + 100)
    x = torch.randn(2, 3, T, 5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.05, 0.9, 5.0], dtype=torch.float64, requires_grad=True)
    y_ref = leaky_average_reference(x, b)
    y = _LeakyAverage.apply(x, b, chunk)
    assert_close(y, y_ref, rtol=1e-10, what="forward")
    g = torch.randn_like(y_ref)
    gx_ref, gb_ref = torch.autograd.grad(y_ref, (x, b), g)
    gx, gb = torch.autograd.grad(y, (x, b), g)
    assert_close(gx, gx_ref, rtol=1e-10, what="grad x")
    assert_close(gb, gb_ref, rtol=1e-10, what="grad b")


def test_fused_backward_gradcheck_and_strided_input():
    torch.manual_seed(3)
    # A (B, T, H, D) tensor viewed as (B, H, T, D), as the key extractor's split_heads produces.
    x = torch.randn(2, 9, 3, 4, dtype=torch.float64).transpose(1, 2).requires_grad_()
    b = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: _LeakyAverage.apply(x, b, 4), (x, b))


def test_fused_path_only_x_or_only_b_requires_grad():
    x = torch.randn(1, 2, 10, 3, dtype=torch.float64)
    b = torch.tensor([0.4, 2.0], dtype=torch.float64, requires_grad=True)
    (gb,) = torch.autograd.grad(_LeakyAverage.apply(x, b, 4).sum(), (b,))
    (gb_ref,) = torch.autograd.grad(leaky_average_reference(x, b).sum(), (b,))
    assert_close(gb, gb_ref, rtol=1e-10, what="grad b only")
    x.requires_grad_()
    (gx,) = torch.autograd.grad(_LeakyAverage.apply(x, b.detach(), 4).sum(), (x,))
    (gx_ref,) = torch.autograd.grad(leaky_average_reference(x, b.detach()).sum(), (x,))
    assert_close(gx, gx_ref, rtol=1e-10, what="grad x only")


def test_scan_plan_constants_are_cached_and_plan_matches_decay_matrices():
    """`scan_plan` reuses its b-independent tensors across calls (built once, even when first asked for inside
    inference mode) and still gives each level's `_decay_matrix` and entry decays for every new b."""
    from memory_mosaics.ops.leaky_average import _decay_matrix, _plan_constants, scan_plan

    _plan_constants.cache_clear()
    with torch.inference_mode():
        scan_plan(torch.tensor([0.5, 2.0], dtype=torch.float64), 40, 4, torch.float64)
    for seed in range(2):  # a new b each call, as in training
        b = torch.rand(2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 5
        m, e = scan_plan(b, 40, 4, torch.float64)  # 40 -> 10 -> 3: three levels
        assert m.shape == (3, 2, 4, 4) and e.shape == (3, 2, 4)
        for level in range(3):
            assert_close(m[level], _decay_matrix(b * 4 ** level, 4, torch.float64), 1e-14)
            expected = torch.exp(-(b * 4 ** level)[:, None] * torch.arange(1, 5, dtype=torch.float64))
            assert_close(e[level], expected, 1e-14)
    assert _plan_constants.cache_info().hits >= 2 and _plan_constants.cache_info().currsize == 1
    # a training step after the inference-mode call: the cached constants are ordinary tensors
    x = torch.randn(1, 2, 40, 3, dtype=torch.float64, requires_grad=True)
    leaky_average(x, torch.tensor([0.5, 2.0], dtype=torch.float64), 4).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("trace", ["fake", "functionalize"])
def test_scan_plan_under_a_trace_leaves_the_cache_to_real_calls(trace):
    """A first call under FakeTensorMode (non-strict torch.export, fake-tensor memory estimators) or
    torch.func.functionalize cached the tracer's tensors, and every later real call failed. The traced call now
    builds its own constants; real calls get the same plan, bit for bit, and a training step runs."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    from memory_mosaics.ops.leaky_average import _plan_constants, scan_plan

    b = torch.tensor([0.5, 2.0])
    _plan_constants.cache_clear()
    expected = scan_plan(b, 40, 4, torch.float32)
    _plan_constants.cache_clear()
    if trace == "fake":
        with FakeTensorMode() as mode:
            m, e = scan_plan(mode.from_tensor(b), 40, 4, torch.float32)
        assert isinstance(m, FakeTensor) and m.shape == (3, 2, 4, 4) and e.shape == (3, 2, 4)
    else:
        m = torch.func.functionalize(lambda b: scan_plan(b, 40, 4, torch.float32)[0])(b)
        assert torch.equal(m, expected[0])
    assert _plan_constants.cache_info().currsize == 0
    for got, want in zip(scan_plan(b, 40, 4, torch.float32), expected):
        assert type(got) is torch.Tensor and not torch._is_functional_tensor(got) and torch.equal(got, want)
    x = torch.randn(1, 2, 40, 3, requires_grad=True)
    leaky_average(x, b, 4).sum().backward()
    assert x.grad is not None and _plan_constants.cache_info().currsize == 1
