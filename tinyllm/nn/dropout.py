"""``Dropout``: zero each element with probability p during training (identity in eval mode)."""

from tinyllm.functional.dropout import dropout
from tinyllm.nn.module import Module


class Dropout(Module):
    """y = x * m / (1 - p), m_i ~ Bernoulli(1 - p), in training mode; y = x after ``eval()``.

    See ``tinyllm.functional.dropout``. Shapes: any; y has x's shape.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError("Dropout: p must lie in [0, 1], got %r" % (p,))
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return "p=%g" % self.p
