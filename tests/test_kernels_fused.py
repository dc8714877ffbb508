"""The fused training kernels (softmax + cross-entropy, layer norm, GELU, Adam/AdamW) against
their NumPy references, float32 and float64, ragged sizes; and each NumPy reference against
tinyllm's own ops or optimizers, so that both sides are held to an independent computation."""

import numpy as np
import pytest

import tinyllm
from conftest import leaf, rng_for
from tinyllm import functional as F
from tinyllm.kernels import adam, gelu, layer_norm, softmax_cross_entropy
from tinyllm.kernels.backend import use_backend

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)


# ----- softmax + cross-entropy --------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,V", [(1, 1), (7, 65), (129, 7), (3, 129)])
def test_softmax_cross_entropy_numba_matches_the_reference(N, V, dtype):
    rng = rng_for(N * V)
    logits = (rng.standard_normal((N, V)) * 4).astype(dtype)
    targets = rng.integers(0, V, size=N)
    targets[::3] = -100                                     # some rows ignored
    loss_ref, grad_ref = softmax_cross_entropy.softmax_cross_entropy_reference(logits, targets)
    loss, grad = softmax_cross_entropy.softmax_cross_entropy_numba(logits, targets)
    assert grad.dtype == dtype and np.asarray(loss).dtype == dtype
    if np.isnan(loss_ref):
        assert np.isnan(loss)
    else:
        np.testing.assert_allclose(loss, loss_ref, **tol(dtype))
    np.testing.assert_allclose(grad, grad_ref, **tol(dtype))


def test_softmax_cross_entropy_reference_equals_tinyllm_cross_entropy():
    rng = rng_for(1)
    logits = leaf(rng.standard_normal((6, 5)) * 3)
    targets = np.array([0, 4, -100, 2, 2, 1])
    loss = F.cross_entropy(logits, tinyllm.tensor(targets))
    loss.backward()
    loss_ref, grad_ref = softmax_cross_entropy.softmax_cross_entropy_reference(logits.data, targets)
    assert loss_ref == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(grad_ref, logits.grad, rtol=1e-10, atol=1e-14)


def test_softmax_cross_entropy_with_every_row_ignored_is_nan_with_zero_gradient():
    logits = np.ones((3, 4))
    for name in ("numpy", "numba"):
        with use_backend(name):
            loss, grad = softmax_cross_entropy.softmax_cross_entropy(logits, np.full(3, -100))
        assert np.isnan(loss) and np.all(grad == 0)


# ----- layer norm ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,C", [(1, 1), (7, 65), (129, 7), (65, 33)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_numba_matches_the_reference(N, C, affine, dtype):
    rng = rng_for(N + C)
    x = (rng.standard_normal((N, C)) * 2 + 1).astype(dtype)
    weight = rng.standard_normal(C).astype(dtype) if affine else None
    bias = rng.standard_normal(C).astype(dtype) if affine else None
    y_ref, mean_ref, rstd_ref = layer_norm.layer_norm_forward_reference(x, weight, bias)
    y, mean, rstd = layer_norm.layer_norm_forward_numba(x, weight, bias)
    for got, ref in ((y, y_ref), (mean, mean_ref), (rstd, rstd_ref)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol(dtype))
    grad_y = rng.standard_normal((N, C)).astype(dtype)
    for got, ref in zip(layer_norm.layer_norm_backward_numba(grad_y, x, mean, rstd, weight),
                        layer_norm.layer_norm_backward_reference(grad_y, x, mean, rstd, weight)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol(dtype))


def test_layer_norm_references_equal_tinyllm_layer_norm():
    rng = rng_for(2)
    x, w, b = leaf(rng.standard_normal((5, 6))), leaf(rng.standard_normal(6)), \
        leaf(rng.standard_normal(6))
    y = F.layer_norm(x, 6, w, b)
    grad_y = rng.standard_normal((5, 6))
    (y * tinyllm.tensor(grad_y, dtype=np.float64)).sum().backward()
    y_ref, mean, rstd = layer_norm.layer_norm_forward_reference(x.data, w.data, b.data)
    np.testing.assert_allclose(y_ref, y.data, rtol=1e-12, atol=1e-12)
    for ref, t in zip(layer_norm.layer_norm_backward_reference(grad_y, x.data, mean, rstd, w.data),
                      (x, w, b)):
        np.testing.assert_allclose(ref, t.grad, rtol=1e-10, atol=1e-12)


# ----- GELU ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (7, 65), (3, 129)])
def test_gelu_numba_matches_the_reference(shape, approximate, dtype):
    rng = rng_for(len(shape))
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    grad_y = rng.standard_normal(shape).astype(dtype)
    # For x << 0, 1 + tanh(u) cancels: the float32 reference is off by ~eps * |x| there, while
    # the kernel computes in float64 before rounding, hence the absolute tolerance.
    tolerance = tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gelu.gelu_forward_numba(x, approximate),
                               gelu.gelu_forward_reference(x, approximate), **tolerance)
    np.testing.assert_allclose(gelu.gelu_backward_numba(grad_y, x, approximate),
                               gelu.gelu_backward_reference(grad_y, x, approximate),
                               **tolerance)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_references_equal_tinyllm_gelu(approximate):
    rng = rng_for(3)
    x = leaf(rng.standard_normal((4, 5)) * 2)
    grad_y = rng.standard_normal((4, 5))
    y = x.gelu(approximate=approximate)
    (y * tinyllm.tensor(grad_y, dtype=np.float64)).sum().backward()
    np.testing.assert_allclose(gelu.gelu_forward_reference(x.data, approximate), y.data,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gelu.gelu_backward_reference(grad_y, x.data, approximate),
                               x.grad, rtol=1e-10, atol=1e-14)


