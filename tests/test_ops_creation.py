"""Factory functions (zeros, ones, full, arange, linspace, eye, random ones, *_like), the seeded
generator, one_hot and the triangular masks."""

import numpy as np
import pytest

import tinyllm
from conftest import leaf


# ----- constants --------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_and_ones_take_sizes_or_a_tuple(name, value):
    factory = getattr(tinyllm, name)
    for t in (factory(2, 3), factory((2, 3))):
        assert isinstance(t, tinyllm.Tensor)
        assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
        assert np.all(t.data == value)
    assert factory().shape == ()


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "randn", "rand"])
def test_float_factories_follow_dtype_default_and_requires_grad(name):
    factory = getattr(tinyllm, name)
    assert factory(3, dtype=np.float64).dtype == np.float64
    t = factory(2, requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.dtype == np.float32
    tinyllm.set_default_dtype(np.float64)
    assert factory(2).dtype == np.float64


def test_full_keeps_the_kind_of_its_value():
    t = tinyllm.full((2, 2), 3.5)
    assert t.dtype == np.float32 and np.all(t.data == 3.5)
    assert tinyllm.full(3, 7).dtype == np.int64
    assert tinyllm.full(3, 7, dtype=np.float64).dtype == np.float64
    assert tinyllm.full((2,), True).dtype == np.bool_


def test_eye():
    t = tinyllm.eye(3)
    np.testing.assert_array_equal(t.data, [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert t.dtype == np.float32
    assert tinyllm.eye(2, 3).shape == (2, 3)


def test_arange_integer_and_float():
    t = tinyllm.arange(5)
    assert t.dtype == np.int64 and t.tolist() == [0, 1, 2, 3, 4]
    assert tinyllm.arange(2, 8, 3).tolist() == [2, 5]
    f = tinyllm.arange(0, 1, 0.25)
    assert f.dtype == np.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tinyllm.arange(3, dtype=np.float64).dtype == np.float64


def test_linspace_includes_both_ends():
    t = tinyllm.linspace(-1, 1, 5)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, [-1.0, -0.5, 0.0, 0.5, 1.0])


def test_integer_factories_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tinyllm.arange(3, requires_grad=True)


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like", "randn_like",
                                  "rand_like"])
def test_like_factories_copy_shape_and_dtype(name):
    factory = getattr(tinyllm, name)
    x = leaf(np.ones((2, 3)))
    t = factory(x)
    assert t.shape == (2, 3) and t.dtype == np.float64 and not t.requires_grad
    assert factory(x, dtype=np.float32).dtype == np.float32
    assert factory(x, requires_grad=True).requires_grad


def test_zeros_like_ones_like_full_like_values():
    x = tinyllm.tensor([[1, 2], [3, 4]])
    assert tinyllm.zeros_like(x).dtype == np.int64
    np.testing.assert_array_equal(tinyllm.ones_like(x).data, np.ones((2, 2)))
    f = tinyllm.full_like(leaf([1.0, 2.0]), -1.5)
    assert f.dtype == np.float64 and f.tolist() == [-1.5, -1.5]


# ----- random -----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: tinyllm.randn(3, 4), lambda: tinyllm.rand(5),
                                  lambda: tinyllm.randint(0, 10, (6,)),
                                  lambda: tinyllm.randperm(7),
                                  lambda: tinyllm.randn_like(tinyllm.zeros(2))],
                         ids=["randn", "rand", "randint", "randperm", "randn_like"])
def test_manual_seed_makes_random_factories_reproducible(make):
    tinyllm.manual_seed(123)
    first = make().data.copy()
    second = make().data.copy()
    tinyllm.manual_seed(123)
    again = make().data
    np.testing.assert_array_equal(first, again)
    if first.size > 1:
        assert not np.array_equal(first, second)


def test_random_factories_accept_their_own_generator():
    a = tinyllm.randn(4, generator=np.random.default_rng(5))
    b = tinyllm.randn(4, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a.data, b.data)


def test_randn_and_rand_distributions():
    tinyllm.manual_seed(0)
    normal = tinyllm.randn(20000, dtype=np.float64).data
    # mean within 5 standard errors (1/sqrt(n) = 0.007) of 0; variance close to 1
    assert abs(normal.mean()) < 0.035 and abs(normal.var() - 1) < 0.05
    uniform = tinyllm.rand(20000).data
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.02


def test_randint_range_and_dtype():
    tinyllm.manual_seed(1)
    t = tinyllm.randint(3, 7, size=(200,))
    assert t.dtype == np.int64 and t.shape == (200,)
    assert set(t.tolist()) == {3, 4, 5, 6}
    below = tinyllm.randint(4, size=50)
    assert below.data.min() >= 0 and below.data.max() < 4
    assert tinyllm.randint(0, 5, (3,), dtype=np.int32).dtype == np.int32


def test_randperm_is_a_permutation():
    tinyllm.manual_seed(2)
    t = tinyllm.randperm(10)
    assert t.dtype == np.int64 and sorted(t.tolist()) == list(range(10))


# ----- one_hot ----------------------------------------------------------------------------
def test_one_hot_marks_the_class_of_each_index():
    t = tinyllm.one_hot(tinyllm.tensor([[2, 0], [1, 2]]), num_classes=4)
    assert t.shape == (2, 2, 4) and t.dtype == np.int64
    expected = np.zeros((2, 2, 4), dtype=np.int64)
    for (i, j), c in np.ndenumerate(np.array([[2, 0], [1, 2]])):
        expected[i, j, c] = 1
    np.testing.assert_array_equal(t.data, expected)


def test_one_hot_infers_the_number_of_classes():
    t = tinyllm.one_hot(tinyllm.tensor([0, 3]))
    np.testing.assert_array_equal(t.data, [[1, 0, 0, 0], [0, 0, 0, 1]])


def test_one_hot_as_float_selects_rows_with_gradient():
    w = leaf(np.arange(6.0).reshape(3, 2))
    picked = tinyllm.one_hot(tinyllm.tensor([2, 2, 0]), 3).double() @ w
    np.testing.assert_array_equal(picked.data, [[4, 5], [4, 5], [0, 1]])
    picked.sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [0, 0], [2, 2]])


@pytest.mark.parametrize("indices", [[0, 3], [-1, 1]])
def test_one_hot_out_of_range(indices):
    with pytest.raises(ValueError, match=r"one_hot: class indices must lie in \[0, 3\)"):
        tinyllm.one_hot(tinyllm.tensor(indices), num_classes=3)


def test_one_hot_needs_integers():
    with pytest.raises(TypeError, match="one_hot: indices must be integers, got dtype float32"):
        tinyllm.one_hot(tinyllm.tensor([1.0]), 3)


# ----- triangular masks -------------------------------------------------------------------
def test_tril_mask_is_the_causal_mask():
    mask = tinyllm.tril_mask(3)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask.data, [[True, False, False], [True, True, False],
                                              [True, True, True]])
    np.testing.assert_array_equal(tinyllm.triu_mask(2, 3, diagonal=1).data,
                                  [[False, True, True], [False, False, True]])
