"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay."""

from tinyllm.optim.optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's ``torch.optim.SGD``, same update rules).

    For each parameter p with gradient g, at step t = 1, 2, ...::

        g <- -g                              if maximize (climb the objective instead)
        g <- g + weight_decay * p            L2 penalty (weight_decay / 2) * |p|^2 in the loss
        if momentum != 0:
            b <- g                           at t = 1 (the buffer starts at the first gradient)
            b <- momentum * b + (1 - dampening) * g          for t > 1
            g <- g + momentum * b            if nesterov (look ahead along the buffer)
            g <- b                           otherwise
        p <- p - lr * g

    The momentum buffer b is a running sum of past gradients, each decayed by ``momentum``
    per step: along a direction the gradients keep pointing to, steps grow up to about
    ``1 / (1 - momentum)`` times longer; across a direction where they flip sign, they cancel.

    Args:
        params: tensors, or dicts of parameter groups (see ``Optimizer``).
        lr: learning rate (>= 0).
        momentum: decay of the momentum buffer (>= 0, typically 0.9); 0 turns it off.
        dampening: the gradient's weight (1 - dampening) in the buffer update.
        weight_decay: the L2 coefficient (>= 0).
        nesterov: Nesterov momentum; needs momentum > 0 and dampening = 0.
        maximize: maximise the objective instead of minimising it.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def check_options(self, group):
        if group["lr"] < 0.0:
            raise ValueError("SGD: invalid learning rate %r (lr must be >= 0)" % group["lr"])
        if group["momentum"] < 0.0:
            raise ValueError("SGD: invalid momentum value %r (momentum must be >= 0)"
                             % group["momentum"])
        if group["weight_decay"] < 0.0:
            raise ValueError("SGD: invalid weight_decay value %r (weight_decay must be >= 0)"
                             % group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero "
                             "dampening (got momentum=%r, dampening=%r)"
                             % (group["momentum"], group["dampening"]))

    def update(self, param, grad, state, group):
        lr, momentum = group["lr"], group["momentum"]
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data

        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            buf = state["momentum_buffer"]
            grad = grad + momentum * buf if group["nesterov"] else buf

        param.add_(grad, alpha=-lr)
