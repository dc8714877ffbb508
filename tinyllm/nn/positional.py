"""Positional encodings: telling attention where each token sits.

Attention treats its input as a set: permuting the tokens permutes the output the same way. To
let a model use word order, a vector that depends only on the position is added to each token's
embedding. Two ways to get those vectors:

- ``SinusoidalPositionalEncoding`` (the original Transformer's): fixed sines and cosines of
  geometrically spaced frequencies, nothing to learn;
- ``LearnedPositionalEmbedding`` (GPT's and BERT's): one trained vector per position.

Both take x of shape (B, T, d_model) (or (T, d_model)), positions along the second-to-last
axis, and return x + P[:T], where P is the (max_len, d_model) table of position vectors.
"""

import numpy as np

from tinyllm import ops
from tinyllm.autograd import Tensor
from tinyllm.nn import init
from tinyllm.nn.module import Module
from tinyllm.nn.parameter import Parameter


def sinusoidal_table(length, d_model):
    """The (length, d_model) array of sinusoidal position vectors (float64):

        PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

    Each pair of columns is a rotation at its own frequency, from 1 radian per position (i = 0)
    down to about 1/10000, so PE[pos + k] is a linear function of PE[pos] for every offset k.
    An odd d_model gets one more sine column than cosine columns.
    """
    position = np.arange(length, dtype=np.float64)[:, None]              # (length, 1)
    frequency = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)         # (ceil(d/2),)
    angle = position * frequency                                          # (length, ceil(d/2))
    table = np.zeros((length, d_model))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, :d_model // 2])
    return table


def _check_input(name, x, d_model, max_len):
    """x must be (..., T, d_model) with T <= max_len; returns T."""
    if x.ndim < 2 or x.shape[-1] != d_model:
        raise ValueError("%s: expected input of shape (B, T, %d) or (T, %d), got %s"
                         % (name, d_model, d_model, tuple(x.shape)))
    length = x.shape[-2]
    if length > max_len:
        raise ValueError("%s: the sequence has length %d but max_len is %d; build the layer "
                         "with a larger max_len" % (name, length, max_len))
    return length


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal position vectors: ``forward(x) = x + PE[:T]``.

    x: (B, T, d_model) or (T, d_model) (for PyTorch's sequence-first (T, B, d_model) layout,
    transpose to batch-first first). PE is ``sinusoidal_table(max_len, d_model)``, kept in
    float64 as the non-persistent buffer ``pe`` (not in the state_dict: it is recomputed, never
    learned) and converted to x's dtype when added. A sequence longer than ``max_len`` raises
    ``ValueError``.
    """

    def __init__(self, d_model, max_len=5000):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        table = Tensor(sinusoidal_table(max_len, d_model), dtype=np.float64)
        self.register_buffer("pe", table, persistent=False)

    def forward(self, x):
        length = _check_input("SinusoidalPositionalEncoding", x, self.d_model, self.max_len)
        return x + self.pe.data[:length].astype(x.dtype, copy=False)

    def extra_repr(self):
        return "%d, max_len=%d" % (self.d_model, self.max_len)


class LearnedPositionalEmbedding(Module):
    """Adds one learned vector per position: ``forward(x) = x + weight[:T]``.

    ``weight`` is a (max_len, d_model) Parameter, an embedding table indexed by position,
    initialised from N(0, 1) as PyTorch's ``nn.Embedding``. x: (B, T, d_model) or
    (T, d_model). A sequence longer than ``max_len`` raises ``ValueError``: there is no vector
    for position max_len and beyond.
    """

    def __init__(self, max_len, d_model):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.weight = init.normal_(Parameter(ops.zeros(max_len, d_model)))

    def forward(self, x):
        length = _check_input("LearnedPositionalEmbedding", x, self.d_model, self.max_len)
        return x + self.weight[:length]

    def extra_repr(self):
        return "%d, %d" % (self.max_len, self.d_model)
