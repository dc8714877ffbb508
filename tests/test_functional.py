"""tinyllm.functional: activations, linear, embedding, layer_norm, dropout and scaled
dot-product attention. Forward values against independent NumPy code, float64 gradient checks,
and the errors for bad input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
import tinyllm.functional as F
from conftest import FAST, check_grad, leaf, nonzero, rng_for, seeds, shape_and_single_axis


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ----- activations ----------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                   * (x + 0.044715 * x ** 3)))),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_numpy_and_gradcheck(name):
    fn, reference = ACTIVATIONS[name]
    x = nonzero(rng_for(0), (3, 4))         # away from relu's kink at 0
    np.testing.assert_allclose(fn(leaf(x)).data, reference(x), rtol=1e-12, atol=1e-14)
    check_grad(fn, leaf(x))


def test_activation_keeps_float32():
    x = tinyllm.randn(2, 3)
    for fn, _ in ACTIVATIONS.values():
        assert fn(x).dtype == np.float32


@FAST
@given(shape_and_single_axis(), seeds)
def test_softmax_and_log_softmax_along_any_axis(shape_axis, seed):
    shape, axis = shape_axis
    x = rng_for(seed).normal(size=shape)
    np.testing.assert_allclose(F.softmax(leaf(x), dim=axis).data, np_softmax(x, axis),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.log_softmax(leaf(x), axis=axis).data,
                               np.log(np_softmax(x, axis)), rtol=1e-10, atol=1e-12)
    check_grad(lambda t: F.softmax(t, dim=axis), leaf(x))
    check_grad(lambda t: F.log_softmax(t, dim=axis), leaf(x))


def test_softmax_defaults_to_the_last_axis():
    x = rng_for(1).normal(size=(2, 5))
    np.testing.assert_allclose(F.softmax(leaf(x)).data, np_softmax(x, -1), rtol=1e-12)


def test_softmax_rejects_dim_and_axis_together():
    with pytest.raises(TypeError, match="dim= or axis="):
        F.softmax(leaf(np.zeros((2, 2))), dim=0, axis=1)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(leaf(np.zeros(2)), approximate="erf")


# ----- linear ---------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
def test_linear_matches_numpy(x_shape):
    rng = rng_for(2)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=(5, 4)), rng.normal(size=5)
    np.testing.assert_allclose(F.linear(leaf(x), leaf(w), leaf(b)).data, x @ w.T + b,
                               rtol=1e-12)
    np.testing.assert_allclose(F.linear(leaf(x), leaf(w)).data, x @ w.T, rtol=1e-12)


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
def test_linear_gradcheck_input_weight_bias(x_shape):
    rng = rng_for(3)
    check_grad(F.linear, leaf(rng.normal(size=x_shape)), leaf(rng.normal(size=(5, 4))),
               leaf(rng.normal(size=5)))


def test_linear_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(4, 3\)"):
        F.linear(leaf(np.zeros((2, 5))), leaf(np.zeros((4, 3))))


def test_linear_rejects_a_bias_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"bias of shape \(3,\)"):
        F.linear(leaf(np.zeros((2, 3))), leaf(np.zeros((4, 3))), leaf(np.zeros(3)))


# ----- embedding ------------------------------------------------------------------------------
@pytest.mark.parametrize("ids_shape", [(), (5,), (2, 3)])
def test_embedding_looks_up_rows_for_ids_of_any_shape(ids_shape):
    rng = rng_for(4)
    weight = rng.normal(size=(7, 3))
    ids = rng.integers(0, 7, size=ids_shape)
    out = F.embedding(tinyllm.tensor(ids), leaf(weight))
    assert out.shape == ids_shape + (3,)
    np.testing.assert_array_equal(out.data, weight[ids])


def test_embedding_gradient_adds_up_repeated_ids():
    weight = leaf(rng_for(5).normal(size=(4, 2)))
    ids = np.array([[1, 3], [1, 1]])
    upstream = rng_for(6).normal(size=(2, 2, 2))
    F.embedding(ids, weight).backward(upstream)
    expected = np.zeros((4, 2))
    for (i, j), token in np.ndenumerate(ids):
        expected[token] += upstream[i, j]
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-12)


def test_embedding_gradcheck():
    ids = np.array([[0, 2, 2], [4, 1, 0]])
    check_grad(lambda w: F.embedding(ids, w), leaf(rng_for(7).normal(size=(5, 3))))


@pytest.mark.parametrize("padding_idx", [2, -3])
def test_embedding_padding_row_gets_no_gradient(padding_idx):
    weight = leaf(rng_for(8).normal(size=(5, 3)))
    ids = np.array([2, 0, 2, 4])
    F.embedding(ids, weight, padding_idx=padding_idx).sum().backward()
    np.testing.assert_array_equal(weight.grad[2], 0.0)
    np.testing.assert_array_equal(weight.grad[0], 1.0)
    np.testing.assert_array_equal(weight.grad[4], 1.0)


@pytest.mark.parametrize("bad_id", [5, -1])
def test_embedding_out_of_range_id_names_it_and_the_vocabulary_size(bad_id):
    with pytest.raises(IndexError, match=r"id %d .* size 5" % bad_id):
        F.embedding(np.array([0, bad_id]), leaf(np.zeros((5, 2))))


def test_embedding_rejects_float_ids():
    with pytest.raises(TypeError, match="integers"):
        F.embedding(tinyllm.tensor([0.0, 1.0]), leaf(np.zeros((5, 2))))


# ----- layer_norm -----------------------------------------------------------------------------
def np_layer_norm(x, n_axes, gamma=None, beta=None, eps=1e-5):
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


@pytest.mark.parametrize("x_shape, normalized_shape", [((3, 5), 5), ((2, 3, 4), (4,)),
                                                        ((2, 3, 4), (3, 4)), ((6,), (6,))])
def test_layer_norm_matches_numpy_and_gradcheck(x_shape, normalized_shape):
    rng = rng_for(9)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    x = rng.normal(size=x_shape) * 3 + 1
    gamma, beta = rng.normal(size=shape), rng.normal(size=shape)
    out = F.layer_norm(leaf(x), normalized_shape, leaf(gamma), leaf(beta))
    np.testing.assert_allclose(out.data, np_layer_norm(x, len(shape), gamma, beta),
                               rtol=1e-10, atol=1e-12)
    check_grad(lambda a, g, b: F.layer_norm(a, normalized_shape, g, b),
               leaf(x), leaf(gamma), leaf(beta))


def test_layer_norm_without_affine_parameters():
    x = rng_for(10).normal(size=(4, 6))
    out = F.layer_norm(leaf(x), 6)
    np.testing.assert_allclose(out.data, np_layer_norm(x, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.data.mean(axis=-1), 0.0, atol=1e-12)
    check_grad(lambda a: F.layer_norm(a, 6), leaf(x))
    check_grad(lambda a, g: F.layer_norm(a, 6, weight=g), leaf(x), leaf(np.ones(6) * 1.5))


def test_layer_norm_uses_the_biased_variance_and_eps():
    x = np.array([[1.0, 3.0]])                # mean 2, biased variance 1
    out = F.layer_norm(leaf(x), 2, eps=0.5)
    np.testing.assert_allclose(out.data, [[-1 / math.sqrt(1.5), 1 / math.sqrt(1.5)]],
                               rtol=1e-12)


def test_layer_norm_keeps_float32():
    assert F.layer_norm(tinyllm.randn(2, 3), 3).dtype == np.float32


def test_layer_norm_rejects_a_shape_that_does_not_end_the_input():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        F.layer_norm(leaf(np.zeros((2, 3))), 4)


def test_layer_norm_rejects_a_weight_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"weight of shape \(2,\)"):
        F.layer_norm(leaf(np.zeros((2, 3))), 3, weight=leaf(np.ones(2)))


# ----- dropout --------------------------------------------------------------------------------
def test_dropout_is_the_identity_when_not_training_or_p_is_zero():
    x = tinyllm.randn(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_with_p_one_gives_zeros():
    x = leaf(np.ones((3, 4)))
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.data, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.dropout(tinyllm.randn(2), p)


def test_dropout_keeps_the_mean_and_zeroes_a_fraction_p():
    p = 0.3
    y = F.dropout(tinyllm.ones(200, 500, dtype=np.float64), p,
                  generator=np.random.default_rng(0))
    zeroed = np.mean(y.data == 0)
    assert abs(zeroed - p) < 0.01
    np.testing.assert_allclose(y.data[y.data != 0], 1 / (1 - p), rtol=1e-12)
    assert abs(y.data.mean() - 1.0) < 0.02


def test_dropout_gradient_is_the_mask_over_keep_probability():
    x = leaf(rng_for(11).normal(size=(4, 5)))
    y = F.dropout(x, 0.4, generator=np.random.default_rng(1))
    y.sum().backward()
    kept = y.data != 0
    np.testing.assert_allclose(x.grad, kept / 0.6, rtol=1e-12)


def test_dropout_draws_from_the_global_generator():
    x = tinyllm.ones(50)
    tinyllm.manual_seed(123)
    first = F.dropout(x, 0.5).data
    tinyllm.manual_seed(123)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, first)


# ----- scaled dot-product attention -----------------------------------------------------------
def np_attention(q, k, v, mask=None, scale=None):
    """softmax(Q K^T * scale + M) V, with a boolean mask as -inf where False."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None and mask.dtype == bool:
        scores = np.where(mask, scores, -np.inf)
    elif mask is not None:
        scores = scores + mask
    return np_softmax(scores) @ v


