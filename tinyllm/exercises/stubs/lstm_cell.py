"""Exercise lstm_cell (chapter 7, Recurrent networks).

Write one LSTM time step with its hand-derived backward as an autograd Function. Check with:

    python -m tinyllm.exercises check lstm_cell this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class LSTMCellStep(Function):
    """One LSTM step on a batch: (x, h, c) -> (h', c').

    Shapes: x (B, I), h (B, H), c (B, H), W_ih (4H, I), W_hh (4H, H), b (4H,).
    The four gates' rows are stacked in PyTorch's order i, f, g, o: W_ih = [W_ii; W_if;
    W_ig; W_io], and the same for W_hh and b.

    Forward:
        a = x W_ih^T + h W_hh^T + b                    (B, 4H), cut into a_i, a_f, a_g, a_o
        i = sigmoid(a_i)   input gate         f = sigmoid(a_f)   forget gate
        g = tanh(a_g)      candidate values   o = sigmoid(a_o)   output gate
        c' = f * c + i * g
        h' = o * tanh(c')
    Return the pair (h', c').

    Backward (dh' = dL/dh', dc' = dL/dc', both (B, H)):
        dc_total = dc' + dh' * o * (1 - tanh(c')^2)     c' reaches L directly and through h'
        do = dh' * tanh(c'),  di = dc_total * g,  dg = dc_total * i,  df = dc_total * c
        da = [di * i (1 - i),  df * f (1 - f),  dg * (1 - g^2),  do * o (1 - o)]    (B, 4H)
        dx = da W_ih,  dh = da W_hh,  dc = dc_total * f,
        dW_ih = da^T x,  dW_hh = da^T h,  db = sum of da over the batch
    Return (dx, dh, dc, dW_ih, dW_hh, db).

    Use it as ``LSTMCellStep.apply(x, h, c, W_ih, W_hh, b)``.
    """

    @staticmethod
    def forward(ctx, x, h, c, W_ih, W_hh, b):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_h_next, grad_c_next):
        raise NotImplementedError
