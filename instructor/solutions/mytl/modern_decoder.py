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
def _check_rms_norm(opname, x, weight):
    if x.ndim < 1 or weight.shape != (x.shape[-1],):
        raise ValueError("%s: weight of shape %s must be (C,) for x of shape %s (C = its last "
                         "axis)" % (opname, weight.shape, x.shape))


def rms_norm(x, weight, eps=1e-6):
    """RMSNorm over the last axis: x (..., C), weight (C,) -> y (..., C).

        r = 1 / sqrt((1/C) sum_j x_j^2 + eps),   y = weight * (r x)

    Raises ValueError naming ``rms_norm`` and both shapes if weight is not (C,).
    """
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    _check_rms_norm("rms_norm", x, weight)
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return weight * (r * x)


def rms_norm_backward(grad, x, weight, eps=1e-6):
    """(dL/dx (..., C), dL/dweight (C,)) of y = rms_norm(x, weight, eps), given dL/dy = grad.

    With x_hat = r x and g = weight * grad:
        dL/dx      = r (g - x_hat mean_j(g_j x_hat_j))
        dL/dweight = sum over every position of grad * x_hat

    Raises ValueError naming ``rms_norm_backward`` and the shapes if grad is not x's shape or
    weight is not (C,).
    """
    grad, x = np.asarray(grad, dtype=np.float64), np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    _check_rms_norm("rms_norm_backward", x, weight)
    if grad.shape != x.shape:
        raise ValueError("rms_norm_backward: grad of shape %s must have x's shape %s"
                         % (grad.shape, x.shape))
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    x_hat = r * x
    g = weight * grad
    grad_x = r * (g - x_hat * np.mean(g * x_hat, axis=-1, keepdims=True))
    grad_weight = (grad * x_hat).reshape(-1, x.shape[-1]).sum(axis=0)
    return grad_x, grad_weight


# ----- SwiGLU -----------------------------------------------------------------------------------
def silu(x):
    """silu(x) = x sigmoid(x) = x / (1 + e^-x), elementwise; finite for any x (no overflow
    warning at x = -1000)."""
    x = np.asarray(x, dtype=np.float64)
    sigmoid = np.exp(-np.logaddexp(0.0, -x))
    return x * sigmoid