def qkv(seed, batch=(2,), L=3, S=4, E=5, Ev=2):
    rng = rng_for(seed)
    return (rng.normal(size=batch + (L, E)), rng.normal(size=batch + (S, E)),
            rng.normal(size=batch + (S, Ev)))


def test_sdpa_matches_numpy_without_mask():
    q, k, v = qkv(12)
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v))
    assert out.shape == (2, 3, 2)
    np.testing.assert_allclose(out.data, np_attention(q, k, v), rtol=1e-12)


def test_sdpa_uses_a_given_scale():
    q, k, v = qkv(13)
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), scale=0.7)
    np.testing.assert_allclose(out.data, np_attention(q, k, v, scale=0.7), rtol=1e-12)


def test_sdpa_bool_mask_true_means_may_attend():
    q, k, v = qkv(14)
    mask = rng_for(15).random((3, 4)) < 0.6
    mask[:, 0] = True                       # every query keeps at least one key
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), attn_mask=mask)
    np.testing.assert_allclose(out.data, np_attention(q, k, v, mask), rtol=1e-12)
    check_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask),
               leaf(q), leaf(k), leaf(v))


def test_sdpa_float_mask_is_added_to_the_scores():
    q, k, v = qkv(16)
    mask = rng_for(17).normal(size=(2, 3, 4))
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), attn_mask=leaf(mask))
    np.testing.assert_allclose(out.data, np_attention(q, k, v, mask), rtol=1e-12)
    check_grad(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m),
               leaf(q), leaf(k), leaf(v), leaf(mask))


