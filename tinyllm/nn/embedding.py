"""``Embedding``: a table of learned vectors, one row per token id."""

import numpy as np

from tinyllm import ops
from tinyllm.autograd import Tensor, no_grad
from tinyllm.functional.linear import embedding
from tinyllm.nn import init
from tinyllm.nn.module import Module
from tinyllm.nn.parameter import Parameter


class Embedding(Module):
    """y = weight[ids]: ids (...) integers in [0, num_embeddings) -> y (..., embedding_dim).

    ``weight`` (num_embeddings, embedding_dim) starts as N(0, 1) samples, as in PyTorch. The
    row ``padding_idx`` (if given) starts at zero and receives no gradient, so a padding
    token keeps a zero vector.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=None,
                 _weight=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError("Embedding: padding_idx %d is out of range for %d embeddings"
                                 % (padding_idx, num_embeddings))
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(ops.zeros(num_embeddings, embedding_dim, dtype=dtype))
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        """An Embedding whose table is a copy of ``embeddings`` (V, D); frozen (no gradient)
        unless ``freeze=False``. The padding row is used as given."""
        data = np.asarray(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        table = Tensor(data, dtype=data.dtype if data.dtype.kind == "f" else None)
        if table.ndim != 2:
            raise ValueError("Embedding.from_pretrained: embeddings must be a matrix "
                             "(num_embeddings, embedding_dim), got shape %s" % (table.shape,))
        module = cls(table.shape[0], table.shape[1], padding_idx=padding_idx, _weight=table)
        module.weight.requires_grad_(not freeze)
        return module

    def forward(self, ids):
        return embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self):
        text = "%d, %d" % (self.num_embeddings, self.embedding_dim)
        if self.padding_idx is not None:
            text += ", padding_idx=%d" % self.padding_idx
        return text
