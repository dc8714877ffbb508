"""Fused attention: the Numba kernels against the NumPy references (ragged lengths around the
block size, causal and padding masks, float32 and float64, NaN-poisoned outputs), rows that
see no key, and the autograd op ``fused_attention``: values and float64 gradients equal to the
composite of ops, on each CPU backend, and its errors."""

import numpy as np
import pytest

import tinyllm
from conftest import check_grad, leaf, rng_for
from tinyllm.kernels import attention as kernels
from tinyllm.kernels.backend import use_backend
from tinyllm.ops.attention import attention_composite, fused_attention


def tolerance(dtype, D):
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-10)
    return dict(rtol=1e-4, atol=1e-5 * np.sqrt(D))


def make_inputs(seed, B, H, Tq, Tk, D, Dv, dtype, padding=False):
    rng = rng_for(seed)
    q = rng.standard_normal((B, H, Tq, D)).astype(dtype)
    k = rng.standard_normal((B, H, Tk, D)).astype(dtype)
    v = rng.standard_normal((B, H, Tk, Dv)).astype(dtype)
    mask = rng.random((B, Tk)) < 0.3 if padding else None
    return q, k, v, mask


def run_forward(q, k, v, scale, causal, mask):
    """The Numba forward into outputs poisoned with NaN."""
    B, H, Tq, _ = q.shape
    out = np.full((B, H, Tq, v.shape[-1]), np.nan, dtype=q.dtype)
    lse = np.full((B, H, Tq), np.nan, dtype=q.dtype)
    kernels.attention_forward_numba(q, k, v, q.dtype.type(scale), causal,
                                    kernels._padding_array(mask), out, lse)
    return out, lse


def run_backward(grad_out, q, k, v, out, lse, scale, causal, mask):
    """The Numba backward into gradients poisoned with NaN."""
    grads = [np.full(x.shape, np.nan, dtype=q.dtype) for x in (q, k, v)]
    kernels.attention_backward_numba(grad_out, q, k, v, out, lse, q.dtype.type(scale), causal,
                                     kernels._padding_array(mask), *grads)
    return grads


CASES = [  # B, H, Tq, Tk, D, Dv
    (1, 1, 1, 1, 4, 4),
    (2, 3, 7, 7, 5, 3),
    (1, 2, 65, 65, 8, 8),
    (1, 1, 129, 65, 4, 6),
    (2, 1, 7, 129, 8, 8),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal,padding", [(False, False), (True, False), (False, True),
                                            (True, True)])
@pytest.mark.parametrize("shape", CASES)
def test_fused_forward_and_backward_match_the_references(shape, causal, padding, dtype):
    B, H, Tq, Tk, D, Dv = shape
    q, k, v, mask = make_inputs(sum(shape), B, H, Tq, Tk, D, Dv, dtype, padding)
    scale = 1 / np.sqrt(D)
    out, lse = run_forward(q, k, v, scale, causal, mask)
    ref_out, ref_lse = kernels.attention_forward_reference(q, k, v, scale, causal, mask)
    assert not np.isnan(out).any() and not np.isnan(lse).any()
    np.testing.assert_allclose(out, ref_out, **tolerance(dtype, D))
    np.testing.assert_allclose(lse, ref_lse, **tolerance(dtype, D))

    grad_out = rng_for(7).standard_normal(out.shape).astype(dtype)
    grads = run_backward(grad_out, q, k, v, out, lse, scale, causal, mask)
    ref_grads = kernels.attention_backward_reference(grad_out, q, k, v, ref_out, ref_lse, scale,
                                                     causal, mask)
    for name, g, ref in zip("qkv", grads, ref_grads):
        assert not np.isnan(g).any(), "d%s has unwritten elements" % name
        np.testing.assert_allclose(g, ref, err_msg="d" + name,
                                   **tolerance(dtype, max(Tq, Tk)))


@pytest.mark.parametrize("causal", [False, True])
def test_rows_that_see_no_key_give_zero_output_and_zero_gradient(causal):
    q, k, v, _ = make_inputs(3, 2, 2, 5, 6, 4, 4, np.float64)
    mask = np.zeros((2, 6), dtype=bool)
    mask[1] = True                                   # batch entry 1: every key padded
    mask[0, 0] = True                                # causal: query 0 of entry 0 sees nothing
    out, lse = run_forward(q, k, v, 0.5, causal, mask)
    assert np.all(out[1] == 0) and np.all(lse[1] == -np.inf)
    if causal:
        assert np.all(out[0, :, 0] == 0)
    grads = run_backward(np.ones_like(out), q, k, v, out, lse, 0.5, causal, mask)
    assert all(np.isfinite(g).all() for g in grads)
    assert np.all(grads[0][1] == 0) and np.all(grads[1][1] == 0) and np.all(grads[2][1] == 0)


