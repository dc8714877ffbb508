"""Exercise embedding (chapter 5, Embeddings).

Write the embedding lookup and its scatter-add gradient as an autograd Function. Check with:

    python -m tinyllm.exercises check embedding this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class EmbeddingLookup(Function):
    """Look up one row of the table per id.

    Shapes: weight W (V, D) floats; ids (...) integers in [0, V), any shape. Output (..., D).

    Forward:
        y[...] = W[ids[...]]         (the same as onehot(ids) @ W, without the one-hot)

    Backward (grad_out = dL/dy, shape (..., D)):
        dL/dW[v] = sum of grad_out[...] over every position where ids[...] == v
                   (rows never looked up get 0; an id that occurs twice gets BOTH
                   gradients added: an assignment grad_W[ids] = grad_out keeps only one)
        the ids get no gradient: return None for them.

    Use it as ``EmbeddingLookup.apply(weight, ids)``.
    """

    @staticmethod
    def forward(ctx, weight, ids):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError
