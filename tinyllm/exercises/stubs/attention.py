"""Exercise attention (chapter 6, Attention).

Write scaled dot-product attention with a hand-written backward as an autograd Function.
Check it with:

    python -m tinyllm.exercises check attention this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class Attention(Function):
    """Single-head scaled dot-product attention, optionally causal.

    Shapes: q (T, d) or (B, T, d); k (S, d) or (B, S, d); v (S, dv) or (B, S, dv).
    Output O: (T, dv) or (B, T, dv). Transpose the last two axes with np.swapaxes(a, -1, -2)
    so that the same code serves both cases.

    Forward:
        S = Q K^T / sqrt(d)                          scores (.., T, S)
        causal=True: S_ij = -inf where j > i        (query i sees keys 0..i only)
        P = softmax(S) along the last axis           weights, rows sum to 1
        O = P V

    Backward (dO = dL/dO):
        dV = P^T dO
        dP = dO V^T
        dS = P * (dP - rowsum(dP * P))               the softmax backward, row by row
        dQ = dS K / sqrt(d)
        dK = dS^T Q / sqrt(d)
    (masked entries have P = 0, so they get dS = 0: nothing more to do for causal.)

    Use it as ``Attention.apply(q, k, v, causal=True)``; return (dQ, dK, dV) from backward.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal=False):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError
