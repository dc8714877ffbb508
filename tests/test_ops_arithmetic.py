"""+ - * / ** @ and negation: forward values against NumPy, float64 gradient checks over
broadcast shapes, and the errors for shapes that do not fit."""

import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
from conftest import (FAST, broadcastable_pairs, check_grad, leaf, nonzero, rng_for, seeds,
                      uniform)

BINARY = {
    "add": (operator.add, lambda a, b: a + b),
    "sub": (operator.sub, lambda a, b: a - b),
    "mul": (operator.mul, lambda a, b: a * b),
    "div": (operator.truediv, lambda a, b: a / b),
}


def _binary_inputs(name, shapes, seed):
    rng = rng_for(seed)
    shape_a, shape_b = shapes
    a = uniform(rng, shape_a)
    b = nonzero(rng, shape_b, 0.5, 2.0) if name == "div" else uniform(rng, shape_b)
    return a, b


# ----- + - * / --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(shapes=broadcastable_pairs(), seed=seeds)
def test_binary_forward_matches_numpy(name, shapes, seed):
    a, b = _binary_inputs(name, shapes, seed)
    op, reference = BINARY[name]
    y = op(leaf(a, False), leaf(b, False))
    assert y.shape == np.broadcast_shapes(a.shape, b.shape)
    np.testing.assert_allclose(y.data, reference(a, b), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(shapes=broadcastable_pairs(), seed=seeds)
def test_binary_gradcheck_with_broadcasting(name, shapes, seed):
    a, b = _binary_inputs(name, shapes, seed)
    op, _ = BINARY[name]
    assert check_grad(op, leaf(a), leaf(b))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_functional_form_equals_operator(name):
    rng = rng_for(0)
    a, b = rng.uniform(0.5, 2, size=(2, 3)), rng.uniform(0.5, 2, size=(3,))
    op = {"pow": operator.pow, **{k: v[0] for k, v in BINARY.items()}}[name]
    np.testing.assert_array_equal(getattr(tinyllm, name)(leaf(a), leaf(b)).data,
                                  op(leaf(a), leaf(b)).data)


@pytest.mark.parametrize("op", [lambda x: 2.5 + x, lambda x: 2.5 - x, lambda x: 2.5 * x,
                                lambda x: 2.5 / x, lambda x: x / 2.5, lambda x: x - 2.5,
                                lambda x: 2.0 ** x, lambda x: x ** 3, lambda x: x ** -1.5],
                         ids=["radd", "rsub", "rmul", "rdiv", "div_scalar", "sub_scalar", "rpow",
                              "pow_int", "pow_negative"])
def test_operators_with_a_python_number_gradcheck(op):
    x = leaf(rng_for(1).uniform(0.5, 2.0, size=(3, 2)))
    assert check_grad(op, x)


def test_gradient_of_broadcast_input_is_summed_over_its_copies():
    x = leaf(np.ones((3, 1)))
    y = leaf(np.arange(4.0).reshape(1, 4))
    (x * y).sum().backward()
    # each x[i, 0] multiplies the four y values: dL/dx = 0 + 1 + 2 + 3
    np.testing.assert_array_equal(x.grad, np.full((3, 1), 6.0))
    # each y[0, j] multiplies three ones
    np.testing.assert_array_equal(y.grad, np.full((1, 4), 3.0))


# ----- ** ---------------------------------------------------------------------------------
@FAST
@given(shapes=broadcastable_pairs(), seed=seeds)
def test_pow_forward_and_gradcheck_in_base_and_exponent(shapes, seed):
    rng = rng_for(seed)
    a = rng.uniform(0.5, 2.0, size=shapes[0])
    b = rng.uniform(-2.0, 2.0, size=shapes[1])
    np.testing.assert_allclose((leaf(a) ** leaf(b)).data, np.exp(b * np.log(a)), rtol=1e-13)
    assert check_grad(operator.pow, leaf(a), leaf(b))


def test_pow_of_negative_base_with_integer_exponent():
    x = leaf([-2.0, -0.5, 1.5])
    (x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * np.array([-2.0, -0.5, 1.5]) ** 2, rtol=1e-15)


def test_pow_exponent_gradient_is_zero_where_the_base_is_not_positive():
    base = leaf([-2.0, 0.0, 3.0], requires_grad=False)
    exponent = leaf([2.0, 2.0, 2.0])
    (base ** exponent).sum().backward()
    # d(a^b)/db = a^b ln a, defined only for a > 0
    np.testing.assert_allclose(exponent.grad, [0.0, 0.0, 9.0 * np.log(3.0)], rtol=1e-15)


# ----- negation ---------------------------------------------------------------------------
@FAST
@given(shape=st.sampled_from([(), (1,), (3,), (2, 1, 3)]), seed=seeds)
def test_neg_forward_and_gradcheck(shape, seed):
    x = uniform(rng_for(seed), shape)
    np.testing.assert_array_equal((-leaf(x)).data, 0.0 - x)
    np.testing.assert_array_equal(tinyllm.neg(leaf(x)).data, 0.0 - x)
    assert check_grad(lambda t: -t, leaf(x))


# ----- @ ----------------------------------------------------------------------------------
@st.composite
def matmul_shapes(draw):
    """Shapes for a @ b: broadcast batch axes, and sometimes a 1-D a or b."""
    batch_a, batch_b = draw(broadcastable_pairs(max_dims=2, max_side=2))
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    shape_a = (k,) if draw(st.booleans()) else batch_a + (n, k)
    shape_b = (k,) if draw(st.booleans()) else batch_b + (k, m)
    return shape_a, shape_b


def reference_matmul(a, b):
    """Matrix product by broadcasting and summing over k (independent of np.matmul)."""
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    out = (a2[..., :, :, np.newaxis] * b2[..., np.newaxis, :, :]).sum(axis=-2)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


@FAST
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_forward_matches_reference(shapes, seed):
    rng = rng_for(seed)
    a, b = uniform(rng, shapes[0]), uniform(rng, shapes[1])
    y = leaf(a) @ leaf(b)
    expected = reference_matmul(a, b)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-14)


