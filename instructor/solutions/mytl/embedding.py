"""Step embedding (chapter 5): a table of learned vectors, looked up by token id.

Token ids v in [0, V) become vectors: row v of the table W (V, D). The lookup is the product
with a one-hot vector, Embedding(x) = W^T x for x = e_v (document 000, §4.1), computed as a
row lookup W[ids]. Its gradient is the matrix-product rule of that one-hot product, which
touches only the rows that were looked up.
"""

import numpy as np

from mytl.autograd import Function, Tensor
from mytl.nn import Module


class EmbeddingFunction(Function):
    """y = W[ids]: ``EmbeddingFunction.apply(weight, ids)``.

    Shapes: weight W (V, D) float, ids (...) integers -> y (..., D), y[..., :] = W[ids[...]],
    which equals the one-hot product one_hot(ids) W. The gradient flows to ``weight`` only
    (ids are not differentiable: backward returns None for them).

    An id outside [0, V) is an IndexError whose message names the op, the id and V:
    "embedding: id 7 is outside [0, num_embeddings) = [0, 5)" (NumPy's own indexing would
    read -1 as the last row without complaint).

    Backward: dL/dW = one_hot(ids)^T G, G = dL/dy: row v is the sum of G over every position
    holding id v (np.add.at), zero for ids that do not occur.
    """

    @staticmethod
    def forward(ctx, weight, ids):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError("embedding: ids must be integers, got dtype %s" % ids.dtype)
        num_embeddings = weight.shape[0]
        outside = (ids < 0) | (ids >= num_embeddings)
        if np.any(outside):
            bad = int(ids[outside].flat[0])
            raise IndexError("embedding: id %d is outside [0, num_embeddings) = [0, %d)"
                             % (bad, num_embeddings))
        ctx.ids = ids
        ctx.shape = weight.shape
        return weight[ids]

    @staticmethod
    def backward(ctx, grad):
        grad_weight = np.zeros(ctx.shape, dtype=grad.dtype)
        np.add.at(grad_weight, ctx.ids, grad)
        return grad_weight, None


class Embedding(Module):
    """A learned table of ``num_embeddings`` vectors of size ``embedding_dim``.

    ``weight`` (num_embeddings, embedding_dim), float64, ``requires_grad=True``, drawn from
    N(0, 1) as PyTorch does, by ``rng.standard_normal((num_embeddings, embedding_dim))``
    (``rng`` a NumPy Generator; default ``np.random.default_rng()``).

    ``forward(ids)``: ids (...) integers (an array, a list or an integer Tensor) -> (..., D).
    """

    def __init__(self, num_embeddings, embedding_dim, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Tensor(rng.standard_normal((num_embeddings, embedding_dim)),
                             requires_grad=True)

    def forward(self, ids):
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        return EmbeddingFunction.apply(self.weight, ids)
