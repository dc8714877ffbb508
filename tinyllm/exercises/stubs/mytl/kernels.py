"""Step kernels (chapter 11): fused attention with the online softmax, compiled by Numba.

Attention of one head, for each of N = batch * heads independent (T, d) problems:

    O = softmax(Q K^T / sqrt(d)) V          Q, K, V (T, d) -> O (T, d)

``attention_reference`` computes it the plain NumPy way: the (N, T, T) scores, their softmax,
the product with V. It holds T * T numbers per head.

``attention_forward`` computes the same numbers in a Numba kernel that never holds the scores:
one query row at a time, it walks over the keys and keeps three running quantities, the
maximum m of the scores seen so far, the sum l of exp(s_j - m) and the output accumulator
acc = sum_j exp(s_j - m) v_j (the online softmax of chapter 11, section 5). At the end,
O[i] = acc / l. Extra memory per row: m, l and acc, O(d).

Masks: with ``causal=True``, query i sees the keys j <= i only.

You write both functions. Inside ``@njit`` you may use loops, ``math.exp``, ``math.sqrt``,
``np.empty``, ``np.zeros`` and ``-np.inf``; Numba compiles the function the first time it is
called (about half a second), so keep it to plain loops over float64 numbers.
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
    raise NotImplementedError


@njit
def attention_forward(q, k, v, causal):
    """The fused kernel: equals ``attention_reference(q, k, v, causal)`` to float rounding.

    q, k, v: C-contiguous float64 arrays (N, T, d); causal: a bool. Returns a new float64
    array (N, T, d). One query row at a time, the keys one at a time, with a running max,
    sum and output; never an array of size T * T. Keep the ``@njit``: the checker verifies
    that Numba compiles this function.
    """
    raise NotImplementedError
