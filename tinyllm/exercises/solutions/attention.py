"""Reference solution of exercise attention (chapter 6)."""

import numpy as np

from tinyllm.autograd import Function


class Attention(Function):
    """O = softmax(Q K^T / sqrt(d) + M) V for q (..., T, d), k (..., S, d), v (..., S, dv),
    with the backward written by hand."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False):
        scale = 1.0 / np.sqrt(q.shape[-1])
        scores = (q @ np.swapaxes(k, -1, -2)) * scale                 # S (..., T, S)
        if causal:
            T, S = scores.shape[-2:]
            future = np.triu(np.ones((T, S), dtype=bool), k=1)       # key j > query i
            scores = np.where(future, -np.inf, scores)
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)                         # P (..., T, S)
        ctx.save_for_backward(q, k, v, p)
        ctx.scale = scale
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        grad_v = np.swapaxes(p, -1, -2) @ grad_out                    # dV = P^T dO
        grad_p = grad_out @ np.swapaxes(v, -1, -2)                    # dP = dO V^T
        grad_s = p * (grad_p - np.sum(grad_p * p, axis=-1, keepdims=True))
        grad_q = (grad_s @ k) * ctx.scale                             # dQ = dS K / sqrt(d)
        grad_k = (np.swapaxes(grad_s, -1, -2) @ q) * ctx.scale        # dK = dS^T Q / sqrt(d)
        return grad_q, grad_k, grad_v
