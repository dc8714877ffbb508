"""Step kernels (chapter 11): fused attention with the online softmax, compiled by Numba.

Attention of one head, for each of N = batch * heads independent (T, d) problems:

    O = softmax(Q K^T / sqrt(d)) V          Q, K, V (T, d) -> O (T, d)

``attention_reference`` computes it the plain NumPy way: the (N, T, T) scores, their softmax,
the product with V. It holds T * T numbers per head.

``attention_forward`` computes the same numbers in a Numba kernel that never holds the scores:
one query row at a time, it walks over the keys and keeps three running quantities, the
maximum m of the scores seen so far, the sum l of exp(s_j - m) and the output accumulator
acc = sum_j exp(s_j - m) v_j (the online softmax of chapter 11, section 5). When a new score
raises the maximum from m to m', the old l and acc were summed relative to m and are rescaled
by exp(m - m'). At the end, O[i] = acc / l. Extra memory per row: m, l and acc, O(d).

Masks: with ``causal=True``, query i sees the keys j <= i only.
"""

import math

import numpy as np
from numba import njit


def attention_reference(q, k, v, causal=False):
    """softmax(q k^T / sqrt(d)) v computed whole, in NumPy: the kernel's reference.

    q, k, v: float64 arrays (N, T, d) -> (N, T, d). With ``causal``, the scores of keys
    j > i are -inf before the softmax (query i sees keys 0 .. i). The softmax subtracts each
    row's maximum before the exponential.
    """
    d = q.shape[-1]
    # k^T as a contiguous copy: NumPy's batched matmul falls back to a slow loop on a view
    k_t = np.ascontiguousarray(np.swapaxes(k, -1, -2))                   # (N, d, T)
    scores = np.matmul(q, k_t) / math.sqrt(d)                            # (N, T, T)
    if causal:
        T = q.shape[1]
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return np.matmul(weights, v)


@njit
def attention_forward(q, k, v, causal):
    """The fused kernel: equals ``attention_reference(q, k, v, causal)`` to float rounding.

    q, k, v: C-contiguous float64 arrays (N, T, d); causal: a bool. Returns a new float64
    array (N, T, d). One query row at a time, the keys one at a time, with a running max,
    sum and output; never an array of size T * T.
    """
    N, T, d = q.shape
    scale = 1.0 / math.sqrt(d)
    out = np.empty((N, T, d))
    acc = np.empty(d)
    for n in range(N):
        for i in range(T):
            running_max = -np.inf
            running_sum = 0.0
            acc[:] = 0.0
            last = i + 1 if causal else T
            for j in range(last):
                score = 0.0
                for c in range(d):
                    score += q[n, i, c] * k[n, j, c]
                score *= scale
                if score > running_max:
                    rescale = math.exp(running_max - score)        # exp(-inf) = 0 at first
                    running_sum *= rescale
                    acc *= rescale
                    running_max = score
                weight = math.exp(score - running_max)
                running_sum += weight
                for c in range(d):
                    acc[c] += weight * v[n, j, c]
            for c in range(d):
                out[n, i, c] = acc[c] / running_sum
    return out
