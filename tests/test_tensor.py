"""The Tensor class itself: dtype rules, attributes and conversions, requires_grad, detach,
repr, comparisons and the dtype that mixed operands give."""

import numpy as np
import pytest

import tinyllm
from conftest import leaf


# ----- dtype rules ------------------------------------------------------------------------
@pytest.mark.parametrize("data", [1.5, [1.0, 2.0], [[1, 2.5]], np.array([1.0, 2.0]),
                                  np.float64(3.0), np.array([1.0], dtype=np.float16)],
                         ids=["float", "list", "mixed list", "float64 array", "numpy scalar",
                              "float16 array"])
def test_float_data_becomes_float32_by_default(data):
    assert tinyllm.tensor(data).dtype == np.float32


def test_dtype_argument_wins():
    assert tinyllm.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert tinyllm.tensor([1, 2], dtype=np.float32).dtype == np.float32
    assert tinyllm.tensor([1.7], dtype=tinyllm.int64).tolist() == [1]


def test_set_default_dtype_changes_new_float_tensors_only():
    before = tinyllm.tensor([1.0])
    tinyllm.set_default_dtype(np.float64)
    assert tinyllm.get_default_dtype() == np.float64
    assert tinyllm.tensor([1.0]).dtype == np.float64
    assert tinyllm.tensor([1]).dtype == np.int64
    assert before.dtype == np.float32


def test_default_dtype_must_be_a_float():
    with pytest.raises(TypeError, match="set_default_dtype: the default must be a floating "
                                        "dtype, got int64"):
        tinyllm.set_default_dtype(np.int64)


def test_integer_and_bool_data_keep_their_kind():
    assert tinyllm.tensor([1, 2]).dtype == np.int64
    assert tinyllm.tensor(np.array([1, 2], dtype=np.int32)).dtype.kind == "i"
    assert tinyllm.tensor(7).dtype == np.int64
    assert tinyllm.tensor([True, False]).dtype == np.bool_


@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_integer_and_bool_tensors_cannot_require_grad(data):
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients; "
                                        "this tensor has dtype"):
        tinyllm.tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tinyllm.tensor(data).requires_grad_()


def test_unsupported_data_is_refused():
    with pytest.raises(TypeError, match="tensor: cannot make a tensor from data of dtype"):
        tinyllm.tensor(["a", "b"])


def test_tensor_copies_its_data():
    source = np.array([1.0, 2.0], dtype=np.float32)
    t = tinyllm.tensor(source)
    source[0] = 5.0
    assert t.tolist() == [1.0, 2.0]
    u = tinyllm.tensor(t)
    t.data[1] = 9.0
    assert u.tolist() == [1.0, 2.0]


# ----- attributes and conversions ---------------------------------------------------------
def test_shape_dtype_ndim_size_len():
    t = tinyllm.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.dim() == 3
    assert t.size == 24 and t.numel() == 24 and len(t) == 2
    assert t.dtype == np.float32
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(tinyllm.tensor(1.0))


def test_grad_is_none_until_backward_then_has_the_shape():
    x = tinyllm.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.grad is None and x.is_leaf
    (x * x).sum().backward()
    assert isinstance(x.grad, np.ndarray)
    assert x.grad.shape == x.shape and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_gradients_accumulate_until_zero_grad():
    x = leaf([1.0, -2.0])
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_item_and_python_numbers():
    t = tinyllm.tensor([[2.5]])
    assert t.item() == 2.5 and isinstance(t.item(), float)
    assert float(t) == 2.5 and int(tinyllm.tensor(3)) == 3
    assert bool(tinyllm.tensor(True))
    with pytest.raises(ValueError, match=r"item\(\): only a tensor with one element .* shape "
                                         r"\(2,\)"):
        tinyllm.tensor([1.0, 2.0]).item()
    with pytest.raises(ValueError, match="truth value of a tensor with more than one element"):
        bool(tinyllm.tensor([True, False]))


def test_numpy_shares_memory_with_the_tensor():
    t = tinyllm.tensor([1.0, 2.0])
    array = t.numpy()
    assert isinstance(array, np.ndarray) and np.shares_memory(array, t.data)


def test_array_protocol():
    t = tinyllm.tensor([1.0, 2.0])
    array = np.asarray(t)
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, [1.0, 2.0])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = np.array(t, copy=True)
    assert not np.shares_memory(copied, t.data)


def test_tolist():
    assert tinyllm.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]


# ----- requires_grad and detach -----------------------------------------------------------
def test_requires_grad_switches_on_in_place_and_returns_the_tensor():
    t = tinyllm.tensor([1.0])
    assert not t.requires_grad
    assert t.requires_grad_() is t and t.requires_grad
    assert t.requires_grad_(False) is t and not t.requires_grad


