"""Layer normalisation as one op, ``LayerNorm``, with its backward derived by hand.

``tinyllm.functional.layer_norm`` checks its arguments and applies it.
"""

import numpy as np

from tinyllm.autograd import Function
from tinyllm.kernels.layer_norm import layer_norm_backward, layer_norm_forward


class LayerNorm(Function):
    """Normalise over the last axes, then scale and shift.

    Over the C elements of the normalised axes (the last ``len(normalized_shape)`` axes):

        mu = mean(x),  var = mean((x - mu)^2)   (biased, as PyTorch),  sigma = sqrt(var + eps)
        xhat = (x - mu) / sigma
        y = gamma * xhat + beta

    Backward, with g = dL/dy * gamma and means over the normalised axes:

        dL/dx = (1 / sigma) * (g - mean(g) - xhat * mean(g * xhat))
        dL/dgamma = sum(dL/dy * xhat),  dL/dbeta = sum(dL/dy)   over all the other axes.

    (x enters y through xhat directly, through mu, and through sigma; the two mean terms are
    the paths through mu and through sigma.)

    The work is done on x seen as a matrix (N, C), one row per normalised slice, by the
    kernels ``tinyllm.kernels.layer_norm.layer_norm_forward`` / ``layer_norm_backward``: the NumPy
    reference on the "numpy" backend, one fused pass per row with Numba otherwise. The
    forward saves x and each row's mu and 1 / sigma; the backward rebuilds xhat from them.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, axes=(-1,), eps=1e-5):
        ctx.param_shape = x.shape[x.ndim - len(axes):]             # normalized_shape
        rows = x.reshape(-1, int(np.prod(ctx.param_shape)))         # (N, C)
        y, mean, rstd = layer_norm_forward(rows, _flat(weight), _flat(bias), eps)
        ctx.save_for_backward(x, mean, rstd, weight)
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, mean, rstd, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        rows = x.reshape(mean.shape[0], -1)                         # (N, C)
        grad_x, grad_weight, grad_bias = layer_norm_backward(
            grad.reshape(rows.shape), rows, mean, rstd, _flat(weight))
        return (grad_x.reshape(x.shape) if need_x else None,
                grad_weight.reshape(ctx.param_shape) if need_weight else None,
                grad_bias.reshape(ctx.param_shape) if need_bias else None)


def _flat(param):
    """A weight or bias of shape normalized_shape as a vector (C,), or None."""
    return None if param is None else param.reshape(-1)


class RMSNorm(Function):
    """Root-mean-square normalisation over the last axis (Zhang & Sennrich 2019; Llama's norm).

    Over the C features of the last axis (no mean is subtracted, no bias is added):

        r = 1 / sqrt(mean(x^2) + eps)        xhat = x * r        y = weight * xhat

    Backward, with g = dL/dy * weight and means over the last axis:

        dL/dx = r * (g - xhat * mean(g * xhat))
        dL/dweight = sum(dL/dy * xhat)   over all the other axes.

    (LayerNorm's backward without the mean(g) term, the path through the subtracted mean.)
    The forward saves xhat and r; x itself is not needed again.
    """

    @staticmethod
    def forward(ctx, x, weight, eps=1e-6):
        rstd = 1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps)   # (..., 1)
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, weight)
        y = xhat if weight is None else xhat * weight
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight = ctx.saved_tensors
        need_x, need_weight = ctx.needs_input_grad
        g = grad if weight is None else grad * weight
        grad_x = rstd * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True)) if need_x else None
        grad_weight = None
        if need_weight:
            grad_weight = np.sum((grad * xhat).reshape(-1, xhat.shape[-1]), axis=0)
        return grad_x, grad_weight
