"""Reference solution of exercise layer_norm (chapter 8)."""

import numpy as np

from tinyllm.autograd import Function


class LayerNorm(Function):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta over the last axis (D), with
    dx = (1 / sigma) (g - mean(g) - xhat mean(g xhat)) for g = dy * gamma."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)              # biased variance
        inv_sigma = 1.0 / np.sqrt(var + eps)
        xhat = (x - mu) * inv_sigma
        ctx.save_for_backward(xhat, inv_sigma, gamma)
        return gamma * xhat + beta

    @staticmethod
    def backward(ctx, grad_y):
        xhat, inv_sigma, gamma = ctx.saved_tensors
        batch_axes = tuple(range(grad_y.ndim - 1))
        g = grad_y * gamma
        grad_x = inv_sigma * (g - g.mean(axis=-1, keepdims=True)
                              - xhat * (g * xhat).mean(axis=-1, keepdims=True))
        return grad_x, (grad_y * xhat).sum(axis=batch_axes), grad_y.sum(axis=batch_axes)
