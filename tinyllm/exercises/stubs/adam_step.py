"""Exercise adam_step (chapter 3, Optimizers).

Write one step of Adam and AdamW on NumPy arrays. Check it with:

    python -m tinyllm.exercises check adam_step this_file.py
"""

import numpy as np


def adam_step(param, grad, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              decoupled=True):
    """One optimizer step for one parameter; returns (new_param, new_m, new_v).

    Shapes: param, grad, m, v all the same shape (m = v = 0 before the first step).
    t: the number of this step, 1, 2, 3, ... (for the bias correction). betas = (b1, b2).

    Weight decay (skip when weight_decay == 0):
        decoupled=True  (AdamW):  param <- param * (1 - lr * weight_decay)     (before the step)
        decoupled=False (Adam):   grad  <- grad + weight_decay * param         (an L2 term)

    Then:
        m <- b1 m + (1 - b1) grad                 running mean of the gradient
        v <- b2 v + (1 - b2) grad^2               running mean of its square
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)          bias correction
        param <- param - lr * m_hat / (sqrt(v_hat) + eps)

    Return new arrays; do not change the arguments in place.
    """
    raise NotImplementedError