def swiglu(x, w_gate, w_up, w_down):
    """The SwiGLU feed-forward, no biases: x (..., C), w_gate and w_up (F, C), w_down (C, F).

        y = (silu(x w_gate^T) * (x w_up^T)) w_down^T          (..., C)

    Raises ValueError naming ``swiglu`` and the shapes when they do not fit.
    """
    x = np.asarray(x, dtype=np.float64)
    w_gate, w_up = np.asarray(w_gate, dtype=np.float64), np.asarray(w_up, dtype=np.float64)
    w_down = np.asarray(w_down, dtype=np.float64)
    if w_gate.ndim != 2 or w_up.shape != w_gate.shape or x.shape[-1:] != w_gate.shape[1:]:
        raise ValueError("swiglu: w_gate %s and w_up %s must both be (F, C) for x of shape %s"
                         % (w_gate.shape, w_up.shape, x.shape))
    if w_down.shape != w_gate.shape[::-1]:
        raise ValueError("swiglu: w_down of shape %s must be (C, F) = %s"
                         % (w_down.shape, w_gate.shape[::-1]))
    hidden = silu(x @ w_gate.T) * (x @ w_up.T)                              # (..., F)
    return hidden @ w_down.T


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
    x = np.asarray(x, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if layout not in ROPE_LAYOUTS:
        raise ValueError("rope: layout must be 'half' or 'interleaved', got %r" % (layout,))
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError("rope: x must have shape (..., T, D) with D even, got %s" % (x.shape,))
    if positions.shape != x.shape[-2:-1]:
        raise ValueError("rope: positions of shape %s must be (T,) = %s for x of shape %s"
                         % (positions.shape, x.shape[-2:-1], x.shape))
    D = x.shape[-1]
    omega = theta ** (-np.arange(0, D, 2) / D)                               # (D/2,)
    angles = positions[:, None] * omega[None, :]                            # (T, D/2)
    cos, sin = np.cos(angles), np.sin(angles)
    out = np.empty_like(x)
    if layout == "half":
        a, b = x[..., :D // 2], x[..., D // 2:]
        out[..., :D // 2] = a * cos - b * sin
        out[..., D // 2:] = a * sin + b * cos
    else:
        a, b = x[..., 0::2], x[..., 1::2]
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
    return out


# ----- grouped-query attention and the KV cache -------------------------------------------------
def repeat_kv(x, n_rep):
    """Keys or values (B, H_kv, T, D) -> (B, H_kv n_rep, T, D): head j of the result is head
    j // n_rep of x (each head repeated n_rep times in a row). Raises ValueError naming
    ``repeat_kv`` if x is not 4-D or n_rep < 1."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError("repeat_kv: expected (B, H_kv, T, D), got shape %s" % (x.shape,))
    if n_rep < 1:
        raise ValueError("repeat_kv: n_rep must be at least 1, got %r" % (n_rep,))
    return np.repeat(x, n_rep, axis=1)


class KVCache:
    """The keys and values of one attention layer, kept between generation steps.

    ``keys`` and ``values`` are arrays (B, H, max_len, D) of zeros allocated once; ``length``
    positions of them are filled. ``append(k, v)`` writes k, v (B, H, T_new, D) at positions
    length .. length + T_new - 1 and returns the keys and values of positions 0 .. length - 1
    afterwards, each (B, H, length, D). Raises ValueError naming ``KVCache`` when k or v does
    not fit (B, H, ., D) (both shapes named) or when the new positions would pass max_len.
    """

    def __init__(self, batch_size, n_heads, max_len, head_dim):
        self.keys = np.zeros((batch_size, n_heads, max_len, head_dim))
        self.values = np.zeros((batch_size, n_heads, max_len, head_dim))
        self.max_len = max_len
        self.length = 0

    def append(self, k, v):
        """Write k, v (B, H, T_new, D) after the ``length`` cached positions (in place, no
        concatenation); return (keys, values) of all filled positions, each (B, H, length, D)."""
        k, v = np.asarray(k, dtype=np.float64), np.asarray(v, dtype=np.float64)
        B, H, _, D = self.keys.shape
        for name, a in (("keys", k), ("values", v)):
            if a.ndim != 4 or a.shape[:2] != (B, H) or a.shape[3] != D:
                raise ValueError("KVCache: %s of shape %s do not fit a cache of (B, H, T, D) = "
                                 "%s" % (name, a.shape, self.keys.shape))
        if k.shape != v.shape:
            raise ValueError("KVCache: keys %s and values %s must have the same shape"
                             % (k.shape, v.shape))
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError("KVCache: %d cached positions + %d new exceed max_len %d"
                             % (self.length, k.shape[2], self.max_len))
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


def cached_attention_step(q, cache):
    """Attention of the queries of the last T_new cached positions over the whole cache.

    q (B, H_q, T_new, D), T_new <= cache.length; the cache holds H_kv key/value heads with
    H_q a multiple of H_kv (each shared by n_rep = H_q / H_kv query heads, ``repeat_kv``).
    Query i sits at position p_i = cache.length - T_new + i and attends to keys 0 .. p_i:

        out = softmax(q k^T / sqrt(D) + causal mask) v            (B, H_q, T_new, D)

    T_new = 1 is one generation step (no mask needed); T_new = cache.length is the prompt.
    Raises ValueError naming ``cached_attention_step`` and both shapes when q does not fit.
    """
    q = np.asarray(q, dtype=np.float64)
    L = cache.length
    keys, values = cache.keys[:, :, :L], cache.values[:, :, :L]
    B, H_kv, _, D = keys.shape
    if q.ndim != 4 or q.shape[0] != B or q.shape[3] != D or q.shape[1] % H_kv \
            or not 1 <= q.shape[2] <= L:
        raise ValueError("cached_attention_step: queries of shape %s do not fit a cache of "
                         "(B, H_kv, length, D) = %s (need the same B and D, H_q a multiple "
                         "of H_kv, 1 <= T_new <= length)" % (q.shape, keys.shape))
    n_rep = q.shape[1] // H_kv
    k, v = repeat_kv(keys, n_rep), repeat_kv(values, n_rep)
    T_new = q.shape[2]
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(D)                            # (B, H, T_new, L)
    query_positions = L - T_new + np.arange(T_new)
    allowed = np.arange(L)[None, :] <= query_positions[:, None]             # (T_new, L)
    scores = np.where(allowed, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v
