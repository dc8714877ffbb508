"""Step optim (chapter 3): the optimizers, the learning-rate schedule and gradient clipping.

An optimizer holds a list of parameters (anything with ``.data``, an array, and ``.grad``, an
array or None) and changes each ``p.data`` in place, from ``p.grad``, when ``step()`` is
called. A parameter whose grad is None is skipped (it took no part in the loss). The
semantics are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``), so the numbers agree.

``lr`` is a plain attribute: set ``optimizer.lr = warmup_cosine_lr(step, ...)`` before each
``step()`` to follow a schedule.
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
        """Forget every gradient (grad = None), so the next backward starts from nothing."""
        for p in self.params:
            p.grad = None

    def step(self):
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self._update(p, np.asarray(p.grad), state)

    def _update(self, p, grad, state):
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay, as torch.optim.SGD.

    For each parameter p with gradient g::

        g <- g + weight_decay * p
        b <- g                          at the first step (momentum != 0)
        b <- momentum * b + g           afterwards
        p <- p - lr * b                 (p <- p - lr * g when momentum == 0)
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = momentum
        self.weight_decay = weight_decay

    def _update(self, p, grad, state):
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * p.data
        if self.momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                state["momentum_buffer"] = self.momentum * state["momentum_buffer"] + grad
            grad = state["momentum_buffer"]
        p.data -= self.lr * grad


class Adam(_Optimizer):
    """Adam (Kingma and Ba, 2015), as torch.optim.Adam; weight decay is an L2 term.

    For each parameter p with gradient g, at its step t = 1, 2, ... (m = v = 0 before)::

        g <- g + weight_decay * p
        m <- b1 m + (1 - b1) g                 v <- b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t)                 v_hat = v / (1 - b2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    t counts the steps that parameter took (a step where its grad was None does not count).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay

    def _decay(self, p, grad):
        """Adam's weight decay: the L2 penalty's gradient joins the gradient."""
        return grad + self.weight_decay * p.data

    def _update(self, p, grad, state):
        beta1, beta2 = self.betas
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if self.weight_decay != 0:
            grad = self._decay(p, grad)
        m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad
        v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as torch.optim.AdamW.

    Every parameter first shrinks, p <- p - lr * weight_decay * p, then takes Adam's step
    with the plain gradient (the decay does not pass through m and v).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, p, grad):
        """AdamW's weight decay: shrink the parameter; the gradient is unchanged."""
        p.data -= self.lr * self.weight_decay * p.data
        return grad


def warmup_cosine_lr(step, warmup_steps, max_steps, max_lr, min_lr):
    """The learning rate at ``step`` (0, 1, 2, ...): nanoGPT's ``get_lr``, as in chapter 3.

    With w = warmup_steps and T = max_steps::

        step < w:         max_lr * (step + 1) / (w + 1)
        w <= step <= T:   min_lr + (max_lr - min_lr) * (1 + cos(pi * (step - w) / (T - w))) / 2
        step > T:         min_lr

    Raises ValueError naming both if not 0 <= warmup_steps < max_steps.
    """
    if not 0 <= warmup_steps < max_steps:
        raise ValueError("warmup_cosine_lr: need 0 <= warmup_steps < max_steps, got "
                         "warmup_steps=%r, max_steps=%r" % (warmup_steps, max_steps))
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step > max_steps:
        return min_lr
    ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * ratio)) / 2


def clip_grad_norm_(params, max_norm):
    """Scale all gradients in place so that their total L2 norm is at most ``max_norm``.

    total = sqrt(sum over every parameter with a grad of sum(grad^2)); if
    max_norm / (total + 1e-6) < 1, every grad is multiplied by that factor (PyTorch's rule).
    Returns the total norm before clipping, a float.
    """
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= scale
    return total
