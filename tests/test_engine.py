"""The autograd engine: backward, accumulation, graph freeing, grad modes, anomaly detection,
the version counter for in-place ops, and the Function extension point."""

import weakref

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.autograd import Function


def leaf(values, dtype=np.float64):
    return tl.tensor(values, requires_grad=True, dtype=dtype)


class CountingExp(Function):
    """y = e^x, counting how many times its backward runs."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        CountingExp.calls += 1
        (y,) = ctx.saved_tensors
        return grad * y


# ----- backward ------------------------------------------------------------------------------
def test_backward_on_a_scalar_fills_leaf_grads():
    x = leaf([1.0, 2.0, 3.0])
    w = leaf([0.5, -1.0, 2.0])
    (x * w).sum().backward()
    np.testing.assert_allclose(x.grad, w.data)
    np.testing.assert_allclose(w.grad, x.data)


def test_grad_has_the_leaf_shape_and_dtype():
    x = leaf(np.ones((2, 3)), dtype=np.float32)
    (x * 2.0).sum().backward()
    assert x.grad.shape == (2, 3) and x.grad.dtype == np.float32
    assert isinstance(x.grad, np.ndarray)


def test_backward_on_a_non_scalar_without_grad_raises():
    y = leaf([1.0, 2.0]) * 3.0
    with pytest.raises(RuntimeError, match=r"only for a tensor with one element.*\(2,\)"):
        y.backward()


def test_backward_with_an_explicit_grad_computes_a_vector_jacobian_product():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    v = np.array([1.0, 10.0, 100.0])
    y.backward(v)
    np.testing.assert_allclose(x.grad, v * 2 * x.data)


def test_backward_with_a_grad_of_the_wrong_shape_raises():
    y = leaf([1.0, 2.0]) * 3.0
    with pytest.raises(RuntimeError, match=r"grad has shape \(3,\) but the tensor has shape"):
        y.backward(np.ones(3))


def test_gradients_accumulate_over_two_backward_calls():
    x = leaf([1.0, -2.0])
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)


def test_a_leaf_used_twice_in_one_pass_gets_the_sum_of_both_paths():
    x = leaf([2.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [2 * 2.0 + 1])


def test_setting_grad_to_none_or_zero_grad_clears_it():
    x = leaf([1.0, 2.0])
    (x * 5.0).sum().backward()
    x.grad = None
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])
    x.zero_grad()
    assert x.grad is None
    (x * 7.0).sum().backward()
    np.testing.assert_allclose(x.grad, [7.0, 7.0])


def test_a_shared_subexpression_is_backpropagated_once():
    CountingExp.calls = 0
    x = leaf([0.5, 1.0])
    shared = CountingExp.apply(x)
    y = (shared * 2.0 + shared.sin() + shared * shared).sum()
    y.backward()
    assert CountingExp.calls == 1
    e = np.exp(x.data)
    np.testing.assert_allclose(x.grad, (2.0 + np.cos(e) + 2 * e) * e)


def test_a_100000_op_chain_backpropagates_without_recursion_error():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    y.backward()
    assert x.grad == 1.0


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * x.data))


def test_a_second_backward_through_a_freed_graph_raises_naming_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"Mul: trying to backward through the graph a "
                                           r"second time.*retain_graph=True"):
        y.backward()


def test_saved_arrays_are_freed_after_backward():
    scratch = {}

    class SavesScratch(Function):
        @staticmethod
        def forward(ctx, x):
            buffer = np.exp(x)          # an intermediate that only the graph holds
            scratch["ref"] = weakref.ref(buffer)
            ctx.save_for_backward(buffer)
            return x * 1.0

        @staticmethod
        def backward(ctx, grad):
            (buffer,) = ctx.saved_tensors
            return grad

    y = SavesScratch.apply(leaf([1.0, 2.0]))
    assert scratch["ref"]() is not None
    y.sum().backward()
    assert scratch["ref"]() is None
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.grad_fn.ctx.saved_tensors


def test_retain_graph_keeps_the_saved_arrays():
    y = leaf([1.0, 2.0]).exp()
    y.sum().backward(retain_graph=True)
    (saved,) = y.grad_fn.ctx.saved_tensors
    np.testing.assert_allclose(saved, np.exp([1.0, 2.0]))


# ----- grad modes ----------------------------------------------------------------------------
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tl.no_grad():
        y = (x * 2.0).exp()
    assert not y.requires_grad and y.grad_fn is None
    assert tl.is_grad_enabled()


def test_no_grad_as_a_decorator():
    x = leaf([1.0, 2.0])

    @tl.no_grad()
    def double(t):
        return t * 2.0

    y = double(x)
    assert not y.requires_grad and y.grad_fn is None
    assert (x * 2.0).requires_grad          # recording is back on after the call


def test_enable_grad_inside_no_grad_records_again():
    x = leaf([1.0, 2.0])
    with tl.no_grad():
        with tl.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tl.no_grad():
            1 / 0
    assert tl.is_grad_enabled()


# ----- anomaly detection ---------------------------------------------------------------------
def test_detect_anomaly_names_the_op_whose_backward_gave_inf_and_where_it_was_made():
    x = leaf([0.0, 1.0])
    with tl.detect_anomaly():
        y = x.sqrt().sum()
        with np.errstate(divide="ignore"), \
                pytest.raises(RuntimeError, match="SqrtBackward returned non-finite") as info:
            y.backward()
    message = str(info.value)
    assert "test_engine.py" in message and "x.sqrt()" in message


def test_detect_anomaly_names_a_custom_function_returning_nan():
    class NaNBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, grad):
            return grad * np.nan

    x = leaf([1.0])
    with tl.detect_anomaly():
        y = NaNBackward.apply(x).sum()
        with pytest.raises(RuntimeError, match="NaNBackwardBackward") as info:
            y.backward()
    assert "NaNBackward.apply(x)" in str(info.value)


def test_without_detect_anomaly_a_non_finite_gradient_passes_silently():
    x = leaf([0.0, 1.0])
    with np.errstate(divide="ignore"):
        x.sqrt().sum().backward()
    assert np.isinf(x.grad[0]) and x.grad[1] == 0.5


# ----- integer tensors -----------------------------------------------------------------------
def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tl.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        tl.tensor([1, 2]).requires_grad_()


def test_backward_through_an_integer_only_computation_raises():
    n = tl.tensor([1, 2, 3])
    y = (n * 2).sum()
    assert y.dtype.kind == "i"
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


# ----- in-place ops and the version counter --------------------------------------------------
@pytest.mark.parametrize("modify, opname", [
    (lambda t: t.__iadd__(1.0), "+="),
    (lambda t: t.__imul__(2.0), "*="),
    (lambda t: t.__setitem__(0, 5.0), "__setitem__"),
    (lambda t: t.add_(1.0), "add_"),
    (lambda t: t.zero_(), "zero_"),
])
def test_in_place_change_of_a_saved_input_makes_backward_raise(modify, opname):
    w = leaf([1.0, 2.0])
    v = tl.tensor([3.0, 4.0], dtype=np.float64)     # saved by Mul for dL/dw = v
    y = (w * v).sum()
    modify(v)
    assert v._version == 1
    with pytest.raises(RuntimeError, match=r"Mul: an array of shape \(2,\) saved for the "
                                           r"backward pass was modified by an in-place"):
        y.backward()


def test_in_place_change_of_a_saved_leaf_under_no_grad_makes_backward_raise():
    w = leaf([1.0, 2.0])
    y = (w * w).sum()
    with tl.no_grad():
        w += 1.0
    with pytest.raises(RuntimeError, match="Mul: .*modified by an in-place operation"):
        y.backward()


def test_in_place_change_of_a_saved_output_makes_backward_raise():
    e = leaf([1.0, 2.0]).exp()          # Exp saves its output
    y = e.sum()
    with tl.no_grad():
        e.mul_(2.0)
    with pytest.raises(RuntimeError, match="Exp: .*modified by an in-place operation"):
        y.backward()


def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"\+=: in-place operation on a leaf tensor that "
                                           r"requires grad.*no_grad"):
        w += 1.0
    with pytest.raises(RuntimeError, match="__setitem__: in-place operation on a leaf"):
        w[0] = 3.0
    np.testing.assert_allclose(w.data, [1.0, 2.0])  # nothing was changed


def test_in_place_under_no_grad_is_fine_when_nothing_saved_it():
    w = leaf([1.0, 2.0])
    y = (w + 3.0).sum()                 # Add saves nothing
    with tl.no_grad():
        w.add_(tl.tensor([10.0, 10.0], dtype=np.float64), alpha=0.5)
    y.backward()
    np.testing.assert_allclose(w.grad, [1.0, 1.0])
    np.testing.assert_allclose(w.data, [6.0, 7.0])


# ----- retain_grad, detach, multi-output Functions -------------------------------------------
def test_retain_grad_fills_the_grad_of_a_non_leaf():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(x.grad, 2 * h.data * 3.0)


def test_a_non_leaf_without_retain_grad_has_no_grad():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    (h * h).sum().backward()
    assert h.grad is None


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = (x * 3.0).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = (x * d).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, d.data)      # d is a constant: no path through it


def test_unused_outputs_of_a_multi_output_function_get_zero_gradients():
    x = leaf(np.arange(6.0))
    first, middle, last = x.split(2)
    (middle * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 3.0, 3.0, 0.0, 0.0])


# ----- the Function extension point ----------------------------------------------------------
def test_a_backward_returning_the_wrong_shape_raises_naming_op_and_shapes():
    class SumRows(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum(axis=0)

        @staticmethod
        def backward(ctx, grad):
            return grad                 # forgot to broadcast back to x's shape

    y = SumRows.apply(leaf(np.ones((3, 2)))).sum()
    with pytest.raises(RuntimeError, match=r"SumRowsBackward returned a gradient of shape "
                                           r"\(2,\) for input 0, whose shape is \(3, 2\)"):
        y.backward()


def test_a_backward_returning_too_few_gradients_raises():
    class TwoInputs(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    y = TwoInputs.apply(leaf([1.0]), leaf([2.0])).sum()
    with pytest.raises(RuntimeError, match="TwoInputsBackward returned 1 gradients but its "
                                           "forward took 2 inputs"):
        y.backward()


class ScaledProduct(Function):
    """y = scale * a * b, written as a user would; records what it was given."""

    seen = {}

    @staticmethod
    def forward(ctx, a, b, scale=1.0):
        ScaledProduct.seen["types"] = (type(a), type(b))
        ScaledProduct.seen["needs_input_grad"] = ctx.needs_input_grad
        ctx.save_for_backward(a, b)
        ctx.scale = scale
        return scale * a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        # Returns a (wrong-shaped) value even for b: it must be ignored when b needs no grad.
        return ctx.scale * grad * b, np.full((7, 7), np.nan)


def test_function_forward_gets_arrays_and_keyword_options():
    a, b = leaf([1.0, 2.0]), tl.tensor([3.0, 4.0], dtype=np.float64)
    y = ScaledProduct.apply(a, b, scale=10.0)
    assert ScaledProduct.seen["types"] == (np.ndarray, np.ndarray)
    assert isinstance(y, tl.Tensor) and y.grad_fn is not None
    np.testing.assert_allclose(y.data, [30.0, 80.0])


def test_function_needs_input_grad_marks_which_inputs_require_grad():
    ScaledProduct.apply(leaf([1.0]), tl.tensor([2.0], dtype=np.float64))
    assert ScaledProduct.seen["needs_input_grad"] == (True, False)
    ScaledProduct.apply(tl.tensor([2.0], dtype=np.float64), leaf([1.0]))
    assert ScaledProduct.seen["needs_input_grad"] == (False, True)
    with tl.no_grad():
        ScaledProduct.apply(leaf([1.0]), leaf([2.0]))
    assert ScaledProduct.seen["needs_input_grad"] == (False, False)


def test_function_gradients_for_inputs_that_need_none_are_ignored():
    a, b = leaf([1.0, 2.0]), tl.tensor([3.0, 4.0], dtype=np.float64)
    ScaledProduct.apply(a, b, scale=10.0).sum().backward()
    np.testing.assert_allclose(a.grad, 10.0 * b.data)
    assert b.grad is None


def test_function_with_no_input_requiring_grad_records_no_graph():
    y = ScaledProduct.apply(tl.tensor([1.0]), tl.tensor([2.0]))
    assert not y.requires_grad and y.grad_fn is None


def test_detach_shares_the_version_counter_so_inplace_through_it_is_caught():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = tl.tensor([4.0, 5.0, 6.0])
    y = (x * w).sum()
    with tl.no_grad():
        w.detach().add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_view_made_by_reshape_shares_the_version_counter():
    x = tl.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    w = tl.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = (x * w.reshape(4)).sum()
    view = w.reshape(4)
    view.zero_()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_no_grad_works_as_a_decorator_without_parentheses():
    x = tl.tensor([1.0], requires_grad=True)

    @tl.no_grad
    def double(t):
        return t * 2

    assert double(x).requires_grad is False
