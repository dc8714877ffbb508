"""Reductions (sum, mean, max, min, var) and the softmax family.

Axes follow NumPy (``axis=``, ``keepdims=``); PyTorch's ``dim=`` and ``keepdim=`` are accepted
as aliases. The backward of a reduction first puts the reduced axes back as size-1 axes
(``_restore_axes``) so the upstream gradient broadcasts over the elements that were reduced.
"""

import numpy as np

from tinyllm.autograd import Function, Tensor


def resolve_axis(opname, axis, keepdims, dim=None, keepdim=None, ndim=None):
    """Merge NumPy's ``axis``/``keepdims`` with PyTorch's ``dim``/``keepdim``; normalise the axes.

    Returns (axes as a sorted tuple of non-negative ints, or None for all; keepdims).
    """
    if dim is not None:
        if axis is not None:
            raise TypeError("%s: give axis= or dim=, not both" % opname)
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    if axis is None:
        return None, bool(keepdims)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if ndim is not None:
        normalised = []
        bound = ndim if ndim > 0 else 1     # (not max(): this module defines its own max)
        for a in axes:
            if not -bound <= a < bound:
                raise IndexError("%s: axis %d is out of range for a tensor with %d axes"
                                 % (opname, a, ndim))
            normalised.append(a % bound)
        axes = tuple(sorted(set(normalised)))
    return axes, bool(keepdims)


def _restore_axes(grad, shape, axes, keepdims):
    """Reshape a reduced gradient so that it broadcasts against the input's ``shape``."""
    if axes is None:
        return np.reshape(grad, (1,) * len(shape))
    if not keepdims:
        grad = np.expand_dims(grad, axes)
    return grad


