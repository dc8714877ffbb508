"""One LSTM step as an op: ``LSTMCellFunction`` with its backward derived by hand, and
``lstm_cell_reference``, the same step written with tensor ops for autograd to differentiate
(the tests hold the two together). The layers ``tinyllm.nn.LSTMCell`` and ``tinyllm.nn.LSTM``
call ``lstm_cell``; the gate equations are in ``tinyllm.nn.rnn``'s docstring.
"""

import numpy as np

from tinyllm.autograd import Function


def _sigmoid(x):
    """1 / (1 + e^-x) computed as exp(-log(1 + e^-x)), which never overflows."""
    return np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)


class LSTMCellFunction(Function):
    """One LSTM step, forward and hand-derived backward, on arrays.

    Shapes: x (B, I), h and c (B, H), weight_ih (4H, I), weight_hh (4H, H), biases (4H,) or None.

    Forward:
        a = x W_ih^T + b_ih + h W_hh^T + b_hh             (B, 4H), cut into a_i, a_f, a_g, a_o
        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
        c' = f * c + i * g;   h' = o * tanh(c')

    Backward, given dL/dh' and dL/dc' (the second comes from the next time step):
        dc' = dL/dc' + dL/dh' * o * (1 - tanh(c')^2)       c' reaches L directly and through h'
        do = dL/dh' * tanh(c');  di = dc' * g;  dg = dc' * i;  df = dc' * c;  dL/dc = dc' * f
        da = [di * i (1 - i),  df * f (1 - f),  dg * (1 - g^2),  do * o (1 - o)]   (B, 4H)
        dL/dx = da W_ih;  dL/dh = da W_hh;  dL/dW_ih = da^T x;  dL/dW_hh = da^T h;
        dL/db_ih = dL/db_hh = da summed over the batch.
    """

    @staticmethod
    def forward(ctx, x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        a = x @ weight_ih.T + h @ weight_hh.T
        if bias_ih is not None:
            a = a + bias_ih
        if bias_hh is not None:
            a = a + bias_hh
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        h_next = o * tanh_c
        ctx.save_for_backward(x, h, c, weight_ih, weight_hh, i, f, g, o, tanh_c)
        return h_next, c_next

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        x, h, c, weight_ih, weight_hh, i, f, g, o, tanh_c = ctx.saved_tensors
        grad_c = grad_c + grad_h * o * (1 - tanh_c * tanh_c)
        grad_a = np.concatenate([grad_c * g * i * (1 - i),
                                 grad_c * c * f * (1 - f),
                                 grad_c * i * (1 - g * g),
                                 grad_h * tanh_c * o * (1 - o)], axis=-1)
        need = ctx.needs_input_grad
        grad_bias = grad_a.sum(axis=0)
        return (grad_a @ weight_ih if need[0] else None,
                grad_a @ weight_hh if need[1] else None,
                grad_c * f if need[2] else None,
                grad_a.T @ x if need[3] else None,
                grad_a.T @ h if need[4] else None,
                grad_bias if need[5] else None,
                grad_bias if need[6] else None)


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM step on a batch: returns (h', c'), each (B, H). See ``LSTMCellFunction``."""
    return LSTMCellFunction.apply(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)


def lstm_cell_reference(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """The same step as ``lstm_cell``, written with tensor ops so autograd derives the backward."""
    a = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        a = a + bias_ih
    if bias_hh is not None:
        a = a + bias_hh
    a_i, a_f, a_g, a_o = a.split(a.shape[-1] // 4, axis=-1)
    i, f, g, o = a_i.sigmoid(), a_f.sigmoid(), a_g.tanh(), a_o.sigmoid()
    c_next = f * c + i * g
    return o * c_next.tanh(), c_next
