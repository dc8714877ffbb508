"""Step tensor_ops (chapters 1-2): matmul, reductions, reshaping, indexing, masking, stacking.

These ops move or combine elements instead of acting on each one alone, so each backward
answers one question: which output elements did each input element reach? Its gradient is the
sum of the upstream gradients of those outputs.
"""

import numpy as np

from mytl.autograd import Function, Tensor, unbroadcast


def _normalize_axes(name, axis, ndim):
    """``axis`` (None, an int or a tuple; negative counts from the end) as a sorted tuple of
    axes in [0, ndim). Raises ValueError naming the op for an axis out of range or repeated."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    normalized = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError("%s: axis %d is out of range for a tensor of %d dimensions"
                             % (name, a, ndim))
        normalized.append(a % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError("%s: axis %s repeats an axis" % (name, axis))
    return tuple(sorted(normalized))


# ----- matmul ----------------------------------------------------------------------------------
class MatMul(Function):
    """y = a @ b: a (..., n, k), b (..., k, m) -> y (..., n, m), the batch axes broadcast.

    dL/da = g @ b^T and dL/db = a^T @ g (^T swaps the last two axes), each summed back to its
    input's shape over the batch axes that broadcasting added or stretched.
    """

    @staticmethod
    def forward(ctx, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("matmul: shapes %s and %s: both inputs need at least 2 dimensions"
                             % (a.shape, b.shape))
        if a.shape[-1] != b.shape[-2]:
            raise ValueError("matmul: shapes %s and %s do not align: %d != %d"
                             % (a.shape, b.shape, a.shape[-1], b.shape[-2]))
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError("matmul: shapes %s and %s: the batch axes do not broadcast"
                             % (a.shape, b.shape)) from None
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad @ np.swapaxes(b, -1, -2)
        grad_b = np.swapaxes(a, -1, -2) @ grad
        return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)


# ----- reductions ------------------------------------------------------------------------------
class Sum(Function):
    """y = sum of x over ``axis`` (None: every axis; an int or a tuple; negative allowed).

    With keepdims=False the summed axes are dropped. Every x element reaches one y element
    with weight 1: dL/dx = g, with the summed axes put back, broadcast to x's shape.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        x = np.asarray(x)
        ctx.shape = x.shape
        ctx.axes = _normalize_axes("sum", axis, x.ndim)
        ctx.keepdims = keepdims
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        return np.broadcast_to(grad, ctx.shape)


class Mean(Function):
    """y = mean of x over ``axis`` (as in Sum): the sum divided by the number of elements
    averaged, n = the product of the sizes of the reduced axes. dL/dx = g / n, broadcast."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        x = np.asarray(x)
        ctx.shape = x.shape
        ctx.axes = _normalize_axes("mean", axis, x.ndim)
        ctx.keepdims = keepdims
        ctx.count = int(np.prod([x.shape[a] for a in ctx.axes]))
        return np.mean(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        return np.broadcast_to(grad / ctx.count, ctx.shape)


# ----- moving elements -------------------------------------------------------------------------
class Reshape(Function):
    """y = x with the same elements in a new shape (one axis may be -1). dL/dx = g reshaped
    to x's shape."""

    @staticmethod
    def forward(ctx, x, shape):
        x = np.asarray(x)
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError("reshape: cannot reshape a tensor of shape %s (%d elements) to %s"
                             % (x.shape, x.size, shape)) from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Transpose(Function):
    """y = x with its axes permuted: y.shape[i] = x.shape[axes[i]] (axes None: reversed).

    dL/dx = g with the inverse permutation (the one that puts each axis back).
    """

    @staticmethod
    def forward(ctx, x, axes=None):
        x = np.asarray(x)
        if axes is None:
            axes = tuple(reversed(range(x.ndim)))
        axes = tuple(int(a) % x.ndim if -x.ndim <= int(a) < x.ndim else -1 for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError("transpose: axes %s are not a permutation of the %d axes of a "
                             "tensor of shape %s" % (axes, x.ndim, x.shape))
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, np.argsort(ctx.axes))


def _plain_index(index):
    """The index with any Tensor in it replaced by its array."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _is_basic(index):
    """True for an index of ints, slices, None, Ellipsis or boolean masks: it reaches each
    element of x at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis)))
               or (isinstance(i, np.ndarray) and i.dtype == bool) for i in parts)


class GetItem(Function):
    """y = x[index]: ints, slices, boolean masks and integer arrays, as in NumPy.

    ``GetItem.apply(x, index=idx)``. An integer array may name the same element twice
    (x[[0, 0, 2]]); that element then reaches two outputs and its gradient is the sum of both.
    """

    @staticmethod
    def forward(ctx, x, index):
        x = np.asarray(x)
        index = _plain_index(index)
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        grad_x = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_basic(ctx.index):
            grad_x[ctx.index] = grad        # no element is picked twice: assigning is adding
        else:
            np.add.at(grad_x, ctx.index, grad)
        return grad_x


class MaskedFill(Function):
    """y = x where mask is False, ``value`` where mask is True (mask boolean, broadcastable
    to x's shape). ``MaskedFill.apply(x, mask=mask, value=value)``.

    The filled elements do not depend on x: no gradient reaches x there.
    """

    @staticmethod
    def forward(ctx, x, mask, value):
        x = np.asarray(x)
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if mask.dtype != bool:
            raise TypeError("masked_fill: the mask must be boolean, got dtype %s" % mask.dtype)
        try:
            shape = np.broadcast_shapes(mask.shape, x.shape)
        except ValueError:
            shape = None
        if shape != x.shape:
            raise ValueError("masked_fill: a mask of shape %s does not broadcast to the shape "
                             "%s of x" % (mask.shape, x.shape))
        ctx.mask = mask
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.mask, 0, grad)


class Stack(Function):
    """y = the inputs (all of one shape) stacked along a new axis ``axis``:
    y.shape = shape[:axis] + (number of inputs,) + shape[axis:].

    ``Stack.apply(*tensors, axis=axis)``; backward returns one gradient per input.
    """

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if not arrays:
            raise ValueError("stack: needs at least one tensor")
        arrays = [np.asarray(a) for a in arrays]
        for a in arrays[1:]:
            if a.shape != arrays[0].shape:
                raise ValueError("stack: every tensor needs the same shape, got %s and %s"
                                 % (arrays[0].shape, a.shape))
        ndim = arrays[0].ndim + 1
        if not -ndim <= axis < ndim:
            raise ValueError("stack: axis %d is out of range for the %d axes of the result"
                             % (axis, ndim))
        ctx.axis = axis % ndim
        return np.stack(arrays, axis=ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


# ----- the functions the Tensor operators call -------------------------------------------------
def matmul(a, b):
    return MatMul.apply(a, b)


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def reshape(x, shape):
    return Reshape.apply(x, shape=shape)


def transpose(x, axes=None):
    return Transpose.apply(x, axes=axes)


def getitem(x, index):
    return GetItem.apply(x, index=index)


def masked_fill(x, mask, value):
    return MaskedFill.apply(x, mask=mask, value=value)


def stack(tensors, axis=0):
    return Stack.apply(*tensors, axis=axis)
