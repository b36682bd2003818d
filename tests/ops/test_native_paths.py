"""The native CPU kernels (ops/cpu_kernels/, ops/native_paths.py) against the float64 references, forward and
backward; their dispatch; the fallback to the PyTorch paths. Skipped, with the reason shown, where the kernels
cannot be built (no C++ compiler or ninja) or MEMORY_MOSAICS_NATIVE=0."""

import pytest
import torch

from memory_mosaics.ops import cpu_kernels, key_path, native_paths, normalize
from memory_mosaics.ops.leaky_average import leaky_average_reference
from memory_mosaics.ops.normalize import scaled_l2_normalize_reference
from tests.helpers import assert_close

pytestmark = pytest.mark.skipif(not cpu_kernels.available(),
                                reason=f"native CPU kernels not available: {cpu_kernels.unavailable_reason()}")

RTOL = {torch.float64: 1e-11, torch.float32: 2e-5}
# T = 1; T prime; B·H (20) above any thread count; d_h not a multiple of the kernels' 8-wide sums; the model's shape.
SHAPES = [(1, 1, 1, 4), (2, 3, 37, 32), (5, 4, 19, 8), (2, 2, 16, 5), (2, 4, 64, 32)]


def key_reference(x, b, s):
    return scaled_l2_normalize_reference(leaky_average_reference(x, b), s)


def inputs(shape, dtype, layout="projection", seed=0):
    """x (B, H, T, D) as the model passes it: a view of (B, T, H, D) memory; 'contiguous', or 'columns' (the last
    dim strided: the op copies it)."""
    B, H, T, D = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, H, D, generator=g, dtype=torch.float64)
    params = dict(b=torch.rand(H, generator=g, dtype=torch.float64) * 3 + 0.1,
                  s=torch.rand(H, generator=g, dtype=torch.float64) + 0.5,
                  gamma=torch.rand(H, generator=g, dtype=torch.float64))
    w = torch.randn(B, H, T, D, generator=g, dtype=torch.float64)  # the upstream gradient
    return x, params, w


def view(x, dtype, layout):
    x = x.to(dtype)
    if layout == "projection":
        return x.detach().requires_grad_(), lambda t: t.transpose(1, 2)
    if layout == "contiguous":
        x = x.transpose(1, 2).contiguous().detach().requires_grad_()
        return x, lambda t: t
    x = x.transpose(-1, -2).contiguous().detach().requires_grad_()  # (B, T, D, H) memory: last dim strided
    return x, lambda t: t.permute(0, 3, 1, 2)


def run(fn, x, layout, dtype, w, *params):
    leaf, to_bhtd = view(x, dtype, layout)
    ps = [p.to(dtype).detach().requires_grad_() for p in params]
    y = fn(to_bhtd(leaf), *ps)
    (y * w.to(dtype)).sum().backward()
    return y.detach(), [to_bhtd(leaf.grad)] + [p.grad for p in ps]


def compare(native, reference, dtype, what):
    (y, grads), (y_ref, grads_ref) = native, reference
    assert y.dtype == dtype and grads[0].dtype == dtype
    assert_close(y, y_ref, RTOL[dtype], what=f"{what} forward")
    scale = max(g.abs().max().item() for g in grads_ref)  # some parameter gradients vanish (T = 1)
    for name, g, g_ref in zip(("x", "p1", "p2"), grads, grads_ref):
        assert_close(g, g_ref, RTOL[dtype], scale=scale, what=f"{what} ∂{name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", ["projection", "contiguous", "columns"])
