"""The Adam/AdamW update of one parameter, in place: one pass over p, g, m and v.

``*_reference`` is the NumPy function the kernel must equal (to float rounding), ``*_numba`` the
compiled one, ``*_cuda`` (in ``tinyllm.kernels.cuda.adam``) the GPU one, and the plain name
dispatches on the current backend (``tinyllm.kernels.backend.pick``).

The kernel is a plain loop over a range of elements, compiled with ``nogil=True`` (Numba's
``parallel=True`` compiled it three times slower); ``cpu_runtime.run_in_chunks`` runs ranges of
``ELEMENTS_PER_TASK`` elements on all cores at once. Each element is updated alone, so the split
changes no number.

``error_model="numpy"``: a float division by zero gives inf or NaN, as in NumPy (and as under
``parallel=True``), instead of Python's ZeroDivisionError, whose test before every division
kept the compiler from turning the loop into SIMD code (GELU's erf divides once per element:
float32 GELU ran 4x slower with it, Adam 10x). For the same reason the loop runs over slices,
``for i in range(p.size)`` on ``p[first:stop]``: with ``range(first, stop)`` the compiler
cannot tell that i is never negative, keeps Python's wrap-around of negative indices, and
makes no SIMD code either (Adam 5x slower).
"""

import math

import numpy as np
from numba import njit

from tinyllm.kernels import backend, cpu_runtime


def adam_update_reference(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                          weight_decay=0.0, decoupled=False, max_exp_avg_sq=None):
    """One Adam (``decoupled=False``) or AdamW (``True``) step, in place on param, exp_avg (m)
    and exp_avg_sq (v), the NumPy way (as ``torch.optim.Adam`` / ``AdamW``):

        AdamW: p <- p (1 - lr wd)             Adam: g <- g + wd p
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        AMSGrad (``max_exp_avg_sq`` given): v_max <- max(v_max, v), and v_max replaces v below
        p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    ``step`` is t, counted from 1. Cost: about 15 FLOPs per element; NumPy makes ~10 passes
    over the arrays.
    """
    if decoupled:
        param *= 1 - lr * weight_decay
    elif weight_decay:
        grad = grad + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        exp_avg_sq = max_exp_avg_sq
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    param -= lr * (m_hat / (np.sqrt(v_hat) + eps))


# Elements per task of the thread pool: parameters up to this size are updated on the calling
# thread alone.
ELEMENTS_PER_TASK = 16384


@njit(nogil=True, cache=True, error_model="numpy")
def _adam_flat(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, correction1,
               correction2, first, stop):
    """The update of elements ``first`` to ``stop - 1`` of the flat arrays p, m and v, with
    correction1 = 1 - beta1^t and correction2 = 1 - beta2^t."""
    p, g, m, v = p[first:stop], g[first:stop], m[first:stop], v[first:stop]
    for i in range(p.size):
        gi = g[i]
        if decoupled:
            p[i] *= 1 - lr * weight_decay
        else:
            gi += weight_decay * p[i]
        m[i] = beta1 * m[i] + (1 - beta1) * gi
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
        p[i] -= lr * (m[i] / correction1) / (math.sqrt(v[i] / correction2) + eps)


def adam_update_numba(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                      weight_decay=0.0, decoupled=False):
    """Same as ``adam_update_reference`` in one pass: read p, g, m, v and write p, m, v once.
    The arrays must be C-contiguous (they are updated in place through flat views)."""
    for a in (param, exp_avg, exp_avg_sq):
        if not a.flags.c_contiguous:
            raise ValueError("adam_update: param, exp_avg and exp_avg_sq must be C-contiguous "
                             "arrays (updated in place), got one of shape %s with strides %s"
                             % (a.shape, a.strides))
    flats = [a.reshape(-1) for a in (param, exp_avg, exp_avg_sq)]      # views, not copies
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    hyper = (float(lr), float(beta1), float(beta2), float(eps), float(weight_decay),
             bool(decoupled), float(1 - beta1 ** step), float(1 - beta2 ** step))
    size = g.size

    def elements(first_task, stop_task):
        _adam_flat(flats[0], g, flats[1], flats[2], *hyper, first_task * ELEMENTS_PER_TASK,
                   min(stop_task * ELEMENTS_PER_TASK, size))
    cpu_runtime.run_in_chunks(elements, -(-size // ELEMENTS_PER_TASK))


def one_pass_applies(param, exp_avg, exp_avg_sq, max_exp_avg_sq=None):
    """Whether the one-pass kernels can make this step: float32/float64 arrays that are
    C-contiguous (updated in place through flat views), without AMSGrad (whose running max
    they do not keep). Otherwise the reference makes it, on every backend."""
    return max_exp_avg_sq is None and all(
        a.dtype in (np.float32, np.float64) and a.flags.c_contiguous
        for a in (param, exp_avg, exp_avg_sq))


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False, max_exp_avg_sq=None):
    """One Adam/AdamW step in place on the current backend; see the reference. Steps that
    ``one_pass_applies`` rules out take the reference."""
    if not one_pass_applies(param, exp_avg, exp_avg_sq, max_exp_avg_sq):
        return adam_update_reference(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2,
                                     eps, weight_decay, decoupled, max_exp_avg_sq)
    kernel = backend.pick("adam", adam_update_reference, adam_update_numba,
                          "adam.adam_update_cuda")
    kernel(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
           decoupled)
