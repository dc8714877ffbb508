"""Adam and AdamW: gradient steps scaled by running estimates of the gradient's moments."""

import numpy as np

from tinyllm.kernels.adam import adam_update
from tinyllm.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), as PyTorch's ``torch.optim.Adam``.

    For each parameter p with gradient g, at step t = 1, 2, ... (m = v = 0 before the first)::

        g <- -g                              if maximize
        g <- g + weight_decay * p            L2 penalty, added to the gradient
        m <- b1 * m + (1 - b1) * g           running mean of the gradient        (1st moment)
        v <- b2 * v + (1 - b2) * g^2         running mean of its square          (2nd moment)
        v_max <- max(v_max, v)               if amsgrad (then v_max replaces v below)
        m_hat = m / (1 - b1^t)               bias-corrected estimates
        v_hat = v / (1 - b2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    Why bias correction: m starts at 0, so after t steps m_t = (1 - b1) sum_i b1^(t-i) g_i and,
    for gradients of steady mean, E[m_t] = (1 - b1^t) E[g]; early on m is pulled towards 0
    (at t = 1, m = 0.1 g for b1 = 0.9). Dividing by (1 - b1^t) removes that pull; likewise
    for v. Each coordinate's step is then about lr * mean / RMS of its recent gradients, at
    most about lr in size whatever the gradient's scale.

    With weight_decay the L2 term goes through m and v and is rescaled like the gradient, so
    parameters with large gradients are hardly decayed; ``AdamW`` decouples the decay.

    The step itself is the kernel ``tinyllm.kernels.adam.adam_update``: the formulas above
    written with NumPy (``adam_update_reference``, which the "numpy" backend runs, and every
    backend for amsgrad), or one pass over each parameter with Numba or CUDA.

    Args:
        params: tensors, or dicts of parameter groups (see ``Optimizer``).
        lr: learning rate (>= 0).
        betas: (b1, b2), the decays of the two running means, each in [0, 1).
        eps: added to sqrt(v_hat) so the step stays finite where v_hat is 0 (>= 0).
        weight_decay: L2 coefficient added to the gradient (>= 0).
        amsgrad: divide by the largest v seen so far (Reddi et al., 2018), so a coordinate's
            step size never grows back after a burst of large gradients.
        maximize: maximise the objective instead of minimising it.
    """

    decoupled_weight_decay = False      # AdamW: shrink p instead of adding wd * p to g

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def check_options(self, group):
        name = type(self).__name__
        if group["lr"] < 0.0:
            raise ValueError("%s: invalid learning rate %r (lr must be >= 0)"
                             % (name, group["lr"]))
        if group["eps"] < 0.0:
            raise ValueError("%s: invalid epsilon value %r (eps must be >= 0)"
                             % (name, group["eps"]))
        if len(group["betas"]) != 2:
            raise ValueError("%s: betas must be a pair (b1, b2), got %r" % (name, group["betas"]))
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError("%s: invalid beta parameter at index %d: %r (betas must lie in "
                                 "[0, 1))" % (name, i, beta))
        if group["weight_decay"] < 0.0:
            raise ValueError("%s: invalid weight_decay value %r (weight_decay must be >= 0)"
                             % (name, group["weight_decay"]))

    def update(self, param, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)        # m
            state["exp_avg_sq"] = np.zeros_like(param.data)     # v
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        beta1, beta2 = group["betas"]
        adam_update(param.data, grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                    group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                    decoupled=self.decoupled_weight_decay,
                    max_exp_avg_sq=state.get("max_exp_avg_sq"))
        param._version += 1


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as ``torch.optim.AdamW``.

    The same update as ``Adam``, except for the weight decay: instead of adding
    weight_decay * p to the gradient (where Adam's rescaling would shrink it for parameters with
    large gradients), every parameter shrinks by the same factor before the Adam step::

        p <- p - lr * weight_decay * p
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)        (m, v from the plain gradient)

    The default weight_decay is 0.01, as in PyTorch. GPT training commonly decays only the
    parameters with 2 or more dimensions (weight matrices, embeddings) and not biases or
    LayerNorm gains: two parameter groups, with weight_decay 0.1 and 0.0.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)

    decoupled_weight_decay = True
