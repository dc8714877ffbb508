"""Exercise softmax_cross_entropy (chapter 2, Losses and their gradients).

Write softmax followed by cross-entropy as ONE autograd Function, with the closed-form
backward. Check it with:

    python -m tinyllm.exercises check softmax_cross_entropy this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class SoftmaxCrossEntropy(Function):
    """Mean cross-entropy of logits against class indices.

    Shapes: logits z (N, C) floats; target y (N,) integers in [0, C). Output: a number (0-d).

    Forward:
        log p_n = z_n - logsumexp(z_n),   logsumexp(z) = m + log sum_c exp(z_c - m),
                                          m = max_c z_c  (so that no exp overflows)
        L = -(1/N) sum_n log p_n[y_n]

    Backward (grad_loss = dL_total/dL, a number):
        dL/dz = grad_loss * (softmax(z) - onehot(y)) / N        shape (N, C)
        the target gets no gradient: return None for it.

    Use it as ``SoftmaxCrossEntropy.apply(logits, target)``. The checks feed logits as large
    as 1000, where exp(z) overflows: subtract the row's max first.
    """

    @staticmethod
    def forward(ctx, logits, target):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_loss):
        raise NotImplementedError
