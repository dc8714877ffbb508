"""Adam and AdamW: gradient steps scaled by running estimates of the gradient's moments."""

import numpy as np

from tinyllm.kernels import backend, fused
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

    ``update`` below writes the step out with NumPy (the "numpy" backend runs it); the other
    backends run the same formulas in one pass over each parameter, the Numba kernel
    ``tinyllm.kernels.fused.adam_update``.

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

    def _fused_update_applies(self, param, exp_avg, exp_avg_sq, group):
        """Whether the one-pass kernel ``tinyllm.kernels.fused.adam_update`` does this step:
        when the backend runs that kernel with Numba (on "numpy" the lines below are the
        reference), for float32/float64 arrays that are C-contiguous (updated in place through
        flat views), without amsgrad (which the kernel does not keep)."""
        arrays = (param.data, exp_avg, exp_avg_sq)
        return (backend.resolve("adam") != "numpy" and not group["amsgrad"]
                and all(a.dtype in (np.float32, np.float64) and a.flags.c_contiguous
                        for a in arrays))

    def apply_weight_decay(self, param, grad, group):
        """Adam's weight decay: the L2 term weight_decay * p joins the gradient."""
        return grad + group["weight_decay"] * param.data

    def update(self, param, grad, state, group):
        lr, eps = group["lr"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)        # m
            state["exp_avg_sq"] = np.zeros_like(param.data)     # v
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        t = state["step"]

        if group["maximize"]:
            grad = -grad
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if self._fused_update_applies(param, m, v, group):
            fused.adam_update(param.data, grad, m, v, t, lr, beta1, beta2, eps,
                              group["weight_decay"], decoupled=self.decoupled_weight_decay)
            param._version += 1
            return
        if group["weight_decay"] != 0:
            grad = self.apply_weight_decay(param, grad, group)

        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]

        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        param.add_(m_hat / (np.sqrt(v_hat) + eps), alpha=-lr)


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

    def apply_weight_decay(self, param, grad, group):
        """AdamW's weight decay: shrink the parameter itself; the gradient is unchanged."""
        param.mul_(1 - group["lr"] * group["weight_decay"])
        return grad