@pytest.mark.parametrize("L, S", [(4, 4), (3, 5)])
def test_sdpa_causal_uses_the_lower_triangular_mask(L, S):
    q, k, v = qkv(18, batch=(2, 2), L=L, S=S)
    mask = np.tril(np.ones((L, S), dtype=bool))
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), is_causal=True)
    np.testing.assert_allclose(out.data, np_attention(q, k, v, mask), rtol=1e-12)
    check_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
               leaf(q), leaf(k), leaf(v))


def test_sdpa_causal_output_ignores_later_positions():
    q, k, v = qkv(19, L=4, S=4)
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), is_causal=True).data
    k2, v2 = k.copy(), v.copy()
    k2[:, 2:], v2[:, 2:] = 9.0, -9.0
    out2 = F.scaled_dot_product_attention(leaf(q), leaf(k2), leaf(v2), is_causal=True).data
    np.testing.assert_array_equal(out[:, :2], out2[:, :2])
    assert not np.allclose(out[:, 2:], out2[:, 2:])


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_row_gives_zeros_not_nan(kind):
    q, k, v = qkv(20)
    allowed = np.ones((3, 4), dtype=bool)
    allowed[1] = False
    mask = allowed if kind == "bool" else np.where(allowed, 0.0, -np.inf)
    q, k, v = leaf(q), leaf(k), leaf(v)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    np.testing.assert_array_equal(out.data[:, 1], 0.0)
    np.testing.assert_allclose(out.data[:, [0, 2]], np_attention(q.data, k.data, v.data)[:, [0, 2]],
                               rtol=1e-12)
    out.sum().backward()
    for t in (q, k, v):
        assert np.all(np.isfinite(t.grad))
    np.testing.assert_array_equal(q.grad[:, 1], 0.0)


