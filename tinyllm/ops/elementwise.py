"""Elementwise ops: each output element depends on the input element at the same position, so
the backward is the upstream gradient times the local derivative, dL/dx = dL/dy * f'(x).
"""

import numpy as np

from tinyllm.autograd import Function, Tensor, sum_to_shape
from tinyllm.kernels import gelu as gelu_kernels
from tinyllm.ops.arithmetic import operands, promote


class Abs(Function):
    """y = |x|;  dy/dx = sign(x)  (0 at x = 0)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.sign(x)


class Exp(Function):
    """y = e^x;  dy/dx = e^x = y."""

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
    """y = ln x;  dy/dx = 1 / x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 sqrt(x)) = 1 / (2y)."""

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad / (2 * y)


class Sin(Function):
    """y = sin x;  dy/dx = cos x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.cos(x)


class Cos(Function):
    """y = cos x;  dy/dx = -sin x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * np.sin(x)


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y^2."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dy/dx = y (1 - y).

    Computed as exp(-softplus(-x)) = exp(-log(1 + e^-x)), which never overflows.
    """

    @staticmethod
    def forward(ctx, x):
        y = np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0."""

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y > 0)


class GELU(Function):
    """Gaussian error linear unit, y = x * Phi(x) with Phi the standard normal CDF.

    - exact (``approximate="none"``): Phi(x) = (1 + erf(x / sqrt 2)) / 2, and
      dy/dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi);
    - ``approximate="tanh"``: y = x/2 * (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), and
      dy/dx = (1 + tanh u)/2 + x/2 * (1 - tanh^2 u) * sqrt(2/pi) (1 + 3 * 0.044715 x^2).

    Both passes run ``tinyllm.kernels.gelu.gelu_forward`` / ``gelu_backward``: these formulas
    written with NumPy on the "numpy" backend, one fused pass with Numba otherwise.
    """

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return gelu_kernels.gelu_forward(x, approximate)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return gelu_kernels.gelu_backward(grad, x, ctx.approximate)


class Maximum(Function):
    """y = max(a, b) elementwise; the gradient goes to the larger input (half each on a tie)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        share_a = (a > b) + 0.5 * (a == b)
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(grad * share_a, np.shape(a)) if need_a else None,
                sum_to_shape(grad * (1 - share_a), np.shape(b)) if need_b else None)


class Minimum(Function):
    """y = min(a, b) elementwise; the gradient goes to the smaller input (half each on a tie)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        share_a = (a < b) + 0.5 * (a == b)
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(grad * share_a, np.shape(a)) if need_a else None,
                sum_to_shape(grad * (1 - share_a), np.shape(b)) if need_b else None)


class Clip(Function):
    """y = min(max(x, low), high);  dy/dx = 1 where low <= x <= high, else 0 (as PyTorch's clamp)."""

    @staticmethod
    def forward(ctx, x, low=None, high=None):
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        y = x
        if low is not None:
            y = np.maximum(y, low)
        if high is not None:
            y = np.minimum(y, high)
        return y.astype(x.dtype, copy=False) if y is not x else x.copy()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        inside = np.ones(x.shape, dtype=bool)
        if ctx.low is not None:
            inside &= x >= ctx.low
        if ctx.high is not None:
            inside &= x <= ctx.high
        return grad * inside


class Where(Function):
    """y = a where cond else b;  dL/da = dL/dy where cond,  dL/db = dL/dy where not cond."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        _, need_a, need_b = ctx.needs_input_grad
        zero = np.zeros((), dtype=grad.dtype)
        return (None,
                sum_to_shape(np.where(ctx.cond, grad, zero), ctx.shapes[0]) if need_a else None,
                sum_to_shape(np.where(ctx.cond, zero, grad), ctx.shapes[1]) if need_b else None)


class MaskedFill(Function):
    """y = value where mask else x (mask broadcasts to x);  dL/dx = dL/dy where not mask."""

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.mask = mask
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.mask, np.zeros((), dtype=grad.dtype), grad), None, None


class Cast(Function):
    """y = x converted to another dtype;  dL/dx = dL/dy converted back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype), None


class Clone(Function):
    """y = a copy of x;  dL/dx = dL/dy."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def abs(x):
    return Abs.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def sin(x):
    return Sin.apply(x)


def cos(x):
    return Cos.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def gelu(x, approximate="none"):
    """GELU, exact (``"none"``, the default, as in PyTorch) or its ``"tanh"`` approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError("gelu: approximate must be 'none' or 'tanh', got %r" % (approximate,))
    return GELU.apply(x, approximate=approximate)


def maximum(a, b):
    return Maximum.apply(*operands("maximum", a, b))


def minimum(a, b):
    return Minimum.apply(*operands("minimum", a, b))


def clip(x, min=None, max=None):
    """Limit x to [min, max] (either may be None); also called ``clamp``. The bounds are
    constants: no gradient flows to them."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    low, high = (b.data if isinstance(b, Tensor) else b for b in (min, max))
    return Clip.apply(x, low=low, high=high)


clamp = clip


def _mask_array(mask, opname):
    data = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if data.dtype != np.bool_:
        raise TypeError("%s: the mask must be boolean (True where to act), got dtype %s; "
                        "compare first, e.g. mask = ids == pad_id" % (opname, data.dtype))
    return data


def where(cond, a, b):
    """Elementwise choice: ``a`` where ``cond`` is True, else ``b`` (all three broadcast)."""
    cond = _mask_array(cond, "where")
    a, b = promote(a, b)
    shapes = [np.shape(cond), getattr(a, "shape", np.shape(a)), getattr(b, "shape", np.shape(b))]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("where: shapes %s (condition), %s and %s cannot be broadcast together"
                         % tuple(tuple(s) for s in shapes)) from None
    return Where.apply(cond, a, b)


def masked_fill(x, mask, value):
    """Copy of x with ``value`` where ``mask`` is True (mask must broadcast to x's shape)."""
    mask = _mask_array(mask, "masked_fill")
    try:
        shape = np.broadcast_shapes(mask.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError("masked_fill: mask of shape %s does not broadcast to the tensor's "
                         "shape %s" % (mask.shape, x.shape))
    return MaskedFill.apply(x, mask, value)


def cast(x, dtype):
    """x converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return Cast.apply(x, dtype)


def clone(x):
    return Clone.apply(x)


class SiLU(Function):
    """Sigmoid linear unit (also called swish), y = x * sigma(x), sigma(x) = 1 / (1 + e^-x);
    dy/dx = sigma(x) + x sigma(x) (1 - sigma(x)) = sigma(x) (1 + x (1 - sigma(x)))."""

    @staticmethod
    def forward(ctx, x):
        s = np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)   # sigma(x), no overflow
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s * (1 + x * (1 - s))


def silu(x):
    """SiLU (swish): x * sigmoid(x), the gate activation of Llama's SwiGLU feed-forward."""
    return SiLU.apply(x)
