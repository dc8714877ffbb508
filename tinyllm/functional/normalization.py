"""Layer normalisation, one ``Function`` with its backward derived by hand."""

import numpy as np

from tinyllm.autograd import Function


class LayerNorm(Function):
    """Normalise over the last axes, then scale and shift.

    Over the N elements of the normalised axes (the last ``len(normalized_shape)`` axes):

        mu = mean(x),  var = mean((x - mu)^2)   (biased, as PyTorch),  sigma = sqrt(var + eps)
        xhat = (x - mu) / sigma
        y = gamma * xhat + beta

    Backward, with g = dL/dy * gamma and means over the normalised axes:

        dL/dx = (1 / sigma) * (g - mean(g) - xhat * mean(g * xhat))
        dL/dgamma = sum(dL/dy * xhat),  dL/dbeta = sum(dL/dy)   over all the other axes.

    (x enters y through xhat directly, through mu, and through sigma; the two mean terms are
    the paths through mu and through sigma.)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, axes=(-1,), eps=1e-5):
        mu = np.mean(x, axis=axes, keepdims=True)
        centered = x - mu
        var = np.mean(centered * centered, axis=axes, keepdims=True)
        inv_sigma = 1.0 / np.sqrt(var + eps)
        xhat = centered * inv_sigma
        ctx.save_for_backward(xhat, inv_sigma, weight)
        ctx.axes = axes
        y = xhat
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_sigma, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        batch_axes = tuple(range(grad.ndim - len(ctx.axes)))
        grad_x = grad_weight = grad_bias = None
        if need_x:
            g = grad if weight is None else grad * weight
            grad_x = inv_sigma * (g - np.mean(g, axis=ctx.axes, keepdims=True)
                                  - xhat * np.mean(g * xhat, axis=ctx.axes, keepdims=True))
        if need_weight:
            grad_weight = np.sum(grad * xhat, axis=batch_axes)
        if need_bias:
            grad_bias = np.sum(grad, axis=batch_axes)
        return grad_x, grad_weight, grad_bias


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axes (see ``LayerNorm``).

    Shapes: x (..., *normalized_shape); weight and bias (optional) ``normalized_shape``;
    y like x. ``normalized_shape`` is an int (the last axis) or a tuple of trailing sizes.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    n = len(shape)
    if n == 0 or x.ndim < n or tuple(x.shape[x.ndim - n:]) != shape:
        raise ValueError("layer_norm: input of shape %s does not end with normalized_shape %s"
                         % (tuple(x.shape), shape))
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and tuple(param.shape) != shape:
            raise ValueError("layer_norm: %s of shape %s does not match normalized_shape %s"
                             % (name, tuple(param.shape), shape))
    axes = tuple(range(x.ndim - n, x.ndim))
    return LayerNorm.apply(x, weight, bias, axes=axes, eps=eps)
