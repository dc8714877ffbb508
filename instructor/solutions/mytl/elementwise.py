"""Step elementwise (chapters 1-2): the arithmetic and the activations, forward and backward.

Every op is a ``Function`` on NumPy arrays. An elementwise op acts on each element on its
own, so its local derivative is elementwise too: for y = f(x), dL/dx = dL/dy * f'(x).

Binary ops broadcast as NumPy does (a (3, 1) with b (4,) gives (3, 4)); each input's gradient
is then summed back to that input's shape with ``unbroadcast``. Inputs may be Tensors, arrays
or plain numbers. A plain number takes the float dtype of the other operand, so that a
float32 tensor times 0.5 stays float32.
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
    """a and b as arrays whose shapes broadcast; else ValueError naming the op and shapes."""
    a, b = _as_operand(a, b), _as_operand(b, a)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError("%s: shapes %s and %s do not broadcast" % (name, a.shape, b.shape)) \
            from None
    return a, b


# ----- arithmetic ------------------------------------------------------------------------------
class Add(Function):
    """y = a + b (broadcast). dL/da = unbroadcast(g, a.shape), dL/db = unbroadcast(g, b.shape)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("add", a, b)
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return unbroadcast(grad, shape_a), unbroadcast(grad, shape_b)


class Sub(Function):
    """y = a - b (broadcast). dL/da = g, dL/db = -g (each unbroadcast to its input's shape)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("sub", a, b)
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return unbroadcast(grad, shape_a), unbroadcast(-grad, shape_b)


class Neg(Function):
    """y = -x. dL/dx = -g."""

    @staticmethod
    def forward(ctx, x):
        return -np.asarray(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Mul(Function):
    """y = a * b (broadcast). dL/da = g * b, dL/db = g * a (each unbroadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("mul", a, b)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return unbroadcast(grad * b, a.shape), unbroadcast(grad * a, b.shape)


class Div(Function):
    """y = a / b (broadcast). dL/da = g / b, dL/db = -g * a / b^2 (each unbroadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("div", a, b)
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad / b
        return unbroadcast(grad_a, a.shape), unbroadcast(-grad_a * a / b, b.shape)


class Pow(Function):
    """y = x ** p for a number p (an option, not differentiated). dL/dx = g * p * x^(p-1)."""

    @staticmethod
    def forward(ctx, x, exponent):
        x = np.asarray(x)
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        return x ** exponent

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        p = ctx.exponent
        return grad * p * x ** (p - 1)


# ----- functions of one input ------------------------------------------------------------------
class Exp(Function):
    """y = e^x. dL/dx = g * y."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    """y = ln x (natural log). dL/dx = g / x."""

    @staticmethod
    def forward(ctx, x):
        x = np.asarray(x)
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Tanh(Function):
    """y = tanh x. dL/dx = g * (1 - y^2)."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class Relu(Function):
    """y = max(x, 0). dL/dx = g where x > 0, else 0 (0 at x = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        x = np.asarray(x)
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed without overflow for large |x|. dL/dx = g * y * (1 - y)."""

    @staticmethod
    def forward(ctx, x):
        x = np.asarray(x)
        e = np.exp(-np.abs(x))                  # never overflows: |x| >= 0
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


# ----- the functions the Tensor operators call -------------------------------------------------
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
