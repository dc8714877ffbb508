"""Elementwise ops: exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs, gelu, maximum/minimum,
clip, where, masked_fill, cast and clone. Forward values against NumPy (and math.erf), float64
gradient checks away from kinks, hand-derived gradients at ties and boundaries."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from conftest import (FAST, apart, away_from, broadcastable_pairs, check_grad, leaf, nonzero,
                      rng_for, seeds, shapes, uniform)


def _gelu_exact(x):
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel()]
                    ).reshape(x.shape)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# name: (tinyllm function, NumPy reference, sampler of valid inputs away from kinks)
UNARY = {
    "exp": (tinyllm.exp, np.exp, uniform),
    "log": (tinyllm.log, np.log, lambda rng, s: rng.uniform(0.3, 3.0, size=s)),
    "sqrt": (tinyllm.sqrt, lambda x: x ** 0.5, lambda rng, s: rng.uniform(0.3, 3.0, size=s)),
    "sin": (tinyllm.sin, np.sin, uniform),
    "cos": (tinyllm.cos, np.cos, uniform),
    "tanh": (tinyllm.tanh, lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), uniform),
    "sigmoid": (tinyllm.sigmoid, lambda x: 1 / (1 + np.exp(-x)), uniform),
    "relu": (tinyllm.relu, lambda x: np.where(x > 0, x, 0.0), nonzero),
    "abs": (tinyllm.abs, lambda x: np.where(x < 0, -x, x), nonzero),
    "gelu": (tinyllm.gelu, _gelu_exact, uniform),
    "gelu_tanh": (lambda x: tinyllm.gelu(x, approximate="tanh"), _gelu_tanh, uniform),
}

METHODS = {"exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos",
           "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "abs": "abs", "gelu": "gelu"}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(shape=shapes(), seed=seeds)
def test_unary_forward_matches_numpy(name, shape, seed):
    fn, reference, sample = UNARY[name]
    x = sample(rng_for(seed), shape)
    y = fn(leaf(x, False))
    assert y.shape == x.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.data, reference(x), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(shape=shapes(), seed=seeds)
def test_unary_gradcheck(name, shape, seed):
    fn, _, sample = UNARY[name]
    assert check_grad(fn, leaf(sample(rng_for(seed), shape)))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_tensor_method_equals_function(name):
    x = leaf(rng_for(0).uniform(0.3, 2.0, size=(2, 3)))
    np.testing.assert_array_equal(getattr(x, METHODS[name])().data,
                                  getattr(tinyllm, name)(x).data)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_keeps_float32(name):
    fn, reference, sample = UNARY[name]
    x = sample(rng_for(1), (4,)).astype(np.float32)
    y = fn(tinyllm.tensor(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, reference(x.astype(np.float64)), rtol=2e-6, atol=1e-7)


def test_abs_method_and_operator_agree():
    x = leaf([-1.5, 2.0])
    np.testing.assert_array_equal(abs(x).data, [1.5, 2.0])


def test_relu_and_abs_have_zero_gradient_at_zero():
    x = leaf([0.0, 0.0])
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("value", [-1000.0, 1000.0])
def test_sigmoid_does_not_overflow(value):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = tinyllm.sigmoid(leaf([value]))
    assert y.item() == (0.0 if value < 0 else 1.0)


def test_gelu_exact_at_known_points():
    # GELU(x) = x Phi(x): Phi(0) = 1/2, Phi(1) = 0.8413447460685429 (standard normal table)
    y = tinyllm.gelu(leaf([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(y.data, [0.0, 0.8413447460685429, -0.15865525393145707],
                               rtol=1e-15)


def test_gelu_forms_differ_slightly():
    x = leaf(np.linspace(-3, 3, 13))
    gap = np.abs(tinyllm.gelu(x).data - tinyllm.gelu(x, approximate="tanh").data)
    assert 1e-5 < gap.max() < 1e-3


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        tinyllm.gelu(leaf([1.0]), approximate="fast")


# ----- maximum / minimum --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@FAST
@given(shapes=broadcastable_pairs(), seed=seeds)
def test_maximum_minimum_forward_and_gradcheck(name, shapes, seed):
    a, b = apart(rng_for(seed), *shapes)
    fn = getattr(tinyllm, name)
    pick = (a > b) if name == "maximum" else (a < b)
    np.testing.assert_array_equal(fn(leaf(a), leaf(b)).data, np.where(pick, a, b))
    assert check_grad(fn, leaf(a), leaf(b))


def test_maximum_gives_half_the_gradient_to_each_tied_input():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 0.0, 3.0])
    tinyllm.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(b.grad, [0.5, 0.0, 0.5])


def test_minimum_gives_half_the_gradient_to_each_tied_input():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 0.0, 3.0])
    tinyllm.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.5])


def test_maximum_ties_under_broadcasting_sum_the_shares():
    a = leaf([[1.0], [2.0]])          # (2, 1)
    b = leaf([1.0, 1.0, 3.0])         # (3,)
    tinyllm.maximum(a, b).sum().backward()
    # row 0: ties at columns 0 and 1 (0.5 + 0.5), b wins column 2; row 1: a wins twice
    np.testing.assert_array_equal(a.grad, [[1.0], [2.0]])
    # column 0 and 1: half from the tie in row 0; column 2: b wins both rows
    np.testing.assert_array_equal(b.grad, [0.5, 0.5, 2.0])


def test_maximum_with_a_number_is_a_shifted_relu():
    x = leaf([-1.0, 0.5, 2.0])
    y = tinyllm.maximum(x, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 2.0])
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])


def test_maximum_shape_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"maximum: shapes \(2, 3\) and \(4,\) cannot be "
                                         r"broadcast together"):
        tinyllm.maximum(tinyllm.ones(2, 3), tinyllm.ones(4))


# ----- clip -------------------------------------------------------------------------------
@pytest.mark.parametrize("low, high", [(-0.5, 0.5), (None, 0.3), (-0.3, None)])
@FAST
@given(shape=shapes(), seed=seeds)
def test_clip_forward_and_gradcheck(low, high, shape, seed):
    x = away_from(uniform(rng_for(seed), shape, -1, 1), [p for p in (low, high) if p is not None])
    expected = x.copy()
    if low is not None:
        expected[expected < low] = low
    if high is not None:
        expected[expected > high] = high
    np.testing.assert_array_equal(tinyllm.clip(leaf(x), low, high).data, expected)
    assert check_grad(lambda t: tinyllm.clip(t, low, high), leaf(x))


def test_clip_passes_the_gradient_at_the_boundary():
    # PyTorch's clamp: dy/dx = 1 for low <= x <= high, boundaries included
    x = leaf([-1.0, -0.5, 0.0, 0.5, 1.0])
    x.clip(-0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_clamp_is_clip_and_keeps_float32():
    x = tinyllm.tensor([-2.0, 0.25, 2.0], requires_grad=True)
    y = x.clamp(min=-1.0, max=1.0)
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [-1.0, 0.25, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])


def test_clip_bounds_may_be_tensors():
    x = leaf([[-2.0, 0.5], [1.0, 3.0]])
    y = x.clip(leaf([-1.0, 0.0], False), leaf(2.0, False))
    np.testing.assert_array_equal(y.data, [[-1.0, 0.5], [1.0, 2.0]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0], [1.0, 0.0]])


def test_clip_needs_a_bound():
    with pytest.raises(ValueError, match="clip: give at least one of min and max"):
        tinyllm.clip(leaf([1.0]))


# ----- where and masked_fill ----------------------------------------------------------------
@FAST
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3),
       seed=seeds)
def test_where_forward_and_gradcheck(shapes, seed):
    rng = rng_for(seed)
    shape_c, shape_a, shape_b = shapes.input_shapes
    cond = rng.random(shape_c) < 0.5
    a, b = uniform(rng, shape_a), uniform(rng, shape_b)
    y = tinyllm.where(tinyllm.tensor(cond), leaf(a), leaf(b))
    expected = np.empty(shapes.result_shape)
    c, ab, bb = np.broadcast_arrays(cond, a, b)
    for i in np.ndindex(*shapes.result_shape):
        expected[i] = ab[i] if c[i] else bb[i]
    np.testing.assert_array_equal(y.data, expected)
    assert check_grad(lambda s, t: tinyllm.where(tinyllm.tensor(cond), s, t), leaf(a), leaf(b))


def test_where_routes_the_gradient_by_the_condition():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([10.0, 20.0, 30.0])
    tinyllm.where(tinyllm.tensor([True, False, True]), a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.0, 1.0, 0.0])


def test_where_with_a_number():
    x = leaf([-1.0, 2.0])
    y = tinyllm.where(x > 0, x, 0.0)
    np.testing.assert_array_equal(y.data, [0.0, 2.0])


def test_where_needs_a_boolean_condition():
    with pytest.raises(TypeError, match="where: the mask must be boolean"):
        tinyllm.where(tinyllm.tensor([1, 0]), leaf([1.0, 2.0]), leaf([3.0, 4.0]))


def test_where_shape_mismatch_names_all_shapes():
    with pytest.raises(ValueError, match=r"where: shapes \(2,\) \(condition\), \(3,\) and "
                                         r"\(2,\) cannot be broadcast together"):
        tinyllm.where(tinyllm.tensor([True, False]), leaf([1.0, 2.0, 3.0]), leaf([3.0, 4.0]))


@st.composite
def tensor_and_mask_shapes(draw):
    """A tensor shape and a mask shape that broadcasts to it (axes dropped or set to 1)."""
    shape = draw(shapes(min_dims=1))
    drop = draw(st.integers(0, len(shape)))
    mask = tuple(1 if draw(st.booleans()) else n for n in shape[drop:])
    return shape, mask


@FAST
@given(shapes=tensor_and_mask_shapes(), seed=seeds, value=st.sampled_from([0.0, -1e9, -np.inf]))
def test_masked_fill_forward_and_gradcheck(shapes, seed, value):
    rng = rng_for(seed)
    shape, mask_shape = shapes
    x, mask = uniform(rng, shape), rng.random(mask_shape) < 0.5
    y = leaf(x).masked_fill(tinyllm.tensor(mask), value)
    expected = x.copy()
    expected[np.broadcast_to(mask, shape)] = value
    np.testing.assert_array_equal(y.data, expected)
    assert check_grad(lambda t: tinyllm.masked_fill(t, tinyllm.tensor(mask), 0.5), leaf(x))


def test_masked_fill_blocks_the_gradient_where_filled():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    x.masked_fill(tinyllm.tensor([False, True]), -np.inf).exp().sum().backward()
    np.testing.assert_allclose(x.grad, [[np.exp(1.0), 0.0], [np.exp(3.0), 0.0]], rtol=1e-15)


def test_masked_fill_needs_a_boolean_mask():
    with pytest.raises(TypeError, match="masked_fill: the mask must be boolean .* got dtype "
                                        "int64"):
        leaf([1.0, 2.0]).masked_fill(tinyllm.tensor([1, 0]), 0.0)


def test_masked_fill_mask_must_broadcast_to_the_tensor():
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(2, 3\) does not "
                                         r"broadcast to the tensor's shape \(3,\)"):
        leaf([1.0, 2.0, 3.0]).masked_fill(tinyllm.tensor(np.ones((2, 3), dtype=bool)), 0.0)


# ----- cast and clone -----------------------------------------------------------------------
def test_cast_between_floats_sends_the_gradient_back_in_the_input_dtype():
    x = tinyllm.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and y.requires_grad
    (y * leaf([0.5, 0.25, 2.0], False)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [0.5, 0.25, 2.0])


@FAST
@given(shape=shapes(), seed=seeds)
def test_cast_backward_is_the_identity_in_the_input_dtype(shape, seed):
    # a central-difference check cannot run through float32 (it rounds away eps = 1e-6), so
    # the Jacobian (the identity) is checked directly: dL/dx = dL/dy converted back
    rng = rng_for(seed)
    x = tinyllm.tensor(uniform(rng, shape), requires_grad=True)
    weights = uniform(rng, shape)
    y = tinyllm.cast(x, np.float64)
    assert y.shape == x.shape and y.dtype == np.float64
    (y * leaf(weights, False)).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == shape
    np.testing.assert_array_equal(x.grad, weights.astype(np.float32))


def test_cast_to_float32_rounds_the_values():
    x = leaf([1.0 + 1e-10])
    y = x.float()
    assert y.dtype == np.float32 and y.item() == 1.0


def test_cast_to_the_same_dtype_returns_the_tensor():
    x = leaf([1.0])
    assert x.to(np.float64) is x


def test_cast_to_an_integer_is_not_differentiable():
    x = leaf([1.7, -2.2])
    y = x.long()
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.data, [1, -2])
    assert x.bool().dtype == np.bool_


@FAST
@given(shape=shapes(), seed=seeds)
def test_clone_copies_and_passes_the_gradient(shape, seed):
    data = uniform(rng_for(seed), shape)
    x = leaf(data)
    y = x.clone()
    assert y.data is not x.data and not np.shares_memory(y.data, x.data)
    np.testing.assert_array_equal(y.data, data)
    assert check_grad(tinyllm.clone, x)


# ----- parity with PyTorch ------------------------------------------------------------------
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    torch = pytest.importorskip("torch")
    data = np.linspace(-5, 5, 41)
    x = leaf(data)
    y = tinyllm.gelu(x, approximate=approximate)
    (y * y).sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    (ty * ty).sum().backward()
    # the tanh form loses a few digits to cancellation in 1 + tanh(u) for x << 0
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_maximum_ties_and_clamp_boundaries_match_torch():
    torch = pytest.importorskip("torch")
    a_data, b_data = np.array([1.0, 2.0, -3.0, 0.5]), np.array([1.0, -2.0, -3.0, 0.7])
    a, b = leaf(a_data), leaf(b_data)
    (tinyllm.maximum(a, b).clip(-3.0, 1.0) * leaf([1.0, 2.0, 3.0, 4.0], False)).sum().backward()
    ta = torch.tensor(a_data, requires_grad=True)
    tb = torch.tensor(b_data, requires_grad=True)
    (torch.maximum(ta, tb).clamp(-3.0, 1.0) * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())
    np.testing.assert_array_equal(b.grad, tb.grad.numpy())
