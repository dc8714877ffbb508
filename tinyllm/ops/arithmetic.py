"""The arithmetic ops: + - * / ** @ and negation, with NumPy broadcasting.

When an input was broadcast in the forward pass, its gradient is summed back to its own shape
(``sum_to_shape``): a value used n times receives the sum of the n upstream gradients.
"""

import numpy as np

from tinyllm.autograd import Function, Tensor, get_default_dtype, sum_to_shape
from tinyllm.kernels import matmul as kernels


def _shape(x):
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _dtype(x):
    return x.dtype if isinstance(x, Tensor) else np.asarray(x).dtype


def promote(a, b):
    """Bring two operands to one float dtype when either is a float.

    - A plain number or array next to a float tensor takes that tensor's dtype, so
      ``x / np.sqrt(d)`` keeps a float32 ``x`` in float32 (as in PyTorch).
    - An integer or boolean operand next to a float one is converted to the float dtype.
    - Two float tensors of different precision are left to NumPy (float32 op float64 -> float64).
    """
    float_dtypes = [x.dtype for x in (a, b) if isinstance(x, Tensor) and x.dtype.kind == "f"]
    if float_dtypes:
        target = np.result_type(*float_dtypes)
    elif any(_dtype(x).kind == "f" for x in (a, b)):
        target = get_default_dtype()
    else:
        return a, b
    return _to_float(a, target), _to_float(b, target)


def _to_float(x, dtype):
    if not isinstance(x, Tensor):
        return np.asarray(x, dtype=dtype)
    if x.dtype.kind != "f":           # integer tensors never require grad: a plain copy is fine
        return Tensor._wrap(x.data.astype(dtype))
    return x


def operands(opname, a, b):
    """``promote`` the operands, then check that their shapes broadcast (the error names the
    op and both shapes)."""
    a, b = promote(a, b)
    try:
        np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError("%s: shapes %s and %s cannot be broadcast together"
                         % (opname, tuple(_shape(a)), tuple(_shape(b)))) from None
    return a, b


class Add(Function):
    """y = a + b;  dL/da = dL/dy,  dL/db = dL/dy  (each summed to its input's shape)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.add(a, b)

    @staticmethod
    def backward(ctx, grad):
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(grad, ctx.shapes[0]) if need_a else None,
                sum_to_shape(grad, ctx.shapes[1]) if need_b else None)


class Sub(Function):
    """y = a - b;  dL/da = dL/dy,  dL/db = -dL/dy."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx, grad):
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(grad, ctx.shapes[0]) if need_a else None,
                sum_to_shape(-grad, ctx.shapes[1]) if need_b else None)


class Mul(Function):
    """y = a * b;  dL/da = dL/dy * b,  dL/db = dL/dy * a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(grad * b, np.shape(a)) if need_a else None,
                sum_to_shape(grad * a, np.shape(b)) if need_b else None)


class Div(Function):
    """y = a / b;  dL/da = dL/dy / b,  dL/db = -dL/dy * a / b^2."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.true_divide(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(grad / b, np.shape(a)) if need_a else None,
                sum_to_shape(-grad * a / (b * b), np.shape(b)) if need_b else None)


class Pow(Function):
    """y = a ** b;  dL/da = dL/dy * b * a^(b-1),  dL/db = dL/dy * y * ln(a)  (0 where a <= 0)."""

    @staticmethod
    def forward(ctx, a, b):
        y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        a, b, y = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            grad_a = sum_to_shape(grad * b * np.power(a, b - 1), np.shape(a))
        if need_b:
            positive = a > 0
            log_a = np.log(np.where(positive, a, 1))
            grad_b = sum_to_shape(np.where(positive, grad * y * log_a, 0), np.shape(b))
        return grad_a, grad_b