def test_key_path_matches_the_reference(shape, dtype, layout):
    x, p, w = inputs(shape, dtype)
    native = run(native_paths.native_key_path, x, layout, dtype, w, p["b"], p["s"])
    reference = run(key_reference, x, "projection", torch.float64, w, p["b"], p["s"])
    compare(native, reference, dtype, f"key path {shape}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("peek", [True, False])
def test_value_path_matches_the_reference(shape, dtype, peek):
    x, p, w = inputs(shape, dtype, seed=1)
    params = (p["s"], p["gamma"]) if peek else (p["s"],)
    for layout in ("projection", "columns"):
        native = run(native_paths.native_value_path, x, layout, dtype, w, *params)
        reference = run(scaled_l2_normalize_reference, x, "projection", torch.float64, w, *params)
        compare(native, reference, dtype, f"value path {shape} peek={peek} {layout}")


def assert_rows_close(actual, expected, rtol, what):
    """Row (b, h) by row: a vector under the 1e-12 floor has gradients ~1e12 that would swamp every other row."""
    for b in range(expected.shape[0]):
        for h in range(expected.shape[1]):
            if not expected[b, h].any():  # an all-zero row (under the floor): exactly zero, no tolerance
                assert not actual[b, h].any(), f"{what} row ({b}, {h}) should be 0"
                continue
            assert_close(actual[b, h], expected[b, h], rtol, scale=expected[b, h].abs().max().item(),
                         what=f"{what} row ({b}, {h})")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("under", ["zero", "tiny"])
def test_vectors_under_the_floor(dtype, under):
    """Vectors under the 1e-12 floor: output s·u/1e-12 and the gradient without its projection term (the norm is
    the constant floor there), as the reference's clamp gives. zero: k̄ = 0 (an all-zero input row) and u_{T-1} = 0
    (γ = 0: the last value peeks at x_T := 0); the projection term is 0 either way there. tiny: 0 < ‖u‖ < 1e-12,
    where a kernel keeping the term is off by up to 40 % per row."""
    x, p, w = inputs((2, 3, 9, 8), dtype, seed=2 if under == "zero" else 4)
    if under == "zero":
        x[1, :, 2] = 0.0  # row (b 1, h 2): every k̄_t = 0
        p["gamma"][0] = 0.0
    else:
        x[1, :, 2] *= 3e-13  # row (b 1, h 2): every u_t and most k̄_t under the floor (k̄ accumulates: not all)
        x[0, 4:, 0] *= 3e-13  # row (b 0, h 0) from t = 4: under the floor for the values, not for the keys
    for fn, ref, params in ((native_paths.native_key_path, key_reference, (p["b"], p["s"])),
                            (native_paths.native_value_path, scaled_l2_normalize_reference, (p["s"], p["gamma"]))):
        (y, grads), (y_ref, grads_ref) = (run(fn, x, "projection", dtype, w, *params),
                                          run(ref, x, "projection", torch.float64, w, *params))
        assert_rows_close(y, y_ref, RTOL[dtype], f"{fn.__name__} forward")
        assert_rows_close(grads[0], grads_ref[0], RTOL[dtype], f"{fn.__name__} ∂x")
        for g, g_ref in zip(grads[1:], grads_ref[1:]):
            assert_close(g, g_ref, RTOL[dtype], what=f"{fn.__name__} parameter gradient")
    if under == "zero":
        assert (y[:, 0, -1] == 0).all()  # the value under the floor


def test_long_memory_keeps_float32_accuracy():
    """A head with λ near 1 (b = 1e-4) sums ~T terms: the recurrences run in double inside the kernel, so float32
    keys and gradients stay as close to the float64 reference as the chunked PyTorch scan's (in float32 arithmetic
    they were 10-100x further off at T 1,024-4,096)."""
    B, H, T, D = 1, 2, 2048, 8
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, T, H, D, generator=g, dtype=torch.float64)
    w = torch.randn(B, H, T, D, generator=g, dtype=torch.float64)
    b, s = torch.tensor([1e-4, 1e-3], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    native = run(native_paths.native_key_path, x, "projection", torch.float32, w, b, s)
    reference = run(key_reference, x, "projection", torch.float64, w, b, s)
    pytorch = run(lambda x, b, s: key_path._LeakyNormalize.apply(x, b, s, 16), x, "projection", torch.float32, w, b, s)
    for what, i in (("forward", None), ("∂x", 0)):
        got, want, theirs = ((r[0] if i is None else r[1][i]) for r in (native, reference, pytorch))
        err = ((got.double() - want).abs().max() / want.abs().max()).item()
        err_pytorch = ((theirs.double() - want).abs().max() / want.abs().max()).item()
        assert err < max(4 * err_pytorch, 1e-6), f"{what}: native {err:.1e}, PyTorch scan {err_pytorch:.1e}"


def test_key_path_is_causal():
    """k_t depends on x_{≤t} only: changing x_t' leaves every k_t, t < t', bit for bit; no gradient flows back in
    time's other direction."""
    B, H, T, D, t0 = 2, 3, 23, 8, 11
    x, p, _ = inputs((B, H, T, D), torch.float32, seed=3)
    x = x.float().transpose(1, 2)
    b, s = p["b"].float(), p["s"].float()
    y = native_paths.native_key_path(x, b, s)
    x2 = x.clone()
    x2[:, :, t0:] += torch.randn_like(x2[:, :, t0:])
    y2 = native_paths.native_key_path(x2, b, s)
    assert torch.equal(y[:, :, :t0], y2[:, :, :t0])
    assert not torch.equal(y[:, :, t0:], y2[:, :, t0:])
    xg = x.detach().requires_grad_()
    native_paths.native_key_path(xg, b, s)[:, :, :t0].sum().backward()
    assert (xg.grad[:, :, t0:] == 0).all() and (xg.grad[:, :, :t0] != 0).any()


def test_results_do_not_depend_on_the_thread_count():
    """Rows long enough (T·D ≥ 32,768) that two threads split the B·H = 9 rows, one batch element's heads across
    both (blocks starting at h > 0): the same bits as one thread, outputs and gradients — ∂b, ∂s, ∂γ are summed
    per (b, h) row in float64, then over b — and the float64 reference to round-off."""
    x, p, w = inputs((3, 3, 1100, 32), torch.float32, seed=4)
    threads = torch.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append((run(native_paths.native_key_path, x, "projection", torch.float32, w, p["b"], p["s"]),
                        run(native_paths.native_value_path, x, "projection", torch.float32, w, p["s"], p["gamma"])))
    finally:
        torch.set_num_threads(threads)
    for (y1, g1), (y2, g2) in zip(*out):
        assert torch.equal(y1, y2) and all(torch.equal(a, b) for a, b in zip(g1, g2))
    compare(out[1][0], run(key_reference, x, "projection", torch.float64, w, p["b"], p["s"]), torch.float32, "key")
    compare(out[1][1], run(scaled_l2_normalize_reference, x, "projection", torch.float64, w, p["s"], p["gamma"]),
            torch.float32, "value")


def test_dispatch_takes_the_native_kernels_on_cpu_float32_float64_only(monkeypatch):
    x = torch.randn(2, 4, 8, 3)
    assert native_paths.native_ok(x) and native_paths.native_ok(x.double())
    assert not native_paths.native_ok(x.bfloat16()) and not native_paths.native_ok(x[0])
    calls = []
    monkeypatch.setattr(key_path, "native_key_path", lambda *a: calls.append("key") or native_paths.native_key_path(*a))
    monkeypatch.setattr(normalize, "native_value_path",
                        lambda *a: calls.append("value") or native_paths.native_value_path(*a))
    s, b = torch.rand(4) + 0.5, torch.rand(4)
    key_path.leaky_normalize(x, b, s, 16)
    normalize.scaled_l2_normalize(x, s, b)
    normalize.scaled_l2_normalize(x.bfloat16(), s, b)  # bfloat16: the PyTorch Function
    assert calls == ["key", "value"]


def test_disabled_by_the_environment_the_pytorch_paths_give_the_same_results(monkeypatch):
    x, p, w = inputs((3, 4, 40, 16), torch.float32, seed=5)
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv(cpu_kernels.ENV, flag)
        assert native_paths.native_ok(x.float()) == (flag == "1")
        results[flag] = (run(lambda x, b, s: key_path.leaky_normalize(x, b, s, 16), x, "projection", torch.float32,
                             w, p["b"], p["s"]),
                         run(normalize.scaled_l2_normalize, x, "projection", torch.float32, w, p["s"], p["gamma"]))
    assert cpu_kernels.unavailable_reason() == f"{cpu_kernels.ENV}=0"
    for on, off in zip(results["1"], results["0"]):
        compare(on, off, torch.float32, "native vs PyTorch path")


def test_fake_tensor_mode_traces_both_paths():
    """Memory estimators and non-strict export run the model on FakeTensors: the ops have fake implementations."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    x, p, _ = inputs((2, 3, 17, 8), torch.float32, seed=6)
    x = x.float().transpose(1, 2)
    b, s, g = (p[k].float() for k in ("b", "s", "gamma"))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fx = mode.from_tensor(x).requires_grad_()
        for y in (key_path.leaky_normalize(fx, b, s, 16), normalize.scaled_l2_normalize(fx, s, g)):
            assert isinstance(y, FakeTensor) and y.shape == x.shape
            (gx,) = torch.autograd.grad(y.sum(), fx)
            assert gx.shape == x.shape
