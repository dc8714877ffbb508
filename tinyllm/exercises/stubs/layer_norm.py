"""Exercise layer_norm (chapter 8, The Transformer).

Write layer normalisation with its hand-derived backward as an autograd Function. Check with:

    python -m tinyllm.exercises check layer_norm this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class LayerNorm(Function):
    """Layer normalisation over the last axis.

    Shapes: x (..., D), gamma (D,), beta (D,) -> y (..., D).

    Forward, for each row x of D numbers:
        mu = mean(x),  var = mean((x - mu)^2)  (biased: divide by D),  sigma = sqrt(var + eps)
        xhat = (x - mu) / sigma
        y = gamma * xhat + beta

    Backward (dy = dL/dy, (..., D)), with g = dy * gamma and means over the last axis:
        dx = (1 / sigma) * (g - mean(g) - xhat * mean(g * xhat))
        dgamma = sum of dy * xhat over every axis but the last        (D,)
        dbeta  = sum of dy over every axis but the last               (D,)
    (x reaches y through xhat directly, through mu and through sigma: the two mean terms
    are the last two paths.) Return (dx, dgamma, dbeta).

    Use it as ``LayerNorm.apply(x, gamma, beta, eps=1e-5)``.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_y):
        raise NotImplementedError
