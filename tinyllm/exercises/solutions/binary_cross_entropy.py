"""Reference solution of exercise binary_cross_entropy (chapter 2)."""

import numpy as np

from tinyllm.autograd import Function


class BinaryCrossEntropy(Function):
    """Mean binary cross-entropy of probabilities yhat against targets y (same shape, N
    elements): L = -(1/N) sum [y log yhat + (1 - y) log(1 - yhat)],
    dL/dyhat = (yhat - y) / (yhat (1 - yhat) N)."""

    @staticmethod
    def forward(ctx, probs, target):
        ctx.save_for_backward(probs, target)
        return -np.mean(target * np.log(probs) + (1 - target) * np.log(1 - probs))

    @staticmethod
    def backward(ctx, grad_loss):
        probs, target = ctx.saved_tensors
        return grad_loss * (probs - target) / (probs * (1 - probs) * probs.size), None