class Neg(Function):
    """y = -x;  dL/dx = -dL/dy."""

    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class MatMul(Function):
    """Batched matrix product y = a @ b with NumPy's ``matmul`` rules.

    Shapes (..., n, k) @ (..., k, m) -> (..., n, m), batch axes broadcast; a 1-D ``a`` is a row
    (k,) and a 1-D ``b`` a column (k,), removed again from the result.
    Backward: dL/da = dL/dy @ b^T,  dL/db = a^T @ dL/dy, summed over broadcast batch axes.
    Cost: 2 n k m multiply-adds per batch entry. All three products run on the current
    backend (``tinyllm.kernels.matmul.matmul``: NumPy's BLAS or a Numba/CUDA kernel).
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        a2 = a[np.newaxis, :] if a.ndim == 1 else a      # (k,) -> (1, k)
        b2 = b[:, np.newaxis] if b.ndim == 1 else b      # (k,) -> (k, 1)
        if b.ndim == 1:                                  # (..., n) -> (..., n, 1)
            grad = np.expand_dims(grad, -1)
        if a.ndim == 1:                                  # (..., m) -> (..., 1, m)
            grad = np.expand_dims(grad, -2)
        grad_a = grad_b = None
        if need_a:
            grad_a = sum_to_shape(kernels.matmul(grad, np.swapaxes(b2, -1, -2)), a2.shape)
            grad_a = grad_a.reshape(a.shape)
        if need_b:
            grad_b = sum_to_shape(kernels.matmul(np.swapaxes(a2, -1, -2), grad), b2.shape)
            grad_b = grad_b.reshape(b.shape)
        return grad_a, grad_b


def add(a, b):
    """a + b with broadcasting."""
    return Add.apply(*operands("add", a, b))


def sub(a, b):
    """a - b with broadcasting."""
    return Sub.apply(*operands("sub", a, b))


def mul(a, b):
    """a * b (elementwise) with broadcasting."""
    return Mul.apply(*operands("mul", a, b))


def div(a, b):
    """a / b (true division) with broadcasting; integers divide to the default float dtype."""
    a, b = operands("div", a, b)
    if _dtype(a).kind != "f" and _dtype(b).kind != "f":
        a, b = _to_float(a, get_default_dtype()), _to_float(b, get_default_dtype())
    return Div.apply(a, b)


def pow(a, b):
    """a ** b with broadcasting; either may be a tensor."""
    return Pow.apply(*operands("pow", a, b))


def neg(x):
    """-x."""
    return Neg.apply(x)


def matmul(a, b):
    """Batched matrix product ``a @ b``; see ``MatMul`` for shapes and gradients."""
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError("matmul: both operands need at least one axis, got shapes %s and %s"
                         % (tuple(sa), tuple(sb)))
    k_a, k_b = sa[-1], (sb[0] if len(sb) == 1 else sb[-2])
    if k_a != k_b:
        raise ValueError("matmul: shapes %s and %s do not align: %d != %d"
                         % (tuple(sa), tuple(sb), k_a, k_b))
    try:
        np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    except ValueError:
        raise ValueError("matmul: the batch axes of shapes %s and %s cannot be broadcast "
                         "together" % (tuple(sa), tuple(sb))) from None
    return MatMul.apply(*promote(a, b))


_COMPARISONS = {"lt": np.less, "le": np.less_equal, "gt": np.greater,
                "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal}


def compare(name, a, b):
    """Elementwise comparison (``<``, ``==``, ...): a boolean tensor, not differentiable."""
    a_data = a.data if isinstance(a, Tensor) else a
    b_data = b.data if isinstance(b, Tensor) else b
    return Tensor._wrap(np.asarray(_COMPARISONS[name](a_data, b_data)))


def _bool_data(x, opname):
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.dtype != np.bool_:
        raise TypeError("%s: expected a boolean tensor, got dtype %s" % (opname, data.dtype))
    return data


def logical_not(x):
    return Tensor._wrap(np.logical_not(_bool_data(x, "logical_not (~)")))


def logical_and(a, b):
    return Tensor._wrap(np.logical_and(_bool_data(a, "logical_and (&)"),
                                       _bool_data(b, "logical_and (&)")))


def logical_or(a, b):
    return Tensor._wrap(np.logical_or(_bool_data(a, "logical_or (|)"),
                                      _bool_data(b, "logical_or (|)")))