class Sum(Function):
    """y = sum of x over ``axes``;  dL/dx = dL/dy broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, x, axes=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return np.sum(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_axes(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad, ctx.shape).copy()


class Mean(Function):
    """y = mean of x over ``axes`` (N elements each);  dL/dx = dL/dy / N, broadcast back."""

    @staticmethod
    def forward(ctx, x, axes=None, keepdims=False):
        y = np.mean(x, axis=axes, keepdims=keepdims)
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        ctx.count = x.size // y.size if y.size else 1
        return y

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_axes(grad, ctx.shape, ctx.axes, ctx.keepdims) / ctx.count
        return np.broadcast_to(grad, ctx.shape).astype(grad.dtype)


class Extreme(Function):
    """y = max (or min) of x over ``axes``.

    The gradient goes to the elements equal to the extreme; when several tie, they share it
    equally (as PyTorch's ``amax``), so the total gradient is conserved.
    """

    @staticmethod
    def forward(ctx, x, axes=None, keepdims=False, largest=True):
        y = (np.max if largest else np.min)(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes) if axes is not None else y.reshape(())

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        grad = _restore_axes(grad, x.shape, ctx.axes, ctx.keepdims)
        winners = (x == y)
        count = np.sum(winners, axis=ctx.axes, keepdims=True)
        return grad * winners / count


class Var(Function):
    """y = sum((x - mean)^2) / (N - correction) over ``axes``;
    dL/dx = dL/dy * 2 (x - mean) / (N - correction)."""

    @staticmethod
    def forward(ctx, x, axes=None, keepdims=False, correction=1):
        mean = np.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        n = x.size // mean.size if mean.size else 0
        ctx.save_for_backward(centered)
        ctx.axes, ctx.keepdims, ctx.divisor = axes, keepdims, n - correction
        return np.sum(centered * centered, axis=axes, keepdims=keepdims) / ctx.divisor

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        grad = _restore_axes(grad, centered.shape, ctx.axes, ctx.keepdims)
        return grad * 2 * centered / ctx.divisor


class Softmax(Function):
    """y_i = exp(x_i - m) / sum_j exp(x_j - m) along ``axis`` (m = max, for stability).

    Backward (the softmax Jacobian is diag(y) - y y^T):
    dL/dx = y * (g - sum(g * y))  with g = dL/dy, the sum along ``axis``.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        y = e / np.sum(e, axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        gx = y * grad
        gx -= y * np.sum(gx, axis=ctx.axis, keepdims=True)
        return gx


class LogSoftmax(Function):
    """y_i = x_i - logsumexp(x) along ``axis``;  dL/dx = g - softmax(x) * sum(g)."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        y = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad - np.exp(y) * np.sum(grad, axis=ctx.axis, keepdims=True)


class LogSumExp(Function):
    """y = log sum_i exp(x_i) = m + log sum_i exp(x_i - m), m = max;  dL/dx = dL/dy * softmax(x)."""

    @staticmethod
    def forward(ctx, x, axes=None, keepdims=False):
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)          # all -inf along an axis: keep -inf, no NaN
        y = m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdims = axes, keepdims
        if keepdims:
            return y
        return np.squeeze(y, axis=axes) if axes is not None else y.reshape(())

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        grad = _restore_axes(grad, x.shape, ctx.axes, ctx.keepdims)
        return grad * np.exp(x - y)


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    axes, keepdims = resolve_axis("sum", axis, keepdims, dim, keepdim, x.ndim)
    return Sum.apply(x, axes=axes, keepdims=keepdims)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Mean over ``axis`` (an int, a tuple, or None for all)."""
    axes, keepdims = resolve_axis("mean", axis, keepdims, dim, keepdim, x.ndim)
    return Mean.apply(x, axes=axes, keepdims=keepdims)


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Largest value over ``axis`` (values only; see ``argmax`` for positions)."""
    axes, keepdims = resolve_axis("max", axis, keepdims, dim, keepdim, x.ndim)
    _check_nonempty("max", x, axes)
    return Extreme.apply(x, axes=axes, keepdims=keepdims, largest=True)


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Smallest value over ``axis`` (values only; see ``argmin`` for positions)."""
    axes, keepdims = resolve_axis("min", axis, keepdims, dim, keepdim, x.ndim)
    _check_nonempty("min", x, axes)
    return Extreme.apply(x, axes=axes, keepdims=keepdims, largest=False)


def _check_nonempty(opname, x, axes):
    if x.size == 0:
        raise ValueError("%s: the tensor of shape %s is empty" % (opname, x.shape))


def var(x, axis=None, keepdims=False, *, correction=1, dim=None, keepdim=None, ddof=None,
        unbiased=None):
    """Variance over ``axis``, divided by N - correction.

    ``correction=1`` (the default, as in PyTorch) is the unbiased sample variance; pass
    ``correction=0`` (or NumPy's ``ddof=0``, or ``unbiased=False``) for the population variance
    that layer norm uses.
    """
    if ddof is not None:
        correction = ddof
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes, keepdims = resolve_axis("var", axis, keepdims, dim, keepdim, x.ndim)
    return Var.apply(x, axes=axes, keepdims=keepdims, correction=correction)


def _single_axis(opname, axis, dim, ndim):
    if dim is not None:         # PyTorch's spelling replaces the default axis=-1
        axis, dim = dim, None
    axes, _ = resolve_axis(opname, axis, False, dim, None, ndim)
    if axes is None or len(axes) != 1:
        raise TypeError("%s: needs exactly one axis, got %r" % (opname, axis))
    return axes[0]


def softmax(x, axis=-1, *, dim=None):
    """Softmax along one axis (default: the last)."""
    return Softmax.apply(x, axis=_single_axis("softmax", axis, dim, x.ndim))


def log_softmax(x, axis=-1, *, dim=None):
    """log(softmax(x)) along one axis, computed stably as x - logsumexp(x)."""
    return LogSoftmax.apply(x, axis=_single_axis("log_softmax", axis, dim, x.ndim))


def logsumexp(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """log(sum(exp(x))) over ``axis``, computed without overflow."""
    axes, keepdims = resolve_axis("logsumexp", axis, keepdims, dim, keepdim, x.ndim)
    return LogSumExp.apply(x, axes=axes, keepdims=keepdims)


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the largest value (an int64 tensor; not differentiable)."""
    axes, keepdims = resolve_axis("argmax", axis, keepdims, dim, keepdim, x.ndim)
    axis = None if axes is None else _single_axis("argmax", axes, None, x.ndim)
    return Tensor._wrap(np.asarray(np.argmax(x.data, axis=axis, keepdims=keepdims)))


def argmin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the smallest value (an int64 tensor; not differentiable)."""
    axes, keepdims = resolve_axis("argmin", axis, keepdims, dim, keepdim, x.ndim)
    axis = None if axes is None else _single_axis("argmin", axes, None, x.ndim)
    return Tensor._wrap(np.asarray(np.argmin(x.data, axis=axis, keepdims=keepdims)))
