"""Step tensor_ops (chapters 1-2): matmul, reductions, reshaping, indexing, masking, stacking.

These ops move or combine elements instead of acting on each one alone. Each is a
``Function`` on NumPy arrays: ``forward(ctx, ...)`` returns the output array, ``backward(ctx,
grad)`` returns dL/d(input) for each positional input (each of its input's shape), given
grad = dL/dy. Options (``axis=``, ``index=``) are keyword arguments of ``apply`` and are not
differentiated.

The Tensor methods (``a @ b``, ``x.sum(axis)``, ``x.T``, ``x[i]``) call the functions at the
bottom of this file.
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


def _plain_index(index):
    """The index with any Tensor in it replaced by its array."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _is_basic(index):
    """True for an index of ints, slices, None, Ellipsis or boolean masks: it reaches each
    element of x at most once. (An integer array may reach an element several times.)"""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis)))
               or (isinstance(i, np.ndarray) and i.dtype == bool) for i in parts)


# ----- matmul ----------------------------------------------------------------------------------
class MatMul(Function):
    """y = a @ b: a (..., n, k), b (..., k, m) -> y (..., n, m), y[..., i, j] =
    sum_l a[..., i, l] b[..., l, j]. The batch axes (...) broadcast as in NumPy:
    (2, 1, 3, 4) @ (5, 4, 2) -> (2, 5, 3, 2).

    Errors (ValueError naming ``matmul`` and both shapes), checked before multiplying:
    an input with fewer than 2 axes; inner sizes that differ
    (``matmul: shapes (4, 3) and (5, 2) do not align: 3 != 5``); batch axes that do not
    broadcast.
    """

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


# ----- reductions ------------------------------------------------------------------------------
class Sum(Function):
    """y = the sum of x over ``axis``: None (every axis), an int or a tuple of ints, negative
    ones counting from the end (``_normalize_axes`` does the bookkeeping). With
    keepdims=False the summed axes are dropped ((2, 3, 4) over axis 1 -> (2, 4)); with
    keepdims=True they stay with size 1 (-> (2, 1, 4)).
    ``Sum.apply(x, axis=axis, keepdims=keepdims)``.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Mean(Function):
    """y = the mean of x over ``axis`` (axis and keepdims as in Sum): the sum divided by the
    number of elements averaged, n = the product of the sizes of the reduced axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


# ----- moving elements -------------------------------------------------------------------------
class Reshape(Function):
    """y = x's elements, in the same order, in a new shape (one size may be -1).
    ``Reshape.apply(x, shape=shape)``."""

    @staticmethod
    def forward(ctx, x, shape):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Transpose(Function):
    """y = x with its axes permuted: y's axis i is x's axis axes[i], as np.transpose
    (axes None: all axes reversed; negative axes count from the end).
    ``Transpose.apply(x, axes=axes)``. (2, 3, 4) with axes (1, 2, 0) -> (3, 4, 2).

    Axes that are not a permutation of x's axes: ValueError naming ``transpose``.
    """

    @staticmethod
    def forward(ctx, x, axes=None):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class GetItem(Function):
    """y = x[index], as in NumPy: ints, slices, boolean masks, integer arrays and tuples of
    them. ``GetItem.apply(x, index=index)`` (``_plain_index`` turns Tensors in the index
    into arrays).

    An integer array may pick the same element several times (x[[0, 0, 2]]); each pick is a
    use of that element, and its gradient is the sum over its uses.
    """

    @staticmethod
    def forward(ctx, x, index):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class MaskedFill(Function):
    """y = ``value`` where mask is True, x where it is False; y has x's shape and dtype.
    ``MaskedFill.apply(x, mask=mask, value=value)``: mask is a boolean array (or Tensor)
    that broadcasts to x's shape, e.g. a (T, T) causal mask on scores (B, T, T).

    Errors: a mask that is not boolean, TypeError; a mask that does not broadcast to x's
    shape, ValueError naming ``masked_fill`` and both shapes.
    """

    @staticmethod
    def forward(ctx, x, mask, value):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Stack(Function):
    """y = the inputs, all of one shape, stacked along a new axis ``axis`` (negative counts
    from the end of y's axes): y.shape = shape[:axis] + (number of inputs,) + shape[axis:],
    as np.stack. ``Stack.apply(*tensors, axis=axis)``; backward returns a tuple with one
    gradient per input.

    Inputs of different shapes: ValueError naming ``stack`` and the shapes.
    """

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


# ----- the functions the Tensor operators call (written for you) -------------------------------
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
