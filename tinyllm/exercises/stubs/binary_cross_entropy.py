"""Exercise binary_cross_entropy (chapter 2, Losses and their gradients).

Write the binary cross-entropy of probabilities as an autograd Function. Check it with:

    python -m tinyllm.exercises check binary_cross_entropy this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class BinaryCrossEntropy(Function):
    """Mean binary cross-entropy of predicted probabilities against targets.

    Shapes: probs yhat (...) floats in (0, 1); target y (...) the same shape, floats in
    [0, 1] (usually 0 or 1). Output: a number (0-d). N = the number of elements.

    Forward:
        L = -(1/N) sum [ y log(yhat) + (1 - y) log(1 - yhat) ]

        e.g. one element with y = 1, yhat = 0.9: L = -log 0.9 = 0.1053605 (positive: a loss
        is never negative); y = 0, yhat = 0.1 gives the same 0.1053605.

    Backward (grad_loss = dL_total/dL, a number):
        dL/dyhat = grad_loss * (yhat - y) / (yhat (1 - yhat) N)      shape of yhat
        the target gets no gradient: return None for it.

    Use it as ``BinaryCrossEntropy.apply(probs, target)``.
    """

    @staticmethod
    def forward(ctx, probs, target):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_loss):
        raise NotImplementedError
