"""Reference solution of exercise mlp_backward (chapter 4)."""

import numpy as np


def mlp_forward_backward(x, W1, b1, W2, b2, y):
    """Loss and hand-derived gradients of a 2-layer tanh network with mean squared error.

    Forward:  a = x W1 + b1,  h = tanh(a),  yhat = h W2 + b2,  L = mean((yhat - y)^2).
    Backward: dyhat = 2 (yhat - y) / (N K);  dW2 = h^T dyhat;  db2 = sum_n dyhat;
              dh = dyhat W2^T;  da = dh * (1 - h^2);  dW1 = x^T da;  db1 = sum_n da.
    """
    h = np.tanh(x @ W1 + b1)
    yhat = h @ W2 + b2
    diff = yhat - y
    loss = np.mean(diff ** 2)

    grad_yhat = 2.0 * diff / diff.size
    grad_h = grad_yhat @ W2.T
    grad_a = grad_h * (1.0 - h ** 2)
    grads = {"W1": x.T @ grad_a, "b1": grad_a.sum(axis=0),
             "W2": h.T @ grad_yhat, "b2": grad_yhat.sum(axis=0)}
    return loss, grads
