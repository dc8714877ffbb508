"""Exercise softmax (chapter 6, Attention).

Write softmax along the last axis as an autograd Function with its backward. Check with:

    python -m tinyllm.exercises check softmax this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class Softmax(Function):
    """Softmax along the last axis.

    Shapes: x (..., C) -> y (..., C); every slice y[..., :] sums to 1.

    Forward:
        y_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j (no overflow; same result)

    Backward (g = dL/dy): the Jacobian is dy_i/dx_j = y_i ([i = j] - y_j), so
        dL/dx_j = sum_i g_i y_i ([i = j] - y_j) = y_j (g_j - sum_i g_i y_i)
    i.e.  dx = y * (g - sum(g * y, last axis, keepdims)).

    Use it as ``Softmax.apply(x)``.
    """

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_y):
        raise NotImplementedError
