"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_`` (in place, as in PyTorch).

Call them between ``loss.backward()`` and ``optimizer.step()``::

    loss.backward()
    norm = tinyllm.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
"""

import math

import numpy as np

from tinyllm.autograd import Tensor


def _grads(parameters):
    """The gradient arrays of ``parameters`` (one tensor or an iterable), skipping None."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _total_norm(grads, norm_type):
    """The p-norm of all gradients taken together as one long vector (in float64):

        ||g||_p = (sum_i |g_i|^p)^(1/p),   ||g||_inf = max_i |g_i|
    """
    if norm_type == math.inf:
        return float(np.max([np.max(np.abs(g), initial=0.0) for g in grads]))
    if norm_type == 2.0:        # sum of squares as one dot product: one pass, no temporaries
        total = sum(float(np.dot(flat, flat)) for flat in
                    (g.astype(np.float64, copy=False).reshape(-1) for g in grads))
        return math.sqrt(total)
    total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads)
    return total ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Rescale the gradients in place so that their total norm is at most ``max_norm``.

    The total norm treats all gradients as one vector (``norm_type`` p > 0, or ``inf`` for the
    largest absolute entry). When it exceeds max_norm, every gradient is multiplied by::

        clip_coef = max_norm / (total_norm + 1e-6)        (< 1; 1e-6 guards a zero norm)

    which keeps the update's direction and caps its length: one bad batch cannot throw the
    parameters far away. Parameters with ``.grad is None`` are skipped.

    Returns the total norm before clipping, a 0-d tensor (plot it: spikes show instability).
    A NaN or infinite norm raises with ``error_if_nonfinite=True``; otherwise, as in PyTorch,
    it is spread into the gradients so the problem stays visible.
    """
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError("clip_grad_norm_: norm_type must be positive (or inf), got %r"
                         % norm_type)
    if max_norm < 0:
        raise ValueError("clip_grad_norm_: max_norm must be >= 0, got %r" % max_norm)
    grads = _grads(parameters)
    if not grads:
        return Tensor(0.0)
    total_norm = _total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError("clip_grad_norm_: the total norm of order %s of the gradients is "
                           "non-finite (%s), so it cannot be clipped; find the NaN/inf (e.g. "
                           "with tinyllm.detect_anomaly()) or pass error_if_nonfinite=False"
                           % (norm_type, total_norm))
    clip_coef = max_norm / (total_norm + 1e-6)
    if clip_coef < 1.0 or math.isnan(clip_coef):
        for g in grads:
            g *= clip_coef
    return Tensor(total_norm, dtype=np.result_type(*grads))


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient entry to [-clip_value, clip_value] in place (None grads skipped)."""
    if clip_value < 0:
        raise ValueError("clip_grad_value_: clip_value must be >= 0, got %r" % clip_value)
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)
