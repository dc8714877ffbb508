"""Reductions (sum, mean, max, min, var) and the softmax family over any axes: forward values
against NumPy loops, float64 gradient checks, ties, large inputs and the errors."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinyllm
from conftest import (FAST, check_grad, distinct, leaf, normalise_axes, rng_for, seeds,
                      shape_and_axis, shape_and_single_axis, uniform)


def _reduce(x, axis, keepdims, combine):
    """Apply ``combine`` (a function of a 1-D array) to the elements over ``axis``: the
    reduced axes are moved to the end and flattened, so each output element sees its group."""
    axes = normalise_axes(axis, x.ndim)
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes))
    groups = moved.reshape([x.shape[a] for a in kept] + [-1])
    out = np.empty(groups.shape[:-1])
    for i in np.ndindex(*out.shape):
        out[i] = combine(groups[i])
    if keepdims:
        out = out.reshape([1 if a in axes else n for a, n in enumerate(x.shape)])
    return out


def _variance(correction):
    return lambda g: sum((v - sum(g) / len(g)) ** 2 for v in g) / (len(g) - correction)


REFERENCES = {
    "sum": lambda g: sum(g),
    "mean": lambda g: sum(g) / len(g),
    "max": lambda g: max(g),
    "min": lambda g: min(g),
    "logsumexp": lambda g: max(g) + np.log(sum(np.exp(v - max(g)) for v in g)),
}


def _sample(name, rng, shape):
    return distinct(rng, shape) if name in ("max", "min") else uniform(rng, shape)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@FAST
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_forward_matches_numpy(name, case, keepdims, seed):
    shape, axis = case
    x = _sample(name, rng_for(seed), shape)
    y = getattr(leaf(x, False), name)(axis, keepdims)
    expected = _reduce(x, axis, keepdims, REFERENCES[name])
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@FAST
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_gradcheck_over_any_axes(name, case, keepdims, seed):
    shape, axis = case
    x = leaf(_sample(name, rng_for(seed), shape))
    assert check_grad(lambda t: getattr(tinyllm, name)(t, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("correction", [0, 1, 2])
@FAST
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_var_forward_and_gradcheck(correction, case, keepdims, seed):
    shape, axis = case
    count = int(np.prod([shape[a] for a in normalise_axes(axis, len(shape))]))
    assume(count > correction)
    x = uniform(rng_for(seed), shape)
    y = leaf(x).var(axis, keepdims, correction=correction)
    np.testing.assert_allclose(y.data, _reduce(x, axis, keepdims, _variance(correction)),
                               rtol=1e-12, atol=1e-14)
    assert check_grad(lambda t: t.var(axis, keepdims, correction=correction), leaf(x))


def test_var_numpy_and_torch_spellings_of_the_correction():
    x = leaf([1.0, 2.0, 4.0, 7.0])          # mean 3.5, squared deviations sum to 21
    assert x.var().item() == pytest.approx(21 / 3, rel=1e-15)
    assert x.var(correction=0).item() == pytest.approx(21 / 4, rel=1e-15)
    assert x.var(ddof=0).item() == pytest.approx(21 / 4, rel=1e-15)
    assert x.var(unbiased=False).item() == pytest.approx(21 / 4, rel=1e-15)
    assert x.var(unbiased=True).item() == pytest.approx(21 / 3, rel=1e-15)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "logsumexp"])
def test_dim_and_keepdim_are_aliases_of_axis_and_keepdims(name):
    x = leaf(distinct(rng_for(0), (2, 3, 4)))
    method = getattr(x, name)
    np.testing.assert_array_equal(method(dim=1, keepdim=True).data,
                                  method(axis=1, keepdims=True).data)
    np.testing.assert_array_equal(method(dim=(0, -1)).data, method((0, 2)).data)
    np.testing.assert_array_equal(getattr(tinyllm, name)(x, dim=-1).data, method(-1).data)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "logsumexp"])
def test_reductions_keep_float32(name):
    x = tinyllm.tensor(distinct(rng_for(0), (3, 4)))
    assert getattr(x, name)(axis=0).dtype == np.float32
    assert getattr(x, name)().dtype == np.float32


def test_sum_over_all_axes_gives_a_scalar_and_ones_as_gradient():
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = x.sum()
    assert y.shape == () and y.item() == 15.0
    y.backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_mean_gradient_is_one_over_the_count():
    x = leaf(np.zeros((2, 3, 4)))
    x.mean(axis=(0, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3, 4), 1 / 8))


# ----- ties ---------------------------------------------------------------------------------
def test_max_splits_the_gradient_equally_among_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    y = x.max(axis=1)
    np.testing.assert_array_equal(y.data, [3.0, 2.0])
    (y * leaf([1.0, 10.0], False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [5.0, 5.0, 0.0]])


def test_max_over_everything_with_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    x.max().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 1 / 3, 1 / 3], [0.0, 1 / 3, 0.0]], rtol=1e-15)


def test_min_splits_the_gradient_equally_among_ties():
    x = leaf([[1.0, 2.0, 0.0], [1.0, 5.0, 0.0]])
    x.min(axis=0, keepdims=True).sum().backward()
    # column 0: a tie of two 1s; column 1: the 2 wins; column 2: a tie of two 0s
    np.testing.assert_array_equal(x.grad, [[0.5, 1.0, 0.5], [0.5, 0.0, 0.5]])


def test_max_returns_values_not_indices():
    x = leaf([[1.0, 5.0], [7.0, 2.0]])
    np.testing.assert_array_equal(x.max(axis=1).data, [5.0, 7.0])
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=0).data, [0, 1])
    assert x.argmax().item() == 2 and x.argmax().dtype == np.int64


# ----- softmax family -----------------------------------------------------------------------
def _softmax_reference(x, axis):
    out = np.empty_like(x)
    moved, target = np.moveaxis(x, axis, -1), np.moveaxis(out, axis, -1)
    for i in np.ndindex(*moved.shape[:-1]):
        row = moved[i]
        e = np.exp(row - row.max())
        target[i] = e / e.sum()
    return out


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@FAST
@given(case=shape_and_single_axis(), seed=seeds)
def test_softmax_family_forward_and_gradcheck(name, case, seed):
    shape, axis = case
    x = uniform(rng_for(seed), shape, -3, 3)
    y = getattr(leaf(x), name)(axis)
    expected = _softmax_reference(x, axis)
    if name == "log_softmax":
        expected = np.log(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-13, atol=1e-15)
    assert check_grad(lambda t: getattr(tinyllm, name)(t, axis=axis), leaf(x))


def test_softmax_rows_sum_to_one_and_dim_alias():
    x = leaf(uniform(rng_for(0), (3, 4, 5)))
    np.testing.assert_allclose(x.softmax(dim=1).sum(axis=1).data, np.ones((3, 5)), rtol=1e-15)
    np.testing.assert_array_equal(x.softmax(dim=1).data, tinyllm.softmax(x, axis=-2).data)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_accepts_dim(name):
    x = leaf(uniform(rng_for(1), (2, 3)))
    expected = getattr(x, name)(0).data
    np.testing.assert_array_equal(getattr(x, name)(dim=0).data, expected)
    np.testing.assert_array_equal(getattr(tinyllm, name)(x, dim=0).data, expected)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_does_not_overflow_on_large_inputs(name):
    x = leaf([[1000.0, 1000.0, 990.0], [-1000.0, -1010.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = getattr(x, name)(-1)
        y.sum().backward()
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))
    e = np.exp([0.0, 0.0, -10.0])
    p = e / e.sum()
    lse = np.log(e.sum())
    expected = {"softmax": [p, p[[0, 2, 1]]],
                "log_softmax": [np.log(p), np.log(p[[0, 2, 1]])],
                "logsumexp": [1000 + lse, -1000 + lse]}[name]
    np.testing.assert_allclose(y.data, np.array(expected), rtol=1e-13)


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log")
def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    y = tinyllm.logsumexp(leaf([[-np.inf, -np.inf], [0.0, -np.inf]]), axis=1)
    np.testing.assert_array_equal(y.data, [-np.inf, 0.0])


def test_log_softmax_gradient_of_the_picked_entry():
    # d/dx_j of log softmax(x)_k = [j == k] - softmax(x)_j
    data = np.array([0.5, -1.0, 2.0])
    x = leaf(data)
    x.log_softmax()[2].backward()
    p = np.exp(data) / np.exp(data).sum()
    np.testing.assert_allclose(x.grad, np.array([0.0, 0.0, 1.0]) - p, rtol=1e-14)


# ----- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_needs_exactly_one_axis(name):
    with pytest.raises(TypeError, match="%s: needs exactly one axis, got \\(0, 1\\)" % name):
        getattr(tinyllm, name)(leaf(np.ones((2, 3))), axis=(0, 1))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "logsumexp", "softmax"])
def test_axis_out_of_range_names_the_op(name):
    with pytest.raises(IndexError, match="%s: axis 2 is out of range for a tensor with 2 axes"
                                         % name):
        getattr(tinyllm, name)(leaf(np.ones((2, 3))), axis=2)


def test_negative_axis_out_of_range():
    with pytest.raises(IndexError, match="sum: axis -3 is out of range"):
        leaf(np.ones((2, 3))).sum(axis=-3)


def test_axis_and_dim_together_are_refused():
    with pytest.raises(TypeError, match="sum: give axis= or dim=, not both"):
        leaf(np.ones((2, 3))).sum(axis=0, dim=1)


def test_max_of_an_empty_tensor_is_refused():
    with pytest.raises(ValueError, match=r"max: the tensor of shape \(0, 3\) is empty"):
        tinyllm.zeros(0, 3).max()


# ----- parity with PyTorch ------------------------------------------------------------------
def test_var_logsumexp_and_tied_max_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 4.0, 4.0, -2.0], [0.5, 0.5, 3.0, 3.0], [2.0, -1.0, 0.0, 2.0]])
    w = rng_for(5).standard_normal((3,))
    x = leaf(data)
    loss = (x.var(axis=1, correction=1) * leaf(w, False)).sum() \
        + (x.var(axis=0, correction=0) ** 2).sum() \
        + (x.logsumexp(axis=1) * leaf(w, False)).sum() \
        + (x.max(axis=1) * leaf(w, False)).sum() + x.min() * 3.0
    loss.backward()
    tx = torch.tensor(data, requires_grad=True)
    tw = torch.tensor(w)
    tloss = (tx.var(dim=1, correction=1) * tw).sum() + (tx.var(dim=0, correction=0) ** 2).sum() \
        + (torch.logsumexp(tx, dim=1) * tw).sum() + (tx.amax(dim=1) * tw).sum() \
        + tx.amin() * 3.0
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-14)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_softmax_family_matches_torch():
    torch = pytest.importorskip("torch")
    data = rng_for(6).standard_normal((2, 3, 4)) * 3
    w = rng_for(7).standard_normal((2, 3, 4))
    x = leaf(data)
    (x.softmax(axis=1) * leaf(w, False) + x.log_softmax(axis=-1) * leaf(w, False)).sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    tw = torch.tensor(w)
    (tx.softmax(dim=1) * tw + tx.log_softmax(dim=-1) * tw).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-14)
