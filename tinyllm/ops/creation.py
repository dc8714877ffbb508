"""Factory functions: new leaf tensors filled with constants, ranges or random numbers.

Float results take the default dtype (``set_default_dtype``) unless ``dtype=`` is given.
Random ones draw from ``tinyllm.random``'s generator (``tinyllm.manual_seed``) unless given a
``generator=`` (a ``numpy.random.Generator``).
"""

import numpy as np

from tinyllm import random
from tinyllm.autograd import Tensor, get_default_dtype
from tinyllm.ops.shape import _shape_arg


def _leaf(array, dtype, requires_grad, float_default=True):
    if dtype is None and float_default:
        dtype = get_default_dtype()
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    t = Tensor._wrap(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*shape, dtype=None, requires_grad=False):
    # made in its final dtype: np.zeros then maps zero pages lazily instead of writing them
    return _leaf(np.zeros(_shape_arg(shape), dtype=dtype or get_default_dtype()), dtype,
                 requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    return _leaf(np.ones(_shape_arg(shape)), dtype, requires_grad)


def empty(*shape, dtype=None, requires_grad=False):
    """Uninitialised values (whatever was in memory): fill them before reading."""
    return _leaf(np.empty(_shape_arg(shape), dtype=dtype or get_default_dtype()), None,
                 requires_grad, float_default=False)


def full(shape, fill_value, dtype=None, requires_grad=False):
    """A tensor of ``shape`` filled with ``fill_value`` (an int value gives int64)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    array = np.full(shape, fill_value)
    return _leaf(array, dtype, requires_grad, float_default=array.dtype.kind == "f")


def eye(n, m=None, dtype=None, requires_grad=False):
    return _leaf(np.eye(n, m), dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """``[start, start + step, ...)`` below ``end``; integers give int64 (as in PyTorch)."""
    if end is None:
        start, end = 0, start
    array = np.arange(start, end, step)
    return _leaf(array, dtype, requires_grad, float_default=array.dtype.kind == "f")


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _leaf(np.linspace(start, end, steps), dtype, requires_grad)


def _rng(generator):
    return random.default_generator() if generator is None else generator


def randn(*shape, dtype=None, requires_grad=False, generator=None):
    """Samples of the standard normal distribution N(0, 1)."""
    return _leaf(_rng(generator).standard_normal(_shape_arg(shape)), dtype, requires_grad)


def rand(*shape, dtype=None, requires_grad=False, generator=None):
    """Samples of the uniform distribution on [0, 1)."""
    return _leaf(_rng(generator).random(_shape_arg(shape)), dtype, requires_grad)


def randint(low, high=None, size=(), dtype=None, generator=None):
    """Integers uniform in [low, high) (or [0, low) when high is None), int64 by default."""
    if high is None:
        low, high = 0, low
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    array = _rng(generator).integers(low, high, size=size, dtype=np.int64)
    return _leaf(array, dtype, False, float_default=False)


def randperm(n, generator=None):
    """A random ordering of 0 .. n-1 (int64)."""
    return Tensor._wrap(_rng(generator).permutation(n).astype(np.int64))


def _like(x, dtype):
    return x.dtype if dtype is None else dtype


def zeros_like(x, dtype=None, requires_grad=False):
    return _leaf(np.zeros(x.shape), _like(x, dtype), requires_grad)


def ones_like(x, dtype=None, requires_grad=False):
    return _leaf(np.ones(x.shape), _like(x, dtype), requires_grad)


def empty_like(x, dtype=None, requires_grad=False):
    return _leaf(np.empty(x.shape, dtype=_like(x, dtype)), None, requires_grad,
                 float_default=False)


def full_like(x, fill_value, dtype=None, requires_grad=False):
    return _leaf(np.full(x.shape, fill_value), _like(x, dtype), requires_grad)


def randn_like(x, dtype=None, requires_grad=False, generator=None):
    return _leaf(_rng(generator).standard_normal(x.shape), _like(x, dtype), requires_grad)


def rand_like(x, dtype=None, requires_grad=False, generator=None):
    return _leaf(_rng(generator).random(x.shape), _like(x, dtype), requires_grad)


def one_hot(indices, num_classes=-1):
    """Row i of the result is all zeros except a 1 at ``indices[i]``: shape (..., num_classes),
    int64 (as PyTorch's ``F.one_hot``). ``num_classes=-1`` means max(indices) + 1."""
    data = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if data.dtype.kind not in "iu":
        raise TypeError("one_hot: indices must be integers, got dtype %s" % data.dtype)
    if num_classes == -1:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        raise ValueError("one_hot: class indices must lie in [0, %d), got min %d and max %d"
                         % (num_classes, data.min(), data.max()))
    return Tensor._wrap((data[..., None] == np.arange(num_classes)).astype(np.int64))


def tril_mask(n, m=None, diagonal=0):
    """Boolean (n, m) matrix, True on and below ``diagonal``: the causal mask of attention
    (position i may look at positions j <= i)."""
    return Tensor._wrap(np.tril(np.ones((n, n if m is None else m), dtype=bool), diagonal))


def triu_mask(n, m=None, diagonal=0):
    """Boolean (n, m) matrix, True on and above ``diagonal``."""
    return Tensor._wrap(np.triu(np.ones((n, n if m is None else m), dtype=bool), diagonal))
