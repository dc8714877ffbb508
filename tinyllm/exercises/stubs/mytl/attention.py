"""Step attention (chapter 6): scaled dot-product attention, multi-head attention, online softmax.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + M) V

Each of the T queries scores the S keys by a dot product, the softmax turns each row of
scores into weights that sum to 1 over the keys, and the output is the weighted average of
the values. Attention is composed from the ops of the earlier steps, so autograd gives its
backward: nothing here has a hand-written backward.

You write ``scaled_dot_product_attention``, ``MultiHeadAttention`` and ``online_softmax``
(NumPy only: the block-by-block softmax of FlashAttention). Check your work with
``python -m tinyllm.exercises check attention``.
"""

import math

import numpy as np

from mytl import tensor_ops as ops
from mytl.losses import softmax
from mytl.nn import Linear, Module


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False):
    """softmax(q k^T / sqrt(d) + M) v, with PyTorch's semantics.

    Shapes: q (..., T, d), k (..., S, d), v (..., S, dv) -> (..., T, dv); the leading axes
    (batch, heads) broadcast as in matmul. Compose it from ``ops.matmul``,
    ``ops.transpose``, a multiplication, ``ops.masked_fill`` and ``softmax`` (mytl.losses)
    so that autograd gives the backward.

    - ``attn_mask``: a boolean array broadcastable to (..., T, S); True means the query may
      attend to the key (PyTorch's convention). The scores where it is False become -inf, so
      their weights are 0.
    - ``is_causal=True``: the mask is the lower triangle tril(ones(T, S)) (aligned top left,
      as in PyTorch): query i may attend to keys j <= i.

    Every query must be allowed at least one key. ValueError if both ``attn_mask`` and
    ``is_causal`` are given (the message names both), or if q and k have different d (the
    message names both shapes).
    """
    raise NotImplementedError


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
        raise NotImplementedError

    def forward(self, x, is_causal=False, attn_mask=None):
        raise NotImplementedError


def online_softmax(x, block_size):
    """softmax(x) for x (T,), reading x in blocks of ``block_size``, in NumPy.

    Pass 1 reads the blocks in order and keeps two numbers: the running max m of the
    entries read so far and the running sum l = sum_j exp(x_j - m) over them. Pass 2 writes
    exp(x - m) / l block by block. Never exponentiate x itself (x may be near 1000) and never
    the whole row at once. Entries of -inf (masked) get weight 0, also when a whole block,
    or the first block, is -inf; at least one entry is finite.

    ValueError naming ``block_size`` if it is not a positive integer.
    """
    raise NotImplementedError
