"""Reference solution of exercise adam_step (chapter 3)."""

import numpy as np


def adam_step(param, grad, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              decoupled=True):
    """One Adam (decoupled=False) or AdamW (decoupled=True) step; returns
    (new_param, new_m, new_v) and leaves the arguments unchanged."""
    beta1, beta2 = betas
    if weight_decay != 0.0:
        if decoupled:
            param = param * (1 - lr * weight_decay)     # AdamW: shrink the parameter itself
        else:
            grad = grad + weight_decay * param          # Adam: L2 term joins the gradient
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
