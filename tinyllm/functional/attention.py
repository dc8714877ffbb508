"""Scaled dot-product attention, composed from tinyllm ops so that autograd gives the backward.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

Each of the L queries scores the S keys by a dot product, the scores become weights that sum
to 1 over the keys (softmax), and the output is the weighted average of the values.
"""

import math

import numpy as np

from tinyllm import ops
from tinyllm.autograd import Tensor
from tinyllm.functional.dropout import dropout
from tinyllm.kernels.attention import use_fused_attention
from tinyllm.ops.attention import fused_attention


def causal_mask(L, S=None):
    """Boolean (L, S) matrix, True on and below the diagonal: query i may attend to keys
    j <= i (the mask of a decoder; S defaults to L)."""
    return ops.tril_mask(L, S)


def _as_array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, generator=None):
    """softmax(Q K^T * scale + M) V with PyTorch's semantics.

    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev) -> output (..., L, Ev);
    the leading axes (batch, heads) broadcast.

    - ``scale`` defaults to 1 / sqrt(E), which keeps the scores' variance near 1 when the
      entries of Q and K have variance 1, so the softmax does not saturate.
    - ``attn_mask`` broadcasts to (..., L, S). A boolean mask says where attention is allowed
      (True = may attend; the other scores become -inf, so their weight is 0). A float mask
      is added to the scores (use -inf or a large negative number to block).
    - ``is_causal=True`` uses the lower-triangular mask ``causal_mask(L, S)``; giving both it
      and ``attn_mask`` is an error.
    - ``dropout_p`` drops attention weights (after the softmax), as PyTorch does whenever it is
      positive; pass 0 at evaluation time. ``generator``: a NumPy generator for the dropout
      mask (default: ``tinyllm.random.default_generator()``).

    A query whose every key is masked has no distribution to average with: its weights, its
    output row and the gradients through it are all 0 (PyTorch 2.x returns zeros too, rather
    than the NaN of softmax over -inf everywhere).

    Two routes compute the same numbers. When ``tinyllm.kernels.attention.use_fused_attention``
    says so (no dropout, and the "numba" or "cuda" backend, or "auto"), and the mask is none,
    ``is_causal`` or a boolean key-padding mask, the fused kernels run, through the op
    ``tinyllm.ops.attention.fused_attention``, which never builds the (L, S) weights;
    everything else, and the "numpy" backend, runs the composite written out below (scores,
    mask, softmax, weighted sum), which autograd differentiates op by op.
    """
    if value.ndim < 2:
        raise ValueError("scaled_dot_product_attention: value must have shape (..., length, "
                         "features), got shape %s" % (tuple(value.shape),))
    if value.shape[-2] != key.shape[-2]:
        raise ValueError("scaled_dot_product_attention: key of shape %s and value of shape %s "
                         "must have the same number of positions S (axis -2)"
                         % (tuple(key.shape), tuple(value.shape)))
    if use_fused_attention(dropout_p):
        fused = _fused_route(query, key, value, attn_mask, is_causal, scale)
        if fused is not None:
            return fused
    weights = attention_weights(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True, generator=generator)
    return ops.matmul(weights, value)


def _fused_route(query, key, value, attn_mask, is_causal, scale):
    """The output through ``fused_attention``, or None when the fused kernels do not cover the
    call (broadcast leading axes, a float mask, a mask that varies along L or across heads).

    fused_attention takes (B, H, T, D). Four-dimensional inputs go in as they are; other
    leading axes (..., L, E) are flattened into the heads of one batch entry, B = 1. A boolean
    ``attn_mask`` (True = may attend) is a key-padding mask when it has shape (S,) or
    (B or 1, 1, 1, S): the same keys are hidden from every query of every head.
    """
    tensors = (query, key, value)
    if not all(isinstance(t, Tensor) and t.ndim >= 2 and t.dtype.kind == "f" for t in tensors):
        return None
    lead = tuple(query.shape[:-2])
    if tuple(key.shape[:-2]) != lead or tuple(value.shape[:-2]) != lead \
            or key.shape[-1] != query.shape[-1] or (is_causal and attn_mask is not None):
        return None
    key_padding_mask = None
    if attn_mask is not None:
        mask = _as_array(attn_mask)
        S = key.shape[-2]
        if len(lead) != 2 or mask.dtype != np.bool_ or mask.ndim > 4:
            return None
        mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
        if mask.shape[1:] != (1, 1, S) or mask.shape[0] not in (1, lead[0]):
            return None
        key_padding_mask = np.broadcast_to(~mask[:, 0, 0, :], (lead[0], S))
    if len(lead) == 2:
        return fused_attention(query, key, value, is_causal, key_padding_mask, scale)
    heads = (1, int(np.prod(lead)))
    q, k, v = (ops.reshape(t, heads + tuple(t.shape[-2:])) for t in tensors)
    out = fused_attention(q, k, v, is_causal, None, scale)
    return ops.reshape(out, lead + tuple(out.shape[-2:]))


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None):
    """The attention weights softmax(Q K^T * scale + M): shape (..., L, S), each row sums to 1
    (or is all 0 for a query whose every key is masked). Arguments as in
    ``scaled_dot_product_attention``; useful on its own to plot what attends to what."""
    for name, t in (("query", query), ("key", key)):
        if t.ndim < 2:
            raise ValueError("scaled_dot_product_attention: %s must have shape (..., length, "
                             "features), got shape %s" % (name, tuple(t.shape)))
    L, E = query.shape[-2:]
    S = key.shape[-2]
    if key.shape[-1] != E:
        raise ValueError("scaled_dot_product_attention: query of shape %s and key of shape %s "
                         "must have the same last axis (E)" % (tuple(query.shape),
                                                               tuple(key.shape)))
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, "
                         "not both")
    scale = 1.0 / math.sqrt(E) if scale is None else scale

    scores = ops.matmul(query, ops.transpose(key, -2, -1)) * scale       # (..., L, S)
    if is_causal:
        attn_mask = causal_mask(L, S)
    if attn_mask is not None:
        scores = _apply_mask(scores, attn_mask)

    # Rows with every key masked: softmax would give 0/0. Fill them with 0 before the softmax
    # and zero their weights after it (the gradient through them is then 0, not NaN).
    empty_rows = np.all(scores.data == -np.inf, axis=-1, keepdims=True)
    if not empty_rows.any():
        return ops.softmax(scores, -1)
    empty_rows = np.broadcast_to(empty_rows, scores.shape)
    weights = ops.softmax(ops.masked_fill(scores, empty_rows, 0.0), -1)
    return ops.masked_fill(weights, empty_rows, 0.0)


def _apply_mask(scores, attn_mask):
    """Scores with a boolean mask (False -> -inf) or a float mask (added) applied."""
    mask_shape = tuple(attn_mask.shape) if isinstance(attn_mask, Tensor) \
        else np.shape(attn_mask)
    try:
        fits = np.broadcast_shapes(mask_shape, scores.shape) == scores.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError("scaled_dot_product_attention: attn_mask of shape %s does not "
                         "broadcast to the scores' shape %s (..., L, S)"
                         % (mask_shape, tuple(scores.shape)))
    kind = _as_array(attn_mask).dtype.kind
    if kind == "b":
        return ops.masked_fill(scores, ~_as_array(attn_mask), -np.inf)
    if kind == "f":
        return scores + attn_mask
    raise TypeError("scaled_dot_product_attention: attn_mask must be boolean (True = may "
                    "attend) or float (added to the scores), got dtype %s"
                    % _as_array(attn_mask).dtype)
