"""Ops that move values around without changing them: reshape, transpose, indexing, joining.

Their backward passes move the gradient back the same way: reshape it back, transpose it back,
or scatter it into the positions the forward pass read from (adding where a position was read
more than once).
"""

import numpy as np

from tinyllm.autograd import Function, Tensor, sum_to_shape
from tinyllm.ops.reduction import resolve_axis


def _shape_arg(shape):
    """Accept ``f(2, 3)`` as well as ``f((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _axis(opname, axis, ndim):
    return resolve_axis(opname, axis, False, ndim=ndim)[0][0]


class Reshape(Function):
    """y = x with a new shape (same elements, row-major order);  dL/dx = dL/dy reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return np.reshape(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return np.reshape(grad, ctx.shape), None


class Permute(Function):
    """y = x with its axes reordered (y.shape[i] = x.shape[axes[i]]);
    dL/dx = dL/dy permuted by the inverse order."""

    @staticmethod
    def forward(ctx, x, axes):
        ctx.inverse = tuple(np.argsort(axes))
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, ctx.inverse), None


class Expand(Function):
    """y = x broadcast to a larger shape (no copy);  dL/dx = dL/dy summed over the copies."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return sum_to_shape(grad, ctx.shape), None


def index_key(key):
    """An indexing key with tensors replaced by their arrays (ints, slices, None, ... pass)."""
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key.data if isinstance(key, Tensor) else key


def _is_basic(key):
    """True for keys made only of ints, slices, None and Ellipsis (no repeated positions)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))
               for k in parts)


class GetItem(Function):
    """y = x[key] with NumPy's indexing rules.

    Backward scatters dL/dy into a zero array of x's shape at the positions read. An integer
    array may read one position several times (``emb[[3, 3]]``); ``np.add.at`` then adds all
    their gradients, where plain assignment would keep only the last.
    """

    @staticmethod
    def forward(ctx, x, key):
        ctx.shape, ctx.dtype, ctx.key = x.shape, x.dtype, key
        return x[key]

    @staticmethod
    def backward(ctx, grad):
        grad_x = np.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_basic(ctx.key):
            grad_x[ctx.key] = grad
        else:
            np.add.at(grad_x, ctx.key, grad)
        return grad_x, None


class Cat(Function):
    """y = the inputs joined along ``axis``;  each input's gradient is its slice of dL/dy."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.offsets = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.offsets, axis=ctx.axis))


class Stack(Function):
    """y = the inputs stacked along a new ``axis``;  input i's gradient is dL/dy taken at i."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


class Split(Function):
    """Several outputs: consecutive pieces of x along ``axis``;
    dL/dx = the pieces' gradients joined again (zeros for pieces not used)."""

    @staticmethod
    def forward(ctx, x, sections, axis=0):
        ctx.axis = axis
        return tuple(np.split(x, np.cumsum(sections)[:-1], axis=axis))

    @staticmethod
    def backward(ctx, *grads):
        return np.concatenate(grads, axis=ctx.axis), None


class Gather(Function):
    """y[i][j][k] = x[index[i][j][k]][j][k] for axis 0 (and likewise for other axes), as
    PyTorch's ``gather``;  dL/dx = dL/dy scattered back with addition (``np.add.at``)."""

    @staticmethod
    def forward(ctx, x, positions):
        ctx.shape, ctx.dtype, ctx.positions = x.shape, x.dtype, positions
        return x[positions]

    @staticmethod
    def backward(ctx, grad):
        grad_x = np.zeros(ctx.shape, dtype=ctx.dtype)
        np.add.at(grad_x, ctx.positions, grad)
        return grad_x, None