@FAST
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_gradcheck_batched_broadcast_and_1d(shapes, seed):
    rng = rng_for(seed)
    a, b = uniform(rng, shapes[0]), uniform(rng, shapes[1])
    assert check_grad(operator.matmul, leaf(a), leaf(b))


def test_matmul_of_two_vectors_is_their_dot_product():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([4.0, 5.0, 6.0])
    y = tinyllm.matmul(a, b)
    assert y.shape == ()
    y.backward()
    assert y.item() == 32.0
    np.testing.assert_array_equal(a.grad, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0, 3.0])


def test_matmul_with_an_array_on_the_left():
    w = leaf(np.eye(3) * 2)
    y = np.ones((2, 3)) @ w
    assert isinstance(y, tinyllm.Tensor)
    np.testing.assert_array_equal(y.data, np.full((2, 3), 2.0))


# ----- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_binary_shape_mismatch_names_the_op_and_both_shapes(name):
    a, b = tinyllm.ones(3, 4), tinyllm.ones(5)
    with pytest.raises(ValueError, match=r"^%s: shapes \(3, 4\) and \(5,\) cannot be broadcast "
                                         r"together$" % name):
        getattr(tinyllm, name)(a, b)


def test_operator_shape_mismatch_names_the_op():
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(2,\)"):
        tinyllm.ones(2, 3) * tinyllm.ones(2)


def test_matmul_inner_dimension_mismatch_names_both_shapes_and_sizes():
    with pytest.raises(ValueError,
                       match=r"^matmul: shapes \(4, 3\) and \(5, 2\) do not align: 3 != 5$"):
        tinyllm.ones(4, 3) @ tinyllm.ones(5, 2)


def test_matmul_vector_mismatch():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4,\) do not align: "
                                         r"3 != 4"):
        tinyllm.ones(2, 3) @ tinyllm.ones(4)


def test_matmul_batch_axes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"matmul: the batch axes of shapes \(2, 4, 3\) and "
                                         r"\(3, 3, 5\) cannot be broadcast"):
        tinyllm.ones(2, 4, 3) @ tinyllm.ones(3, 3, 5)


def test_matmul_of_a_scalar_is_refused():
    with pytest.raises(ValueError, match=r"matmul: both operands need at least one axis"):
        tinyllm.matmul(tinyllm.tensor(2.0), tinyllm.ones(3))


# ----- parity with PyTorch ------------------------------------------------------------------
def test_batched_matmul_and_pow_match_torch():
    torch = pytest.importorskip("torch")
    rng = rng_for(3)
    a, b = rng.uniform(0.5, 2, size=(2, 1, 3, 4)), rng.standard_normal((3, 4, 2))
    c = rng.standard_normal((2, 3, 3, 2))
    x, y = leaf(a), leaf(b)
    ((x @ y) ** 2 * leaf(c, False) + x.sum() ** 0.5).sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    ty = torch.tensor(b, requires_grad=True)
    ((tx @ ty) ** 2 * torch.tensor(c) + tx.sum() ** 0.5).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-12)
