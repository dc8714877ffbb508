"""Reference solution of exercise lstm_cell (chapter 7)."""

import numpy as np

from tinyllm.autograd import Function


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))      # = 1 / (1 + e^-a), without overflow


class LSTMCellStep(Function):
    """One LSTM step (gates i, f, g, o in PyTorch's order) with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, h, c, W_ih, W_hh, b):
        a = x @ W_ih.T + h @ W_hh.T + b                               # (B, 4H)
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        h_next = o * tanh_c
        ctx.save_for_backward(x, h, c, W_ih, W_hh, i, f, g, o, tanh_c)
        return h_next, c_next

    @staticmethod
    def backward(ctx, grad_h_next, grad_c_next):
        x, h, c, W_ih, W_hh, i, f, g, o, tanh_c = ctx.saved_tensors
        # c' reaches the loss directly and through h' = o * tanh(c').
        grad_c_total = grad_c_next + grad_h_next * o * (1.0 - tanh_c ** 2)
        grad_a = np.concatenate([grad_c_total * g * i * (1.0 - i),           # through i
                                 grad_c_total * c * f * (1.0 - f),           # through f
                                 grad_c_total * i * (1.0 - g ** 2),          # through g
                                 grad_h_next * tanh_c * o * (1.0 - o)],      # through o
                                axis=1)
        return (grad_a @ W_ih, grad_a @ W_hh, grad_c_total * f,
                grad_a.T @ x, grad_a.T @ h, grad_a.sum(axis=0))
