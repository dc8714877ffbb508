"""Reference solution of exercise softmax_cross_entropy (chapter 2)."""

import numpy as np

from tinyllm.autograd import Function


class SoftmaxCrossEntropy(Function):
    """Mean cross-entropy of logits z (N, C) against class indices y (N,), with
    L = -(1/N) sum_n log softmax(z_n)[y_n] and dL/dz = (softmax(z) - onehot(y)) / N."""

    @staticmethod
    def forward(ctx, logits, target):
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)      # no exp overflows
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ctx.save_for_backward(log_probs, target)
        return -log_probs[np.arange(n), target].mean()

    @staticmethod
    def backward(ctx, grad_loss):
        log_probs, target = ctx.saved_tensors
        n = log_probs.shape[0]
        grad_logits = np.exp(log_probs)                           # softmax(z)
        grad_logits[np.arange(n), target] -= 1.0                  # - onehot(y)
        return grad_loss * grad_logits / n, None
