"""Step lstm (chapter 7): the long short-term memory cell, run over a sequence.

One LSTM step reads x_t (B, I) and the state (h_{t-1}, c_{t-1}), each (B, H). With the four
gates' weights stacked in PyTorch's order i, f, g, o:

    a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh                    (B, 4H)
    a = [a_i | a_f | a_g | a_o]                                      (each B x H)
    i = sigmoid(a_i),  f = sigmoid(a_f),  g = tanh(a_g),  o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

You write:

- ``LSTMCell`` and ``LSTM``, composed from your Tensor ops (``@``, ``+``, ``*``, slicing
  ``a[:, 0:H]``, ``.sigmoid()``, ``.tanh()``, ``tensor_ops.stack``), so that your autograd
  derives their backward;
- ``lstm_cell_backward``: the same step's backward derived by hand, in NumPy only.
"""

import math

import numpy as np

from mytl import tensor_ops as ops
from mytl.autograd import Tensor
from mytl.nn import Module


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float64))


class LSTMCell(Module):
    """One LSTM step, with PyTorch's parameters and gate order i, f, g, o.

    Parameters (float64 Tensors, ``requires_grad=True``): ``weight_ih`` (4H, I),
    ``weight_hh`` (4H, H), ``bias_ih`` (4H,), ``bias_hh`` (4H,), rows [0, H) for the input
    gate i, [H, 2H) for the forget gate f, [2H, 3H) for the candidate g, [3H, 4H) for the
    output gate o. Initialisation, as PyTorch's: with bound = 1 / sqrt(hidden_size), each is
    drawn from U(-bound, bound) by ``rng.uniform(-bound, bound, size=shape)``, in the order
    weight_ih, weight_hh, bias_ih, bias_hh (``rng`` a NumPy Generator; default
    ``np.random.default_rng()``).

    ``forward(x, state=None)``: x (B, I); state = (h, c), each (B, H), zeros if None.
    Returns (h', c'), each (B, H), by the formulas of the module's docstring. An x whose
    shape is not (B, input_size) is a ValueError naming ``LSTMCell`` and x's shape.
    """

    def __init__(self, input_size, hidden_size, rng=None):
        raise NotImplementedError

    def forward(self, x, state=None):
        raise NotImplementedError


class LSTM(Module):
    """An LSTMCell run over a sequence, batch first.

    ``cell`` is the LSTMCell(input_size, hidden_size, rng) holding the parameters.
    ``forward(x, state=None)``: x (B, T, I); state = (h_0, c_0), each (B, H), zeros if None.
    Step t computes (h_t, c_t) = cell(x[:, t], (h_{t-1}, c_{t-1})). Returns
    (outputs, (h_T, c_T)): outputs (B, T, H) holds every h_t (outputs[:, t] = h_{t+1} in
    1-based time), h_T and c_T (B, H) the last state. An x that is not 3-D is a ValueError
    naming ``LSTM`` and x's shape.
    """

    def __init__(self, input_size, hidden_size, rng=None):
        raise NotImplementedError

    def forward(self, x, state=None):
        raise NotImplementedError


def lstm_cell_backward(x, h, c, weight_ih, weight_hh, bias, dh_next, dc_next):
    """The gradients of one LSTM step, derived by hand (NumPy arrays in and out).

    Inputs: x (B, I), h and c (B, H) the previous state, weight_ih (4H, I), weight_hh (4H, H),
    bias (4H,) (one bias, b = b_ih + b_hh), and the upstream gradients dh_next = dL/dh' and
    dc_next = dL/dc' (B, H), where (h', c') is the step of the module's docstring.

    Returns (dx, dh, dc, dweight_ih, dweight_hh, dbias) = dL/d(each input), of the inputs'
    shapes, for L = sum(dh_next * h') + sum(dc_next * c'). Recompute the forward step first.
    """
    raise NotImplementedError