class Triangle(Function):
    """y = x with the elements above (tril) or below (triu) the ``diagonal`` set to 0, in the
    last two axes;  dL/dx = dL/dy with the same elements set to 0."""

    @staticmethod
    def forward(ctx, x, diagonal=0, lower=True):
        ctx.diagonal, ctx.lower = diagonal, lower
        return np.tril(x, diagonal) if lower else np.triu(x, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return np.tril(grad, ctx.diagonal) if ctx.lower else np.triu(grad, ctx.diagonal)


def _infer_shape(opname, old_shape, size, shape):
    """``shape`` with a -1 entry replaced by the size that makes the element count ``size``."""
    unknown = [i for i, n in enumerate(shape) if n == -1]
    known = int(np.prod([n for n in shape if n != -1]))
    fits = len(unknown) <= 1 and all(n >= -1 for n in shape)
    if fits and unknown:
        fits = known > 0 and size % known == 0
        shape = shape[:unknown[0]] + (size // known if fits else -1,) + shape[unknown[0] + 1:]
    if not fits or int(np.prod(shape)) != size:
        raise ValueError("%s: cannot reshape a tensor of shape %s (%d elements) into shape %s"
                         % (opname, old_shape, size, shape))
    return shape


def reshape(x, *shape):
    """x with a new shape; one entry may be -1 (inferred). ``view`` is the same op."""
    shape = _infer_shape("reshape", x.shape, x.size, _shape_arg(shape))
    return Reshape.apply(x, shape)


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes start_dim..end_dim (inclusive) into one."""
    if x.ndim == 0:
        return Reshape.apply(x, (1,))
    start, end = _axis("flatten", start_dim, x.ndim), _axis("flatten", end_dim, x.ndim)
    merged = int(np.prod(x.shape[start:end + 1]))
    return Reshape.apply(x, x.shape[:start] + (merged,) + x.shape[end + 1:])


def permute(x, *axes):
    """Reorder the axes: ``x.permute(0, 2, 1)``; the output's axis i is the input's axes[i]."""
    axes = _shape_arg(axes)
    if sorted(a + x.ndim if a < 0 else a for a in axes) != list(range(x.ndim)):
        raise ValueError("permute: %s is not an ordering of the %d axes of a tensor of shape %s"
                         % (axes, x.ndim, x.shape))
    return Permute.apply(x, tuple(a % x.ndim for a in axes))


def transpose(x, axis0, axis1):
    """Swap two axes (as PyTorch's ``transpose(dim0, dim1)``)."""
    a, b = _axis("transpose", axis0, x.ndim), _axis("transpose", axis1, x.ndim)
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, tuple(axes))


def squeeze(x, axis=None, *, dim=None):
    """Remove size-1 axes (all of them, or the given ones; an axis of another size is kept,
    as in PyTorch)."""
    axes, _ = resolve_axis("squeeze", axis, False, dim, None, x.ndim)
    if axes is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1))
    return Reshape.apply(x, shape)


def unsqueeze(x, axis):
    """Insert a size-1 axis at position ``axis`` (which may be x.ndim or -1 for the end)."""
    ndim = x.ndim + 1
    if not -ndim <= axis < ndim:
        raise IndexError("unsqueeze: axis %d is out of range for a result with %d axes"
                         % (axis, ndim))
    axis %= ndim
    return Reshape.apply(x, x.shape[:axis] + (1,) + x.shape[axis:])


def broadcast_to(x, shape):
    """x repeated (without copying) to ``shape`` by NumPy's broadcasting rules."""
    shape = tuple(shape)
    try:
        np.broadcast_shapes(x.shape, shape)
        np.broadcast_to(np.empty(x.shape, dtype=np.bool_), shape)
    except ValueError:
        raise ValueError("broadcast_to: a tensor of shape %s cannot be broadcast to shape %s"
                         % (x.shape, shape)) from None
    return Expand.apply(x, shape)


