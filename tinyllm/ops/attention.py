"""Fused scaled-dot-product attention as one differentiable op.

    O = softmax(Q K^T * scale + mask) V          q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv)

Written with ops (``attention_composite``), attention builds the (B, H, Tq, Tk) scores and
weights and keeps them for the backward pass. ``FusedAttention`` runs the kernels of
``tinyllm.kernels.attention`` instead: the forward walks over the keys in blocks with the online
softmax and saves only q, k, v, the output and the log-sum-exp L of each query row; the backward
rebuilds the weights block by block from L. Memory grows as O(T), not O(T^2), and both passes
are single fused loops on the "numba" and "cuda" backends.

Gradients (see ``tinyllm.kernels.attention``): with P the weights and Delta = rowsum(dO * O),
dV = P^T dO, dS = P * (dO V^T - Delta), dQ = dS K * scale, dK = dS^T Q * scale.
"""

import math

import numpy as np

from tinyllm import ops
from tinyllm.autograd import Function, Tensor
from tinyllm.kernels import attention as kernels


class FusedAttention(Function):
    """O = softmax(Q K^T * scale + mask) V through the fused kernels (see the module doc).

    Options: ``is_causal`` (query i sees keys j <= i), ``key_padding_mask`` (bool (B, Tk),
    True = padded key, seen by no query), ``scale``. A query that sees no key gets output 0
    and passes gradient 0.
    """

    @staticmethod
    def forward(ctx, q, k, v, scale=1.0, is_causal=False, key_padding_mask=None):
        out, lse = kernels.attention_forward(q, k, v, scale, is_causal, key_padding_mask)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.is_causal, ctx.key_padding_mask = scale, is_causal, key_padding_mask
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out, lse = ctx.saved_tensors
        grad_q, grad_k, grad_v = kernels.attention_backward(
            grad, q, k, v, out, lse, ctx.scale, ctx.is_causal, ctx.key_padding_mask)
        need_q, need_k, need_v = ctx.needs_input_grad
        return (grad_q if need_q else None, grad_k if need_k else None,
                grad_v if need_v else None)


def _check_inputs(q, k, v, key_padding_mask):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != 4:
            raise ValueError("fused_attention: %s must have shape (B, H, T, D), got shape %s"
                             % (name, tuple(t.shape)))
    if k.shape[:2] != q.shape[:2] or v.shape[:2] != q.shape[:2]:
        raise ValueError("fused_attention: q, k and v must share (B, H), got shapes %s, %s "
                         "and %s" % (tuple(q.shape), tuple(k.shape), tuple(v.shape)))
    if k.shape[3] != q.shape[3]:
        raise ValueError("fused_attention: q of shape %s and k of shape %s must have the same "
                         "head size D (last axis)" % (tuple(q.shape), tuple(k.shape)))
    if v.shape[2] != k.shape[2]:
        raise ValueError("fused_attention: k of shape %s and v of shape %s must have the same "
                         "number of keys Tk (axis 2)" % (tuple(k.shape), tuple(v.shape)))
    if key_padding_mask is not None:
        expected = (q.shape[0], k.shape[2])
        if key_padding_mask.dtype != np.bool_ or key_padding_mask.shape != expected:
            raise ValueError("fused_attention: key_padding_mask must be a boolean array of "
                             "shape (B, Tk) = %s, got dtype %s and shape %s"
                             % (expected, key_padding_mask.dtype, key_padding_mask.shape))


def fused_attention(q, k, v, is_causal=False, key_padding_mask=None, scale=None):
    """softmax(Q K^T * scale + mask) V with the fused kernels of the current backend.

    Shapes: q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) -> (B, H, Tq, Dv).
    ``scale`` defaults to 1 / sqrt(D); ``key_padding_mask`` is boolean (B, Tk), True at keys
    to ignore; ``is_causal`` lets query i see keys j <= i. Equals ``attention_composite``.
    """
    if key_padding_mask is not None:
        key_padding_mask = np.asarray(key_padding_mask.data if isinstance(key_padding_mask,
                                                                          Tensor)
                                      else key_padding_mask)
    _check_inputs(q, k, v, key_padding_mask)
    dtype = np.result_type(*(t.dtype for t in (q, k, v)))
    if dtype.kind != "f":
        raise TypeError("fused_attention: q, k and v must be float tensors, got dtype %s"
                        % dtype)
    q, k, v = (t if t.dtype == dtype else ops.cast(t, dtype) for t in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return FusedAttention.apply(q, k, v, scale=scale, is_causal=bool(is_causal),
                                key_padding_mask=key_padding_mask)


def attention_composite(q, k, v, is_causal=False, key_padding_mask=None, scale=None):
    """The same attention written with tinyllm ops (scores, masked_fill, softmax, matmul):
    the reference ``fused_attention`` must equal, values and gradients. Rows that see no
    key give 0, as in the fused op."""
    Tq, Tk = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if key_padding_mask is not None and isinstance(key_padding_mask, Tensor):
        key_padding_mask = key_padding_mask.data
    allowed = kernels.attention_mask_reference(Tq, Tk, is_causal, key_padding_mask)
    allowed = np.broadcast_to(allowed, q.shape[:2] + (Tq, Tk))
    empty = ~allowed.any(axis=-1, keepdims=True)                 # rows that see no key
    scores = ops.matmul(q, ops.transpose(k, -2, -1)) * scale
    scores = ops.masked_fill(scores, ~allowed & ~empty, -np.inf)
    weights = ops.masked_fill(ops.softmax(scores, -1), np.broadcast_to(empty, allowed.shape),
                              0.0)
    return ops.matmul(weights, v)
