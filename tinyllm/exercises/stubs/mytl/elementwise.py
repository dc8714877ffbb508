"""Step elementwise (chapters 1-2): the arithmetic and the activations, forward and backward.

Every op is a ``Function`` on NumPy arrays: ``forward(ctx, ...)`` returns the output array,
``backward(ctx, grad)`` returns dL/d(input) for each positional input, given grad = dL/dy
(an array of y's shape).

Binary ops broadcast as NumPy does (a (3, 1) with b (4,) gives (3, 4)); each input's gradient
must then have that input's shape: ``unbroadcast`` (your previous step) sums it back. Inputs
may be Tensors, arrays or plain numbers (``Function.apply`` passes numbers to forward as they
are). A plain number takes the float dtype of the other operand, so that a float32 tensor
times 0.5 stays float32: ``_as_operand`` does this for you.

The operators of your Tensor (``a + b``, ``x ** 2``, ``x.tanh()``) call the functions at the
bottom of this file.
"""

import numpy as np

from mytl.autograd import Function, Tensor, unbroadcast


def _as_operand(x, other):
    """``x`` as an array; a plain number (Python or NumPy scalar) next to a float array takes
    that array's dtype (float32 * 0.5 stays float32)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(other, np.ndarray) and other.dtype.kind == "f" \
            and isinstance(x, (int, float, np.number)):
        return np.asarray(x, dtype=other.dtype)
    return np.asarray(x)


def _operands(name, a, b):
    """a and b as arrays (through ``_as_operand``) whose shapes broadcast together.

    If they do not broadcast, raise ValueError naming the op and both shapes, before any
    arithmetic: ``add: shapes (2, 3) and (4,) do not broadcast``. (``np.broadcast_shapes``
    raises a ValueError of its own for shapes that do not broadcast.)
    """
    raise NotImplementedError


# ----- arithmetic ------------------------------------------------------------------------------
class Add(Function):
    """y = a + b, broadcast. Shapes: a and b broadcast to y's shape."""

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Sub(Function):
    """y = a - b, broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Neg(Function):
    """y = -x."""

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Mul(Function):
    """y = a * b (elementwise), broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Div(Function):
    """y = a / b (elementwise), broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Pow(Function):
    """y = x ** p for a number p, given as an option: ``Pow.apply(x, exponent=p)``.

    p is not differentiated (backward returns one gradient: for x).
    """

    @staticmethod
    def forward(ctx, x, exponent):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


# ----- functions of one input ------------------------------------------------------------------
class Exp(Function):
    """y = e^x."""

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Log(Function):
    """y = ln x (the natural log), for x > 0."""

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Tanh(Function):
    """y = tanh x = (e^x - e^-x) / (e^x + e^-x)."""

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Relu(Function):
    """y = max(x, 0). Its derivative at x = 0 is taken as 0, as in PyTorch."""

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), in (0, 1).

    Must not overflow or give NaN for large |x|: sigmoid(800) = 1, sigmoid(-800) = 0.
    """

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


# ----- the functions the Tensor operators call (written for you) -------------------------------
def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def neg(x):
    return Neg.apply(x)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def pow(x, exponent):
    """x ** exponent for a number exponent (a Tensor exponent is a TypeError)."""
    if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
        raise TypeError("pow: the exponent must be a number, got %s" % type(exponent).__name__)
    return Pow.apply(x, exponent=exponent)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def tanh(x):
    return Tanh.apply(x)


def relu(x):
    return Relu.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)
