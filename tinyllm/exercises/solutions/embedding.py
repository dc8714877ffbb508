"""Reference solution of exercise embedding (chapter 5)."""

import numpy as np

from tinyllm.autograd import Function


class EmbeddingLookup(Function):
    """y = W[ids]: weight (V, D), integer ids (...) -> (..., D). The backward scatter-adds
    the upstream gradient into the rows that were looked up (a repeated id gets the sum)."""

    @staticmethod
    def forward(ctx, weight, ids):
        ctx.ids, ctx.weight_shape = ids, weight.shape
        return weight[ids]

    @staticmethod
    def backward(ctx, grad_out):
        grad_weight = np.zeros(ctx.weight_shape, dtype=grad_out.dtype)
        np.add.at(grad_weight, ctx.ids, grad_out)     # not grad_weight[ids] = ...: repeats add
        return grad_weight, None