# ----- Adam / AdamW --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,weight_decay", [(False, 0.0), (False, 0.1), (True, 0.1)])
def test_adam_update_numba_matches_the_reference_over_three_steps(decoupled, weight_decay, dtype):
    rng = rng_for(4)
    start = [rng.standard_normal((7, 65)).astype(dtype) for _ in range(2)]
    ref = [start[0].copy(), np.zeros_like(start[0]), np.zeros_like(start[0])]
    got = [start[0].copy(), np.zeros_like(start[0]), np.zeros_like(start[0])]
    for step in (1, 2, 3):
        grad = (start[1] * step).astype(dtype)
        adam.adam_update_reference(ref[0], grad, ref[1], ref[2], step, 1e-2, 0.9, 0.999, 1e-8,
                                    weight_decay, decoupled)
        adam.adam_update_numba(got[0], grad, got[1], got[2], step, 1e-2, 0.9, 0.999, 1e-8,
                                weight_decay, decoupled)
    for g, r in zip(got, ref):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, r, **tol(dtype))


@pytest.mark.parametrize("optimizer,decoupled", [("Adam", False), ("AdamW", True)])
def test_adam_update_reference_equals_tinyllm_optimizer(optimizer, decoupled):
    rng = rng_for(5)
    p = tinyllm.nn.Parameter(tinyllm.tensor(rng.standard_normal((3, 4)), dtype=np.float64))
    opt = getattr(tinyllm.optim, optimizer)([p], lr=0.01, weight_decay=0.1)
    mine = [p.data.copy(), np.zeros((3, 4)), np.zeros((3, 4))]
    for step in (1, 2):
        grad = rng.standard_normal((3, 4))
        p.grad = grad.copy()
        opt.step()
        adam.adam_update_reference(mine[0], grad, mine[1], mine[2], step, 0.01, 0.9, 0.999,
                                    1e-8, 0.1, decoupled)
    np.testing.assert_allclose(mine[0], p.data, rtol=1e-12, atol=1e-14)


def test_adam_update_numba_rejects_non_contiguous_parameters():
    p = np.zeros((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="adam_update: .* must be C-contiguous"):
        adam.adam_update_numba(p, np.ones_like(p), np.zeros_like(p), np.zeros_like(p), 1,
                                0.1, 0.9, 0.999, 1e-8)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_fused_dispatch_runs_on_each_backend(name):
    x = rng_for(6).standard_normal((4, 9))
    with use_backend(name):
        np.testing.assert_allclose(gelu.gelu_forward(x), gelu.gelu_forward_reference(x),
                                   rtol=1e-12)
        y, mean, rstd = layer_norm.layer_norm_forward(x, None, None)
        np.testing.assert_allclose(y, layer_norm.layer_norm_forward_reference(x, None, None)[0],
                                   rtol=1e-10, atol=1e-12)


# ----- threads ---------------------------------------------------------------------------------
def _fused_results(rng_seed, dtype, version="numba"):
    """Every fused kernel's outputs on arrays large enough to be split into many tasks (GELU and
    Adam: 3 tasks of ELEMENTS_PER_TASK elements and a ragged fourth; layer norm backward: 5
    chunks of rows), by the kernels (``version`` "numba") or their NumPy references
    ("reference"): each module's ``<name>_numba`` or ``<name>_reference``."""
    def kernel(module, name):
        return getattr(module, "%s_%s" % (name, version))

    rng = rng_for(rng_seed)
    x = rng.standard_normal((3 * gelu.ELEMENTS_PER_TASK + 5,)).astype(dtype)
    logits = rng.standard_normal((150, 33)).astype(dtype)
    targets = rng.integers(0, 33, 150)
    targets[::7] = -100
    rows = rng.standard_normal((4 * layer_norm.ROWS_PER_CHUNK + 3, 24)).astype(dtype)
    weight, bias = rng.standard_normal(24).astype(dtype), rng.standard_normal(24).astype(dtype)
    y, mean, rstd = kernel(layer_norm, "layer_norm_forward")(rows, weight, bias)
    p, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
    for step in (1, 2):
        kernel(adam, "adam_update")(p, x * step, m, v, step, 1e-2, 0.9, 0.999, 1e-8, 0.1, True)
    gelu_forward, gelu_backward = kernel(gelu, "gelu_forward"), kernel(gelu, "gelu_backward")
    return ((gelu_forward(x), gelu_backward(x[::-1], x), gelu_forward(x, "tanh"))
            + kernel(softmax_cross_entropy, "softmax_cross_entropy")(logits, targets)
            + (y, mean, rstd)
            + kernel(layer_norm, "layer_norm_backward")(y, rows, mean, rstd, weight)
            + (p, m, v))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_kernels_give_the_same_bits_on_any_number_of_threads(monkeypatch, dtype):
    from tinyllm.kernels import cpu_runtime
    results = []
    for threads in (1, 2, 5):
        monkeypatch.setattr(cpu_runtime, "kernel_threads", lambda: threads)
        results.append(_fused_results(11, dtype))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    for got, expected in zip(results[1], _fused_results(11, dtype, "reference")):
        np.testing.assert_allclose(got, expected, **tol(dtype))
