"""Step modern_decoder (chapter 17): the parts Llama changed in GPT-2's decoder, in NumPy.

- RMSNorm scales each position's C features by the inverse of their root mean square, with no
  mean and no bias:  r = 1 / sqrt(mean_j x_j^2 + eps),  y = w * (r x).
- SwiGLU gates one linear branch with another passed through SiLU, silu(z) = z sigmoid(z):
  y = (silu(x W_gate^T) * (x W_up^T)) W_down^T.
- RoPE turns each pair of a head's D features at position m by the angle m w_i,
  w_i = theta^(-2i / D), i = 0 .. D/2 - 1; the pairs are (x_2i, x_2i+1) in the "interleaved"
  layout (RoFormer, Meta) and (x_i, x_i+D/2) in the "half" layout (Hugging Face).
- Grouped-query attention shares each of H_kv key/value heads among n_rep = H / H_kv query
  heads (``repeat_kv``).
- The KV cache keeps the keys and values of the positions already seen, in arrays allocated
  once, so that one new token attends to them without recomputing them.

Everything is NumPy float64; no autograd (the backward of RMSNorm is written by hand).

You write: ``rms_norm``, ``rms_norm_backward``, ``silu``, ``swiglu``, ``rope``, ``repeat_kv``,
``KVCache`` and ``cached_attention_step``.
"""

import numpy as np

ROPE_LAYOUTS = ("half", "interleaved")


# ----- RMSNorm ----------------------------------------------------------------------------------
def rms_norm(x, weight, eps=1e-6):
    """RMSNorm over the last axis: x (..., C), weight (C,) -> y (..., C).

        r = 1 / sqrt((1/C) sum_j x_j^2 + eps),   y = weight * (r x)

    Raises ValueError naming ``rms_norm`` and both shapes if weight is not (C,).
    """
    raise NotImplementedError


def rms_norm_backward(grad, x, weight, eps=1e-6):
    """(dL/dx (..., C), dL/dweight (C,)) of y = rms_norm(x, weight, eps), given dL/dy = grad
    (..., C), both float64 arrays of the shapes of x and weight.

    Derive them by hand (the chain rule through r, which depends on every x_j of the row);
    dL/dweight sums over every position (all the leading axes). Raises ValueError naming
    ``rms_norm_backward`` and the shapes if grad is not x's shape or weight is not (C,).
    """
    raise NotImplementedError


# ----- SwiGLU -----------------------------------------------------------------------------------
def silu(x):
    """silu(x) = x sigmoid(x) = x / (1 + e^-x), elementwise; finite for any x (no overflow
    warning at x = -1000)."""
    raise NotImplementedError


def swiglu(x, w_gate, w_up, w_down):
    """The SwiGLU feed-forward, no biases: x (..., C), w_gate and w_up (F, C), w_down (C, F).

        y = (silu(x w_gate^T) * (x w_up^T)) w_down^T          (..., C)

    Raises ValueError naming ``swiglu`` and the shapes when they do not fit.
    """
    raise NotImplementedError


# ----- RoPE -------------------------------------------------------------------------------------
def rope(x, positions, theta=10000.0, layout="half"):
    """Rotary position embedding of x (..., T, D) whose T rows sit at ``positions`` (T,).

    Pair i (i = 0 .. D/2 - 1) of the row at position m turns by the angle m w_i,
    w_i = theta^(-2i / D):  (a, b) -> (a cos - b sin, a sin + b cos).  The pairs are
    (x_i, x_{i + D/2}) for layout "half" and (x_2i, x_2i+1) for "interleaved". Returns a new
    array of x's shape.

    Raises ValueError naming ``rope`` for an odd D, positions that are not (T,), or an unknown
    layout.
    """
    raise NotImplementedError


# ----- grouped-query attention and the KV cache -------------------------------------------------
def repeat_kv(x, n_rep):
    """Keys or values (B, H_kv, T, D) -> (B, H_kv n_rep, T, D): head j of the result is head
    j // n_rep of x (each head repeated n_rep times in a row). Raises ValueError naming
    ``repeat_kv`` if x is not 4-D or n_rep < 1."""
    raise NotImplementedError


class KVCache:
    """The keys and values of one attention layer, kept between generation steps.

    ``keys`` and ``values`` are arrays (B, H, max_len, D) of zeros allocated once; ``length``
    positions of them are filled. ``append(k, v)`` writes k, v (B, H, T_new, D) at positions
    length .. length + T_new - 1 and returns the keys and values of positions 0 .. length - 1
    afterwards, each (B, H, length, D). Raises ValueError naming ``KVCache`` when k or v does
    not fit (B, H, ., D) (both shapes named) or when the new positions would pass max_len.
    """

    def __init__(self, batch_size, n_heads, max_len, head_dim):
        raise NotImplementedError

    def append(self, k, v):
        """Write k, v (B, H, T_new, D) after the ``length`` cached positions (in place, no
        concatenation); return (keys, values) of all filled positions, each (B, H, length, D)."""
        raise NotImplementedError


def cached_attention_step(q, cache):
    """Attention of the queries of the last T_new cached positions over the whole cache.

    q (B, H_q, T_new, D), T_new <= cache.length; the cache holds H_kv key/value heads with
    H_q a multiple of H_kv (each shared by n_rep = H_q / H_kv query heads, ``repeat_kv``).
    Query i sits at position p_i = cache.length - T_new + i and attends to keys 0 .. p_i:

        out = softmax(q k^T / sqrt(D) + causal mask) v            (B, H_q, T_new, D)

    T_new = 1 is one generation step (no mask needed); T_new = cache.length is the prompt.
    Raises ValueError naming ``cached_attention_step`` and both shapes when q does not fit.
    """
    raise NotImplementedError
