"""Step optim (chapter 3): the optimizers, the learning-rate schedule and gradient clipping.

An optimizer holds a list of parameters (anything with ``.data``, an array, and ``.grad``, an
array or None) and changes each ``p.data`` in place (``p.data -= ...``: the same array object,
so every reference to it sees the new values) when ``step()`` is called. A parameter whose
grad is None is skipped: it took no part in the loss. The semantics are PyTorch's
(``torch.optim.SGD``, ``Adam``, ``AdamW``), so your numbers must agree with theirs.

``lr`` is a plain attribute read by every ``step()``: the training loop sets
``optimizer.lr = warmup_cosine_lr(step, ...)`` before each step to follow a schedule.

You write: the ``_update`` of ``SGD``, ``Adam`` and ``AdamW``, ``warmup_cosine_lr`` and
``clip_grad_norm_``, and the two methods the optimizers share, ``_Optimizer.step`` and
``_Optimizer.zero_grad``.
"""

import math

import numpy as np


class _Optimizer:
    """What every optimizer shares: the parameter list, the state per parameter, zero_grad."""

    def __init__(self, params, lr):
        self.params = list(params)
        self.lr = lr
        self.state = [{} for _ in self.params]      # state[i]: the buffers of params[i]

    def zero_grad(self):
        """Forget every gradient: set each parameter's grad to None (PyTorch's default), so
        the next backward starts from nothing."""
        raise NotImplementedError

    def step(self):
        """Update every parameter whose grad is not None: ``self._update(p, grad, state)``
        with the parameter's own state dict. Parameters whose grad is None are skipped."""
        raise NotImplementedError

    def _update(self, p, grad, state):
        """Change ``p.data`` in place from ``grad``; ``state`` is p's own dict of buffers."""
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay, as torch.optim.SGD.

    For each parameter p with gradient g::

        g <- g + weight_decay * p
        b <- g                          at p's first step (when momentum != 0)
        b <- momentum * b + g           at the steps after
        p <- p - lr * b                 (p <- p - lr * g when momentum == 0)
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = momentum
        self.weight_decay = weight_decay

    def _update(self, p, grad, state):
        raise NotImplementedError


class Adam(_Optimizer):
    """Adam (Kingma and Ba, 2015), as torch.optim.Adam; weight decay is an L2 term.

    For each parameter p with gradient g, at its step t = 1, 2, ... (m = v = 0 before)::

        g <- g + weight_decay * p
        m <- b1 m + (1 - b1) g                 v <- b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t)                 v_hat = v / (1 - b2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    with (b1, b2) = betas. t counts the steps that parameter took (a step where its grad was
    None does not count), as in PyTorch: keep t, m and v in the parameter's ``state``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay

    def _update(self, p, grad, state):
        raise NotImplementedError


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as torch.optim.AdamW.

    Every parameter first shrinks, p <- p - lr * weight_decay * p, then takes Adam's step
    with the plain gradient: the decay does not pass through m and v.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)

    def _update(self, p, grad, state):
        raise NotImplementedError


def warmup_cosine_lr(step, warmup_steps, max_steps, max_lr, min_lr):
    """The learning rate at ``step`` (0, 1, 2, ...): nanoGPT's ``get_lr``, as in chapter 3.

    With w = warmup_steps and T = max_steps::

        step < w:         max_lr * (step + 1) / (w + 1)
        w <= step <= T:   min_lr + (max_lr - min_lr) * (1 + cos(pi * (step - w) / (T - w))) / 2
        step > T:         min_lr

    (step 0 already learns: lr = max_lr / (w + 1); the cosine starts at max_lr at step w and
    reaches min_lr at step T.) Raises ValueError naming both numbers if not
    0 <= warmup_steps < max_steps:
    ``warmup_cosine_lr: need 0 <= warmup_steps < max_steps, got warmup_steps=10, max_steps=5``.
    """
    raise NotImplementedError


def clip_grad_norm_(params, max_norm):
    """Scale all gradients in place so that their total L2 norm is at most ``max_norm``.

    total = sqrt(sum over the parameters with a grad of sum(grad^2)): all gradients taken as
    one long vector. If max_norm / (total + 1e-6) < 1, multiply every grad in place by that
    factor (PyTorch's rule); otherwise leave them alone. Parameters whose grad is None are
    skipped. Returns the total norm before clipping, a float.
    """
    raise NotImplementedError
