"""The two layers that are lookups and products, as ops: ``Linear`` and ``Embedding``.

``tinyllm.functional.linear`` and ``tinyllm.functional.embedding`` check their arguments and
apply these.
"""

from tinyllm.autograd import Function
from tinyllm.kernels import matmul as matmul_kernels
from tinyllm.kernels.embedding_backward import embedding_backward


class Linear(Function):
    """y = x W^T + b as one op, with the three products of its backward written out.

    Shapes: x (..., in), W (out, in), b (out,) -> y (..., out). The leading axes of x are
    folded into one axis of N rows, X (N, in), so that each pass is one large matrix product
    (``tinyllm.kernels.matmul.matmul``: BLAS, or the backend's kernel) instead of one small
    product per batch entry followed by a sum:

        forward:   Y = X W^T + b                           (N, out)
        backward:  dL/dX = dL/dY W                         (N, in)
                   dL/dW = (dL/dY)^T X                     (out, in): the sum over all N rows
                   dL/db = sum over the N rows of dL/dY    (out,)

    Cost: 2 N in out FLOPs forward, twice that backward.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        rows = x.reshape(-1, x.shape[-1])                              # X (N, in)
        y = matmul_kernels.matmul(rows, weight.T)
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_rows = grad.reshape(-1, weight.shape[0])                  # dL/dY (N, out)
        grad_x = grad_weight = grad_bias = None
        if need_x:
            grad_x = matmul_kernels.matmul(grad_rows, weight).reshape(x.shape)
        if need_weight:
            grad_weight = matmul_kernels.matmul(grad_rows.T, x.reshape(-1, x.shape[-1]))
        if need_bias:
            grad_bias = grad_rows.sum(axis=0)
        return grad_x, grad_weight, grad_bias


class Embedding(Function):
    """y[...] = W[ids[...]]: each id picks one row of the table W (V, D).

    Shapes: ids (...) integers in [0, V), W (V, D) -> y (..., D).
    Backward: row v of dL/dW is the sum of dL/dy over every position where ids == v (an id
    that occurs twice gets both gradients: a scatter-add, not assignment); rows never looked
    up, and the ``padding_idx`` row, get zero. The scatter-add is
    ``tinyllm.kernels.embedding_backward.embedding_backward`` (``np.add.at`` on the "numpy"
    backend).
    """

    @staticmethod
    def forward(ctx, ids, weight, padding_idx=None):
        ctx.ids, ctx.shape, ctx.padding_idx = ids, weight.shape, padding_idx
        return weight[ids]

    @staticmethod
    def backward(ctx, grad):
        V, D = ctx.shape
        grad_weight = embedding_backward(ctx.ids.reshape(-1), grad.reshape(-1, D), V)
        if ctx.padding_idx is not None:
            grad_weight[ctx.padding_idx] = 0
        return None, grad_weight