def expand(x, *sizes):
    """PyTorch's ``expand``: like ``broadcast_to``, where -1 keeps that axis's size."""
    sizes = _shape_arg(sizes)
    offset = len(sizes) - x.ndim
    if offset < 0:
        raise ValueError("expand: %d sizes given for a tensor with %d axes" % (len(sizes), x.ndim))
    shape = tuple(x.shape[i - offset] if s == -1 and i >= offset else s
                  for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def getitem(x, key):
    """``x[key]`` with NumPy's rules: ints, slices, None, Ellipsis, integer and boolean arrays."""
    key = index_key(key)
    try:
        return GetItem.apply(x, key)
    except IndexError as error:
        raise IndexError("indexing a tensor of shape %s: %s" % (x.shape, error)) from None


def _join_axis(opname, tensors, axis, dim, new_axis):
    if dim is not None:
        axis = dim
    tensors = list(tensors)
    if not tensors:
        raise ValueError("%s: needs at least one tensor" % opname)
    first = tensors[0]
    ndim = first.ndim + (1 if new_axis else 0)
    axis = _axis(opname, axis, ndim)
    for t in tensors[1:]:
        same = t.shape == first.shape if new_axis else (
            t.ndim == first.ndim and all(a == b for i, (a, b) in enumerate(zip(t.shape, first.shape))
                                         if i != axis))
        if not same:
            raise ValueError("%s: shapes %s and %s do not match%s"
                             % (opname, first.shape, t.shape,
                                "" if new_axis else " outside axis %d" % axis))
    return tensors, axis


def cat(tensors, axis=0, *, dim=None):
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors, axis = _join_axis("cat", tensors, axis, dim, new_axis=False)
    return Cat.apply(*tensors, axis=axis)


concatenate = cat


def stack(tensors, axis=0, *, dim=None):
    """Join tensors of equal shape along a new axis."""
    tensors, axis = _join_axis("stack", tensors, axis, dim, new_axis=True)
    return Stack.apply(*tensors, axis=axis)


def split(x, split_size_or_sections, axis=0, *, dim=None):
    """Cut x along ``axis`` into pieces of size ``split_size`` (the last may be smaller) or of
    the listed sizes, as PyTorch's ``split``; returns a tuple of tensors."""
    if dim is not None:
        axis = dim
    axis = _axis("split", axis, x.ndim)
    length = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError("split: split_size must be positive, got %d" % size)
        sections = [size] * (length // size) + ([length % size] if length % size else [])
    else:
        sections = [int(s) for s in split_size_or_sections]
        if sum(sections) != length:
            raise ValueError("split: sections %s add up to %d, but axis %d has size %d"
                             % (sections, sum(sections), axis, length))
    pieces = Split.apply(x, sections, axis=axis)
    return pieces if isinstance(pieces, tuple) else (pieces,)


def gather(x, axis, index):
    """PyTorch's ``gather``: along ``axis`` pick the elements that ``index`` names.

    ``index`` has as many axes as x; along other axes its sizes may not exceed x's.
    out[i][j] = x[index[i][j]][j] (axis 0), out[i][j] = x[i][index[i][j]] (axis 1).
    """
    index = index.data if isinstance(index, Tensor) else np.asarray(index)
    axis = _axis("gather", axis, x.ndim)
    if index.dtype.kind not in "iu":
        raise TypeError("gather: index must be an integer tensor, got dtype %s" % index.dtype)
    if index.ndim != x.ndim or any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape))
                                   if d != axis):
        raise ValueError("gather: index of shape %s does not fit a tensor of shape %s along "
                         "axis %d" % (index.shape, x.shape, axis))
    if index.size and (index.min() < -x.shape[axis] or index.max() >= x.shape[axis]):
        raise IndexError("gather: index values must lie in [0, %d) for axis %d, got min %d "
                         "and max %d" % (x.shape[axis], axis, index.min(), index.max()))
    positions = tuple(index if d == axis else
                      np.arange(n).reshape([-1 if e == d else 1 for e in range(x.ndim)])
                      for d, n in enumerate(index.shape))
    return Gather.apply(x, positions)


def tril(x, diagonal=0):
    """Lower triangle of the last two axes (elements above ``diagonal`` set to 0)."""
    return Triangle.apply(x, diagonal=diagonal, lower=True)


def triu(x, diagonal=0):
    """Upper triangle of the last two axes (elements below ``diagonal`` set to 0)."""
    return Triangle.apply(x, diagonal=diagonal, lower=False)
