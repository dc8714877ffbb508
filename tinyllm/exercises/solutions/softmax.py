"""Reference solution of exercise softmax (chapter 6)."""

import numpy as np

from tinyllm.autograd import Function


class Softmax(Function):
    """y = softmax(x) along the last axis; backward dx = y * (g - sum(g * y))."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        return y * (grad_y - np.sum(grad_y * y, axis=-1, keepdims=True))