def test_forward_dispatch_matches_the_reference_on_each_backend():
    q, k, v, mask = make_inputs(5, 2, 2, 9, 9, 4, 4, np.float64, padding=True)
    ref = kernels.attention_forward_reference(q, k, v, 0.5, True, mask)
    for name in ("numpy", "numba"):
        with use_backend(name):
            out, lse = kernels.attention_forward(q, k, v, 0.5, True, mask)
        np.testing.assert_allclose(out, ref[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lse, ref[1], rtol=1e-10, atol=1e-12)


# ----- the autograd op ------------------------------------------------------------------------
def leaves(seed, B=1, H=2, Tq=5, Tk=6, D=3, Dv=2):
    q, k, v, _ = make_inputs(seed, B, H, Tq, Tk, D, Dv, np.float64)
    return leaf(q), leaf(k), leaf(v)


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("causal,padding", [(False, False), (True, False), (True, True)])
def test_fused_attention_gradients_pass_gradcheck(name, causal, padding):
    q, k, v = leaves(11, B=2, H=1, Tq=4, Tk=5, D=2, Dv=2)
    mask = np.array([[False, True, False, False, True],
                     [True, False, False, True, False]]) if padding else None
    with use_backend(name):
        check_grad(lambda a, b, c: fused_attention(a, b, c, is_causal=causal,
                                                   key_padding_mask=mask), q, k, v)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_fused_attention_equals_the_composite_of_ops_values_and_gradients(name):
    q, k, v = leaves(12, B=2, Tq=6)
    mask = np.array([[True] * 6, [False, False, True, False, False, True]])
    composite = attention_composite(q, k, v, is_causal=True, key_padding_mask=mask)
    composite.sum().backward()
    expected = [t.grad.copy() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    with use_backend(name):
        fused = fused_attention(q, k, v, is_causal=True, key_padding_mask=mask)
        fused.sum().backward()
    np.testing.assert_allclose(fused.data, composite.data, rtol=1e-12, atol=1e-12)
    for t, g in zip((q, k, v), expected):
        np.testing.assert_allclose(t.grad, g, rtol=1e-10, atol=1e-12)


def test_fused_attention_accepts_non_contiguous_views_and_a_custom_scale():
    rng = rng_for(13)
    qkv = leaf(rng.standard_normal((2, 5, 3, 2, 4))).permute(2, 0, 3, 1, 4)   # (3, B, H, T, D)
    with use_backend("numba"):
        fused = fused_attention(qkv[0], qkv[1], qkv[2], scale=0.3)
    composite = attention_composite(qkv[0], qkv[1], qkv[2], scale=0.3)
    np.testing.assert_allclose(fused.data, composite.data, rtol=1e-12, atol=1e-12)


def test_fused_attention_keeps_float32():
    q = tinyllm.tensor(np.ones((1, 1, 3, 2)), dtype=np.float32)
    assert fused_attention(q, q, q).dtype == np.float32


@pytest.mark.parametrize("args,message", [
    (((1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4)), r"q must have shape \(B, H, T, D\)"),
    (((1, 2, 3, 4), (1, 2, 3, 5), (1, 2, 3, 4)), "same head size D"),
    (((1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 5, 4)), "same number of keys Tk"),
    (((1, 2, 3, 4), (2, 2, 3, 4), (2, 2, 3, 4)), "must share"),
])
def test_fused_attention_rejects_shapes_that_do_not_fit(args, message):
    q, k, v = (tinyllm.tensor(np.zeros(s)) for s in args)
    with pytest.raises(ValueError, match=message):
        fused_attention(q, k, v)


def test_fused_attention_rejects_a_padding_mask_of_the_wrong_shape():
    q = tinyllm.tensor(np.zeros((2, 1, 3, 4)))
    with pytest.raises(ValueError, match=r"key_padding_mask must be a boolean array of shape "
                                         r"\(B, Tk\) = \(2, 3\)"):
        fused_attention(q, q, q, key_padding_mask=np.zeros((3, 2), dtype=bool))
