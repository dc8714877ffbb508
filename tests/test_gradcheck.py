"""tinyllm.gradcheck, numerical_grad and rel_error: correct backwards pass, planted wrong
backwards are caught with a message that says where and by how much."""

import re

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.autograd import Function, sum_to_shape


def leaf(shape, seed=0, dtype=np.float64):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tl.tensor(data, requires_grad=True, dtype=dtype)


def reported(error):
    """(input index, worst index, analytic, numerical, relative error) from the message."""
    match = re.search(r"input (\d+) \(shape .*?\): at index (\(.*?\)) the analytic gradient is "
                      r"(\S+) but the numerical one is (\S+) \(relative error (\S+?);",
                      str(error))
    assert match, str(error)
    index, worst, analytic, numerical, relative = match.groups()
    return int(index), eval(worst), float(analytic), float(numerical), float(relative)


# ----- planted wrong backwards ---------------------------------------------------------------
class SinWrongSign(Function):
    """y = sin x with dy/dx = -cos x (wrong: the sign)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * np.cos(x)


class AddNoReduction(Function):
    """y = a + b with broadcasting, but b's gradient is not summed back to b's shape."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class MatMulTransposed(Function):
    """y = a @ b with dL/da = g @ b (wrong: should be g @ b^T) and dL/db = a^T @ g."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad @ b, a.T @ grad


class SquareHalfGrad(Function):
    """y = x^2 with dy/dx = x (wrong: off by a factor of 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x


class MulOneWrongElement(Function):
    """y = a * b; b's gradient is right except at position (1, 2), which is 0.5 too large."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_b = grad * a
        grad_b[1, 2] += 0.5
        return grad * b, grad_b


class Sin(Function):
    """y = sin x, correct."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.cos(x)


class BroadcastMul(Function):
    """y = a * b with broadcasting, correct."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return sum_to_shape(grad * b, a.shape), sum_to_shape(grad * a, b.shape)


# ----- correct ops pass ----------------------------------------------------------------------
@pytest.mark.parametrize("fn, shapes", [
    (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    (lambda a, b: (a * b + a).tanh(), [(2, 3), (3,)]),
    (lambda a, b: a / (b * b + 1.0), [(2, 1, 3), (4, 1)]),
    (lambda a: a.softmax(axis=-1), [(3, 5)]),
    (lambda a: a.sum(axis=0, keepdims=True).exp(), [(3, 2)]),
    (lambda a: Sin.apply(a), [(4,)]),
    (lambda a, b: BroadcastMul.apply(a, b), [(2, 3), (1, 3)]),
])
def test_gradcheck_returns_true_for_correct_ops(fn, shapes):
    inputs = [leaf(shape, seed=k) for k, shape in enumerate(shapes)]
    assert tl.gradcheck(fn, inputs) is True


def test_gradcheck_checks_only_inputs_that_require_grad():
    a = leaf((2, 3))
    constant = tl.tensor(np.ones((2, 3)), dtype=np.float64)
    assert tl.gradcheck(lambda a, c: a * c, [a, constant])


# ----- wrong backwards are caught ------------------------------------------------------------
def test_a_sign_error_is_caught():
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(lambda x: SinWrongSign.apply(x), [leaf((3, 2))])
    index, worst, analytic, numerical, relative = reported(info.value)
    assert index == 0 and len(worst) == 2
    assert analytic == pytest.approx(-numerical, rel=1e-6)
    assert relative == pytest.approx(1.0, rel=1e-3)


def test_a_missing_broadcast_reduction_is_caught():
    a, b = leaf((2, 3)), leaf((3,), seed=1)
    with pytest.raises(tl.GradcheckError, match=r"backward pass raised RuntimeError: "
                                                r"AddNoReductionBackward returned a gradient of "
                                                r"shape \(2, 3\) for input 1, whose shape is "
                                                r"\(3,\)"):
        tl.gradcheck(lambda a, b: AddNoReduction.apply(a, b), [a, b])


def test_a_transposed_matmul_gradient_on_square_matrices_is_caught():
    a, b = leaf((3, 3)), leaf((3, 3), seed=1)
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(lambda a, b: MatMulTransposed.apply(a, b), [a, b])
    index, worst, analytic, numerical, relative = reported(info.value)
    assert index == 0 and len(worst) == 2
    assert relative > 1e-3


def test_a_gradient_off_by_a_factor_of_two_is_caught():
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(lambda x: SquareHalfGrad.apply(x), [leaf((4,))])
    index, worst, analytic, numerical, relative = reported(info.value)
    assert index == 0
    assert analytic == pytest.approx(numerical / 2, rel=1e-6)
    assert relative == pytest.approx(1 / 3, rel=2e-3)        # |n/2 - n| / (n/2 + n), 3 digits


def test_a_wrong_gradient_at_one_element_is_caught_and_located():
    a, b = leaf((3, 4)), leaf((3, 4), seed=1)
    with pytest.raises(tl.GradcheckError, match="1 of 12 elements") as info:
        tl.gradcheck(lambda a, b: MulOneWrongElement.apply(a, b), [a, b])
    index, worst, analytic, numerical, relative = reported(info.value)
    assert (index, worst) == (1, (1, 2))
    assert analytic - numerical == pytest.approx(0.5, abs=1e-6)
    assert relative == pytest.approx(tl.rel_error(analytic, numerical), rel=1e-2)


def test_raise_exception_false_returns_false():
    assert tl.gradcheck(lambda x: SinWrongSign.apply(x), [leaf((3,))],
                        raise_exception=False) is False


def test_a_non_finite_numerical_gradient_fails_the_check():
    class NaNPastTen(Function):
        """y = 2x for |x| < 10 and NaN beyond, with dy/dx = 2."""

        @staticmethod
        def forward(ctx, x):
            return np.where(np.abs(x) < 10, 2 * x, np.nan)

        @staticmethod
        def backward(ctx, grad):
            return 2 * grad

    x = tl.tensor([10 - 1e-7], requires_grad=True, dtype=np.float64)
    assert tl.gradcheck(lambda x: NaNPastTen.apply(x), [x], raise_exception=False) is False


def test_a_wrong_output_of_a_tuple_returning_fn_is_caught():
    x = leaf((3,))
    assert tl.gradcheck(lambda x: (x.exp(), Sin.apply(x) * 2.0), [x])
    with pytest.raises(tl.GradcheckError, match="input 0"):
        tl.gradcheck(lambda x: (x.exp(), SinWrongSign.apply(x)), [x])


# ----- sampled mode --------------------------------------------------------------------------
def test_sampled_mode_passes_a_correct_op_on_a_large_input():
    x = leaf((100, 300))
    assert tl.gradcheck(lambda x: Sin.apply(x).sum(axis=1), [x], n_samples=20)


def test_sampled_mode_catches_an_op_wrong_everywhere():
    x = leaf((100, 300))
    with pytest.raises(tl.GradcheckError, match=r"input 0 \(shape \(100, 300\)\)"):
        tl.gradcheck(lambda x: SinWrongSign.apply(x), [x], n_samples=20)


def test_sampled_mode_evaluates_the_function_only_at_the_samples():
    calls = []

    def fn(x):
        calls.append(1)
        return x.tanh()

    tl.gradcheck(fn, [leaf((50, 40))], n_samples=7)
    # one forward for the output shape, one for the backward, two per sampled element
    assert len(calls) == 2 + 2 * 7


# ----- numerical_grad and rel_error ----------------------------------------------------------
def test_numerical_grad_of_sum_of_squares_is_2x():
    x = leaf((3, 4))
    grad = tl.numerical_grad(lambda t: (t ** 2).sum(), x)
    np.testing.assert_allclose(grad, 2 * x.data, rtol=0, atol=1e-8)


def test_numerical_grad_of_a_non_scalar_output_uses_grad_output():
    x = np.array([1.0, -2.0, 3.0])
    g = np.array([0.5, 2.0, -1.0])
    grad = tl.numerical_grad(lambda t: t ** 2, x, grad_output=g)
    np.testing.assert_allclose(grad, 2 * x * g, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])      # restored after perturbing


def test_numerical_grad_of_a_non_scalar_output_without_grad_output_raises():
    with pytest.raises(ValueError, match=r"returned shape \(3,\); pass grad_output"):
        tl.numerical_grad(lambda t: t * 2.0, np.ones(3))


def test_numerical_grad_with_indices_fills_only_those_elements():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    grad = tl.numerical_grad(lambda t: (t ** 3).sum(), x, indices=[1, 3])
    np.testing.assert_allclose(grad, [0.0, 12.0, 0.0, 48.0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("a, b, expected", [
    (1.0, 1.0, 0.0),
    (1.0, 3.0, 2.0 / 4.0),
    (-1.0, 1.0, 1.0),
    ([1.0, 2.0], [1.0, 1.0], 1.0 / 3.0),       # the largest over the elements
    ([0.0, 0.0], [0.0, 0.0], 0.0),             # 0 / max(1e-8, 0)
    (1e-9, 0.0, 1e-9 / 1e-8),                  # tiny values: the 1e-8 floor
])
def test_rel_error_is_the_cs231n_definition(a, b, expected):
    assert tl.rel_error(a, b) == pytest.approx(expected, rel=1e-12)


# ----- inputs and dtypes ---------------------------------------------------------------------
def test_gradcheck_runs_float32_inputs_in_float64_and_leaves_them_alone():
    x = tl.tensor([0.5, -1.0, 2.0], requires_grad=True)
    assert x.dtype == np.float32
    x.grad = np.array([7.0, 7.0, 7.0], dtype=np.float32)
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return t.tanh() * t

    assert tl.gradcheck(fn, [x])
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.data, np.array([0.5, -1.0, 2.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad, [7.0, 7.0, 7.0])


def test_gradcheck_accepts_a_single_tensor_as_inputs():
    assert tl.gradcheck(lambda x: x.exp(), leaf((2, 2)))


def test_gradcheck_with_no_input_requiring_grad_raises():
    x = tl.tensor([1.0, 2.0], dtype=np.float64)
    with pytest.raises(ValueError, match="no input requires grad"):
        tl.gradcheck(lambda x: x * 2.0, [x])


def test_verbose_prints_the_relative_error_of_each_input(capsys):
    tl.gradcheck(lambda a, b: a * b, [leaf((2,)), leaf((2,), seed=1)], verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["input 0 (2,)", "input 1 (2,)"]
    assert all(float(line.split()[-1]) < 1e-6 for line in lines)


class _WrongWeightGrad(Function):
    """y = x * w with the weight's gradient off by a factor of 2."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad * w, 2 * (grad * x).sum(axis=0)


def _scale_module(function):
    import tinyllm.nn as nn

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(tl.randn(3))

        def forward(self, x):
            return function(x, self.weight)

    return Scale()


def test_gradcheck_module_passes_for_a_correct_module_and_converts_it_to_float64():
    module = _scale_module(lambda x, w: x * w)
    x = tl.randn(4, 3, requires_grad=True)
    assert tl.gradcheck_module(module, lambda: module(x), (x,), atol=1e-8, rtol=1e-7)
    assert module.weight.dtype == np.float64 and x.dtype == np.float64


def test_gradcheck_module_names_the_parameter_with_a_wrong_gradient():
    module = _scale_module(_WrongWeightGrad.apply)
    x = tl.randn(4, 3)
    with pytest.raises(tl.GradcheckError, match="gradcheck failed for weight"):
        tl.gradcheck_module(module, lambda: module(x))
