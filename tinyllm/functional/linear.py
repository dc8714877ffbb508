"""The two layers that are lookups and products: ``linear`` and ``embedding`` (their ops,
``Linear`` and ``Embedding``, are in ``tinyllm.ops.linear``)."""

import numpy as np

from tinyllm.autograd import Tensor
from tinyllm.ops.arithmetic import promote
from tinyllm.ops.linear import Embedding, Linear


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