def test_sdpa_gradcheck_with_a_fully_masked_row():
    q, k, v = qkv(21)
    mask = np.ones((3, 4), dtype=bool)
    mask[2] = False
    check_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask),
               leaf(q), leaf(k), leaf(v))


def test_sdpa_dropout_drops_attention_weights():
    q, k, v = qkv(22)
    p = 0.5
    out = F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), dropout_p=p,
                                         generator=np.random.default_rng(3))
    weights = np_softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(5))
    keep = np.random.default_rng(3).random(weights.shape) >= p
    np.testing.assert_allclose(out.data, (weights * keep / (1 - p)) @ v, rtol=1e-12)


def test_sdpa_rejects_a_mask_together_with_is_causal():
    q, k, v = (leaf(a) for a in qkv(23))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), bool), is_causal=True)


def test_sdpa_rejects_an_integer_mask():
    q, k, v = (leaf(a) for a in qkv(24))
    with pytest.raises(TypeError, match="boolean .* or float"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), dtype=np.int64))


def test_sdpa_rejects_a_mask_that_does_not_broadcast():
    q, k, v = (leaf(a) for a in qkv(25))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 3\).*\(2, 3, 4\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 3), dtype=bool))


def test_sdpa_rejects_query_and_key_of_different_widths():
    q, k, v = qkv(26)
    with pytest.raises(ValueError, match=r"query of shape \(2, 3, 5\) and key of shape "
                                         r"\(2, 4, 6\)"):
        F.scaled_dot_product_attention(leaf(q), leaf(np.zeros((2, 4, 6))), leaf(v))


def test_sdpa_rejects_key_and_value_of_different_lengths():
    q, k, v = qkv(27)
    with pytest.raises(ValueError, match=r"key of shape \(2, 4, 5\) and value of shape "
                                         r"\(2, 3, 2\)"):
        F.scaled_dot_product_attention(leaf(q), leaf(k), leaf(np.zeros((2, 3, 2))))


@given(st.integers(1, 5), st.integers(1, 5))
@FAST
def test_causal_mask_is_lower_triangular(L, S):
    mask = F.causal_mask(L, S).data
    assert mask.dtype == np.bool_ and mask.shape == (L, S)
    for i in range(L):
        for j in range(S):
            assert mask[i, j] == (j <= i)
    assert F.causal_mask(L).shape == (L, L)


def test_attention_weights_are_the_softmax_of_the_masked_scores():
    q, k, _ = qkv(28)
    mask = np.ones((3, 4), dtype=bool)
    mask[0, 1:] = False
    mask[2] = False
    weights = F.attention_weights(leaf(q), leaf(k), attn_mask=mask).data
    scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / math.sqrt(5), -np.inf)
    np.testing.assert_allclose(weights[:, :2], np_softmax(scores[:, :2]), rtol=1e-12)
    np.testing.assert_allclose(weights[:, 0], [[1, 0, 0, 0]] * 2, atol=0)
    np.testing.assert_array_equal(weights[:, 2], 0.0)
