"""Dropout: randomly zero activations during training so that units cannot co-adapt."""

from tinyllm import random
from tinyllm.autograd import Tensor


def dropout(x, p=0.5, training=True, generator=None):
    """Inverted dropout: y = x * m / (1 - p), with m_i = 1 with probability 1 - p, else 0.

    Dividing by the keep probability 1 - p keeps the expected value E[y] = x, so nothing
    changes at evaluation time, where dropout is the identity (``training=False``).
    Backward (by autograd): dL/dx = dL/dy * m / (1 - p).
    ``p=0`` or ``training=False`` return x itself; ``p=1`` gives zeros. Random numbers come
    from ``tinyllm.random.default_generator()`` unless a NumPy ``generator`` is given.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError("dropout: p is the probability of zeroing an element and must lie in "
                         "[0, 1], got %r" % (p,))
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * Tensor(0.0, dtype=x.dtype)
    rng = random.default_generator() if generator is None else generator
    keep = rng.random(x.shape) >= p
    return x * Tensor(keep / (1.0 - p), dtype=x.dtype)
