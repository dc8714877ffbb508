"""The two layers that are lookups and products: ``linear`` and ``embedding``."""

import numpy as np

from tinyllm.autograd import Function, Tensor
from tinyllm.kernels import fused
from tinyllm.kernels import matmul as matmul_kernels
from tinyllm.ops.arithmetic import promote


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


def linear(x, weight, bias=None):
    """y = x @ W^T + b, the affine map of ``nn.Linear`` (one ``Linear`` op).

    Shapes: x (..., in), weight W (out, in), bias b (out,) -> y (..., out). W is stored as
    (out, in), as in PyTorch, so row j of W holds the weights of output feature j.
    Backward (see ``Linear``): dL/dx = dL/dy @ W, dL/dW = sum over the batch of dL/dy^T x,
    dL/db = dL/dy summed over every axis but the last.
    """
    if weight.ndim != 2:
        raise ValueError("linear: weight must be a matrix of shape (out_features, in_features), "
                         "got shape %s" % (weight.shape,))
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError("linear: input of shape %s does not fit weight of shape %s: the input's "
                         "last axis must have in_features = %d elements"
                         % (tuple(x.shape), tuple(weight.shape), weight.shape[1]))
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError("linear: bias of shape %s does not fit weight of shape %s; it must "
                         "have shape (%d,)" % (tuple(bias.shape), tuple(weight.shape),
                                               weight.shape[0]))
    x, weight = promote(x, weight)
    if bias is not None:
        bias, weight = promote(bias, weight)
    return Linear.apply(x, weight, bias)


class Embedding(Function):
    """y[...] = W[ids[...]]: each id picks one row of the table W (V, D).

    Shapes: ids (...) integers in [0, V), W (V, D) -> y (..., D).
    Backward: row v of dL/dW is the sum of dL/dy over every position where ids == v (an id
    that occurs twice gets both gradients: a scatter-add, not assignment); rows never looked
    up, and the ``padding_idx`` row, get zero. The scatter-add is
    ``tinyllm.kernels.fused.embedding_backward`` (``np.add.at`` on the "numpy" backend).
    """

    @staticmethod
    def forward(ctx, ids, weight, padding_idx=None):
        ctx.ids, ctx.shape, ctx.padding_idx = ids, weight.shape, padding_idx
        return weight[ids]

    @staticmethod
    def backward(ctx, grad):
        V, D = ctx.shape
        grad_weight = fused.embedding_backward(ctx.ids.reshape(-1), grad.reshape(-1, D), V)
        if ctx.padding_idx is not None:
            grad_weight[ctx.padding_idx] = 0
        return None, grad_weight


def embedding(ids, weight, padding_idx=None):
    """Look up rows of ``weight`` (V, D) for integer ``ids`` of any shape: (...) -> (..., D).

    ``padding_idx`` (may be negative, counted from the end) names a row that receives no
    gradient, so a padding token's vector stays as it is during training.
    """
    data = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if data.dtype.kind not in "iu":
        raise TypeError("embedding: ids must be integers (token ids), got dtype %s" % data.dtype)
    if weight.ndim != 2:
        raise ValueError("embedding: weight must be a matrix of shape (num_embeddings, "
                         "embedding_dim), got shape %s" % (weight.shape,))
    vocab = weight.shape[0]
    if data.size:
        bad = data[(data < 0) | (data >= vocab)]
        if bad.size:
            raise IndexError("embedding: id %d is out of range for a vocabulary of size %d "
                             "(ids must lie in [0, %d))" % (bad.flat[0], vocab, vocab))
    if padding_idx is not None:
        if not -vocab <= padding_idx < vocab:
            raise ValueError("embedding: padding_idx %d is out of range for a vocabulary of "
                             "size %d" % (padding_idx, vocab))
        padding_idx %= vocab
    return Embedding.apply(data.astype(np.int64, copy=False), weight, padding_idx=padding_idx)
