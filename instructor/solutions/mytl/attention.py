"""Step attention (chapter 6): scaled dot-product attention, multi-head attention, online softmax.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + M) V

Each of the T queries scores the S keys by a dot product, the softmax turns each row of
scores into weights that sum to 1 over the keys, and the output is the weighted average of
the values. Attention is composed from the ops of the earlier steps, so autograd gives its
backward: nothing here has a hand-written backward.
"""

import math

import numpy as np

from mytl import tensor_ops as ops
from mytl.losses import softmax
from mytl.nn import Linear, Module


def _swap_last_two(x):
    """The permutation that transposes the last two axes of an array of x's rank."""
    axes = list(range(x.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return tuple(axes)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False):
    """softmax(q k^T / sqrt(d) + M) v, with PyTorch's semantics.

    Shapes: q (..., T, d), k (..., S, d), v (..., S, dv) -> (..., T, dv); the leading axes
    (batch, heads) broadcast as in matmul.

    - ``attn_mask``: a boolean array broadcastable to (..., T, S); True means the query may
      attend to the key (PyTorch's convention). The scores where it is False become -inf, so
      their weights are 0.
    - ``is_causal=True``: the mask is the lower triangle tril(ones(T, S)) (aligned top left,
      as in PyTorch): query i may attend to keys j <= i.

    Every query must be allowed at least one key. ValueError if both ``attn_mask`` and
    ``is_causal`` are given, or if q and k have different d (the message names both shapes).
    """
    if attn_mask is not None and is_causal:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, "
                         "not both")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError("scaled_dot_product_attention: q of shape %s and k of shape %s have "
                         "different d: %d != %d" % (tuple(q.shape), tuple(k.shape),
                                                   q.shape[-1], k.shape[-1]))
    T, S, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scores = ops.matmul(q, ops.transpose(k, _swap_last_two(k))) * (1.0 / math.sqrt(d))
    if is_causal:
        attn_mask = np.tril(np.ones((T, S), dtype=bool))
    if attn_mask is not None:
        scores = ops.masked_fill(scores, ~np.asarray(attn_mask, dtype=bool), -np.inf)
    weights = softmax(scores, axis=-1)
    return ops.matmul(weights, v)


class MultiHeadAttention(Module):
    """Multi-head self-attention over x (B, T, C), C = embed_dim, H = num_heads heads of
    size D = C / H.

    ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``: Linear(C, C) layers, created in that
    order with the same ``rng``. forward(x, is_causal=False, attn_mask=None):

        q = q_proj(x), k = k_proj(x), v = v_proj(x)                 (B, T, C)
        split each into heads: (B, T, C) -> (B, T, H, D) -> (B, H, T, D)
        y = scaled_dot_product_attention(q, k, v, attn_mask, is_causal)   (B, H, T, D)
        merge the heads: (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        return out_proj(y)                                          (B, T, C)

    Head h uses the features h*D .. (h+1)*D - 1 of q, k and v. ValueError naming both
    numbers if embed_dim is not divisible by num_heads.
    """

    def __init__(self, embed_dim, num_heads, rng=None):
        if embed_dim % num_heads != 0:
            raise ValueError("MultiHeadAttention: embed_dim %d is not divisible by num_heads %d"
                             % (embed_dim, num_heads))
        rng = np.random.default_rng() if rng is None else rng
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = Linear(embed_dim, embed_dim, rng=rng)
        self.k_proj = Linear(embed_dim, embed_dim, rng=rng)
        self.v_proj = Linear(embed_dim, embed_dim, rng=rng)
        self.out_proj = Linear(embed_dim, embed_dim, rng=rng)

    def _split_heads(self, x, B, T):
        return x.reshape(B, T, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def forward(self, x, is_causal=False, attn_mask=None):
        B, T, C = x.shape
        q = self._split_heads(self.q_proj(x), B, T)
        k = self._split_heads(self.k_proj(x), B, T)
        v = self._split_heads(self.v_proj(x), B, T)
        y = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
        return self.out_proj(y)


def online_softmax(x, block_size):
    """softmax(x) for x (T,), reading x in blocks of ``block_size``, in NumPy.

    Pass 1 keeps a running max m and a running sum l = sum_j exp(x_j - m) over the blocks
    read so far; when a block raises the max from m to m', the sum so far is rescaled,
    l <- l exp(m - m'), before the block's terms are added. Pass 2 writes exp(x - m) / l
    block by block. Never exponentiates x itself (x may be near 1000) and never the whole
    row at once. Entries of -inf (masked) get weight 0, also when a whole block, or a
    first block, is -inf; at least one entry must be finite.

    ValueError naming ``block_size`` if it is not a positive integer.
    """
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError("online_softmax: block_size must be a positive integer, got %r"
                         % (block_size,))
    x = np.asarray(x, dtype=np.float64)
    m, l = -np.inf, 0.0
    for start in range(0, x.size, block_size):                   # pass 1: m and l
        block = x[start:start + block_size]
        m_new = max(m, block.max())
        if m_new == -np.inf:
            continue                # all masked so far: nothing to add, nothing to rescale
        l = l * np.exp(m - m_new) + np.exp(block - m_new).sum()
        m = m_new
    y = np.empty_like(x)
    for start in range(0, x.size, block_size):                   # pass 2: normalise
        y[start:start + block_size] = np.exp(x[start:start + block_size] - m) / l
    return y