def test_requires_grad_off_is_only_for_leaves():
    y = leaf([1.0]) * 2.0
    with pytest.raises(RuntimeError, match="requires_grad_\\(False\\) is only for leaves"):
        y.requires_grad_(False)


def test_results_of_ops_require_grad_when_an_input_does():
    x, c = leaf([1.0]), leaf([2.0], requires_grad=False)
    assert (x * c).requires_grad and not (x * c).is_leaf
    assert not (c * c).requires_grad


def test_detach_shares_values_and_stops_the_gradient():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, y.data)
    (x * d).sum().backward()       # d is a constant: dL/dx = d
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])


# ----- repr -------------------------------------------------------------------------------
def test_repr_shows_values_and_only_what_differs_from_defaults():
    assert repr(tinyllm.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(tinyllm.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tinyllm.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(tinyllm.tensor([1.0], dtype=np.float64)) == "tensor([1.], dtype=float64)"
    y = tinyllm.tensor([[1.0, 2.0]], requires_grad=True) * 2.0
    assert repr(y) == "tensor([[2., 4.]], grad_fn=<MulBackward>)"


# ----- comparisons and logic --------------------------------------------------------------
@pytest.mark.parametrize("op, reference", [
    (lambda a, b: a < b, np.less), (lambda a, b: a <= b, np.less_equal),
    (lambda a, b: a > b, np.greater), (lambda a, b: a >= b, np.greater_equal),
    (lambda a, b: a == b, np.equal), (lambda a, b: a != b, np.not_equal)],
    ids=["lt", "le", "gt", "ge", "eq", "ne"])
def test_comparisons_are_elementwise_and_not_differentiable(op, reference):
    a_data = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b_data = np.array([2.0, 2.0, 2.0])
    a = leaf(a_data)
    for other, other_data in ((leaf(b_data), b_data), (2.0, 2.0)):
        result = op(a, other)
        assert isinstance(result, tinyllm.Tensor) and result.dtype == np.bool_
        assert not result.requires_grad
        np.testing.assert_array_equal(result.data, reference(a_data, other_data))


def test_logical_operators_on_boolean_tensors():
    a, b = tinyllm.tensor([True, True, False]), tinyllm.tensor([True, False, False])
    assert (a & b).tolist() == [True, False, False]
    assert (a | b).tolist() == [True, True, False]
    assert (~a).tolist() == [False, False, True]
    with pytest.raises(TypeError, match=r"logical_and \(&\): expected a boolean tensor, got "
                                        r"dtype int64"):
        tinyllm.tensor([1, 0]) & a


def test_tensors_are_hashable_by_identity():
    a, b = tinyllm.tensor([1.0]), tinyllm.tensor([1.0])
    assert len({a, b}) == 2


# ----- dtypes of mixed operands -----------------------------------------------------------
def test_float32_is_kept_when_dividing_by_a_numpy_float64_scalar():
    x = tinyllm.tensor([1.0, 2.0])
    scale = np.sqrt(np.float64(4.0))
    y = x / scale
    assert y.dtype == np.float32 and y.tolist() == [0.5, 1.0]
    assert (x * np.float64(2.0)).dtype == np.float32


def test_numpy_on_the_left_gives_a_float32_tensor():
    x = tinyllm.tensor([1.0, 2.0], requires_grad=True)
    for y in (np.float64(2.0) * x, np.ones(2) + x, np.ones(2) - x):
        assert isinstance(y, tinyllm.Tensor) and y.dtype == np.float32 and y.requires_grad


def test_integer_tensor_with_a_float_becomes_the_default_float():
    i = tinyllm.tensor([1, 2])
    assert (i * 0.5).dtype == np.float32
    assert (i + tinyllm.tensor([0.5, 0.5])).dtype == np.float32
    assert (i + 1).dtype == np.int64


def test_integer_division_gives_the_default_float():
    # as in PyTorch: true division of integers is a float in the default dtype
    y = tinyllm.tensor([1, 3]) / tinyllm.tensor([2, 2])
    assert y.dtype == np.float32 and y.tolist() == [0.5, 1.5]
    assert (tinyllm.arange(4) / 4).dtype == np.float32


def test_float32_with_float64_tensor_gives_float64():
    y = tinyllm.tensor([1.0]) + leaf([1.0], False)
    assert y.dtype == np.float64


def test_float32_gradients_stay_float32():
    x = tinyllm.tensor([[1.0, 2.0]], requires_grad=True)
    w = tinyllm.tensor([[0.5], [0.25]], requires_grad=True)
    ((x @ w).tanh() / np.float64(3.0)).sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
