"""Step lstm (chapter 7): the long short-term memory cell, run over a sequence.

One LSTM step reads x_t (B, I) and the state (h_{t-1}, c_{t-1}), each (B, H). With the four
gates' weights stacked in PyTorch's order i, f, g, o:

    a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh                    (B, 4H)
    a = [a_i | a_f | a_g | a_o]                                      (each B x H)
    i = sigmoid(a_i),  f = sigmoid(a_f),  g = tanh(a_g),  o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

``LSTMCell`` and ``LSTM`` compose these from your Tensor ops, so autograd derives their
backward. ``lstm_cell_backward`` is the same step's backward derived by hand, in NumPy.
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
        rng = np.random.default_rng() if rng is None else rng
        self.input_size, self.hidden_size = input_size, hidden_size
        H, bound = hidden_size, 1.0 / math.sqrt(hidden_size)
        self.weight_ih = Tensor(rng.uniform(-bound, bound, size=(4 * H, input_size)),
                                requires_grad=True)
        self.weight_hh = Tensor(rng.uniform(-bound, bound, size=(4 * H, H)), requires_grad=True)
        self.bias_ih = Tensor(rng.uniform(-bound, bound, size=4 * H), requires_grad=True)
        self.bias_hh = Tensor(rng.uniform(-bound, bound, size=4 * H), requires_grad=True)

    def forward(self, x, state=None):
        x = _as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError("LSTMCell: x has shape %s; expected (B, input_size) = (B, %d)"
                             % (x.shape, self.input_size))
        H = self.hidden_size
        if state is None:
            h = Tensor(np.zeros((x.shape[0], H)))
            c = Tensor(np.zeros((x.shape[0], H)))
        else:
            h, c = _as_tensor(state[0]), _as_tensor(state[1])
        a = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh
        i = a[:, 0:H].sigmoid()
        f = a[:, H:2 * H].sigmoid()
        g = a[:, 2 * H:3 * H].tanh()
        o = a[:, 3 * H:4 * H].sigmoid()
        c_next = f * c + i * g
        h_next = o * c_next.tanh()
        return h_next, c_next


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
        self.input_size, self.hidden_size = input_size, hidden_size
        self.cell = LSTMCell(input_size, hidden_size, rng=rng)

    def forward(self, x, state=None):
        x = _as_tensor(x)
        if x.ndim != 3:
            raise ValueError("LSTM: x has shape %s; expected (B, T, input_size)" % (x.shape,))
        outputs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outputs.append(state[0])
        return ops.stack(outputs, axis=1), state


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))      # = 1 / (1 + e^-a), without overflow


def lstm_cell_backward(x, h, c, weight_ih, weight_hh, bias, dh_next, dc_next):
    """The gradients of one LSTM step, derived by hand (NumPy arrays in and out).

    Inputs: x (B, I), h and c (B, H) the previous state, weight_ih (4H, I), weight_hh (4H, H),
    bias (4H,) (one bias, b = b_ih + b_hh), and the upstream gradients dh_next = dL/dh' and
    dc_next = dL/dc' (B, H), where (h', c') is the step of the module's docstring.

    Returns (dx, dh, dc, dweight_ih, dweight_hh, dbias) = dL/d(each input), of the inputs'
    shapes, for L = sum(dh_next * h') + sum(dc_next * c').
    """
    a = x @ weight_ih.T + h @ weight_hh.T + bias                          # (B, 4H)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
    c_next = f * c + i * g
    tanh_c = np.tanh(c_next)
    # c' reaches the loss directly and through h' = o * tanh(c').
    grad_c_total = dc_next + dh_next * o * (1.0 - tanh_c ** 2)
    grad_a = np.concatenate([grad_c_total * g * i * (1.0 - i),            # through i
                             grad_c_total * c * f * (1.0 - f),            # through f
                             grad_c_total * i * (1.0 - g ** 2),           # through g
                             dh_next * tanh_c * o * (1.0 - o)],           # through o
                            axis=1)
    return (grad_a @ weight_ih, grad_a @ weight_hh, grad_c_total * f,
            grad_a.T @ x, grad_a.T @ h, grad_a.sum(axis=0))
