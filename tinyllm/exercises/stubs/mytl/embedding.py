"""Step embedding (chapter 5): a table of learned vectors, looked up by token id.

Token ids v in [0, V) become vectors: row v of the table W (V, D). The lookup is the product
with a one-hot vector, Embedding(x) = W^T x for x = e_v (document 000, §4.1), computed as a
row lookup W[ids]. Its gradient is the matrix-product rule of that one-hot product, which
touches only the rows that were looked up.

You write ``EmbeddingFunction`` (forward and backward) and the ``Embedding`` layer. Check
your work with ``python -m tinyllm.exercises check embedding``.
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

    Backward: dL/dW, of W's shape, from the upstream gradient G = dL/dy (..., D). Derive it
    from the one-hot product (chapter 5, section 3).
    """

    @staticmethod
    def forward(ctx, weight, ids):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class Embedding(Module):
    """A learned table of ``num_embeddings`` vectors of size ``embedding_dim``.

    ``weight`` (num_embeddings, embedding_dim), float64, ``requires_grad=True``, drawn from
    N(0, 1) as PyTorch does, by ``rng.standard_normal((num_embeddings, embedding_dim))``
    (``rng`` a NumPy Generator; default ``np.random.default_rng()``).

    ``forward(ids)``: ids (...) integers (an array, a list or an integer Tensor) -> (..., D),
    through ``EmbeddingFunction`` so that the gradient reaches ``weight``.
    """

    def __init__(self, num_embeddings, embedding_dim, rng=None):
        raise NotImplementedError

    def forward(self, ids):
        raise NotImplementedError
