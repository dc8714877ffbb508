"""Exercise mlp_backward (chapter 4, Multi-layer networks).

Derive by hand, and write with NumPy only, the gradients of a two-layer network. Check with:

    python -m tinyllm.exercises check mlp_backward this_file.py
"""

import numpy as np


def mlp_forward_backward(x, W1, b1, W2, b2, y):
    """Loss and gradients of a 2-layer tanh network with mean squared error.

    Shapes: x (N, D), W1 (D, H), b1 (H,), W2 (H, K), b2 (K,), y (N, K).

    Forward:
        a = x W1 + b1          (N, H)
        h = tanh(a)            (N, H)
        yhat = h W2 + b2       (N, K)
        L = mean((yhat - y)^2) = (1 / (N K)) sum_{n,k} (yhat_nk - y_nk)^2

    Backward (the chain rule, one layer at a time; derive each line yourself):
        dL/dyhat = 2 (yhat - y) / (N K)
        dL/dW2 = ?,  dL/db2 = ?,  dL/dh = ?,  dL/da = ?  (tanh'(a) = 1 - tanh(a)^2),
        dL/dW1 = ?,  dL/db1 = ?

    Returns (loss, grads): loss a float, grads a dict with keys "W1", "b1", "W2", "b2" whose
    values have the shapes of those parameters.
    """
    raise NotImplementedError
