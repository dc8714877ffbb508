"""The Adam/AdamW update on an NVIDIA GPU (``numba.cuda``), in place.

Same math and the same NumPy reference as ``tinyllm.kernels.adam`` (read its docstring first):
for each element, with g the gradient, step t, weight decay lambda,

    AdamW (decoupled): p <- p (1 - lr lambda);     Adam: g <- g + lambda p
    m <- beta1 m + (1 - beta1) g        v <- beta2 v + (1 - beta2) g^2
    p <- p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

An elementwise kernel with a grid-stride loop (see ``cuda.gelu``); the scalars are passed in
the parameter's dtype, so float32 parameters are updated in float32.
"""

import math

import numpy as np
from numba import cuda

from tinyllm.kernels.cuda.common import THREADS, check_float_dtype, check_threads, \
    elementwise_grid
from tinyllm.kernels.cuda.transfers import to_device, to_host


@cuda.jit
def adam_flat(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, correction1,
              correction2):
    """One Adam/AdamW step on element i (grid-stride), as ``adam_update_reference``."""
    one = p.dtype.type(1)
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        if decoupled:
            p[i] *= one - lr * weight_decay
        else:
            gi += weight_decay * p[i]
        m[i] = beta1 * m[i] + (one - beta1) * gi
        v[i] = beta2 * v[i] + (one - beta2) * gi * gi
        p[i] -= lr * (m[i] / correction1) / (math.sqrt(v[i] / correction2) + eps)


def adam_update_cuda(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                     weight_decay=0.0, decoupled=False, threads=THREADS):
    """Same as ``adam.adam_update_reference``, in place on the host arrays param, exp_avg and
    exp_avg_sq (C-contiguous): they are copied to the GPU, updated there (one element per
    thread, about 15 FLOPs each) and copied back into the same memory."""
    for a in (param, exp_avg, exp_avg_sq):
        if not a.flags.c_contiguous:
            raise ValueError("adam_update: param, exp_avg and exp_avg_sq must be C-contiguous "
                             "arrays (updated in place), got one of shape %s with strides %s"
                             % (a.shape, a.strides))
    check_float_dtype(param.dtype, "adam_update")
    check_threads(threads, "adam_update")
    flats = [a.reshape(-1) for a in (param, exp_avg, exp_avg_sq)]      # views, not copies
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    if not param.size:
        return
    d_p, d_m, d_v = (to_device(a) for a in flats)
    real = param.dtype.type
    adam_flat[elementwise_grid(param.size, threads), threads](
        d_p, to_device(g), d_m, d_v, real(lr), real(beta1), real(beta2), real(eps),
        real(weight_decay), bool(decoupled), real(1 - beta1 ** step), real(1 - beta2 ** step))
    for d_a, a in zip((d_p, d_m, d_v), flats):
        to_host(d_a, a)
