"""GELU, forward and backward, on an NVIDIA GPU (``numba.cuda``).

Same math and the same NumPy references as ``tinyllm.kernels.gelu`` (read its docstring
first): GELU(x) = x Phi(x), with Phi(x) = (1 + erf(x / sqrt(2))) / 2 or, for
``approximate="tanh"``, (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2, and

    dL/dx = dL/dy GELU'(x),    GELU'(x) = Phi(x) + x Phi'(x).

Elementwise kernels with a "grid-stride loop": thread g of G threads in the grid handles
elements g, g + G, g + 2G, ... (consecutive threads, consecutive elements), with enough blocks
to fill the GPU but never more than there are elements (``common.elementwise_grid``). The
constants are made in x's dtype, so float32 data is computed in float32.
"""

import math

import numpy as np
from numba import cuda

from tinyllm.kernels.cuda.common import THREADS, check_float_dtype, check_threads, \
    elementwise_grid
from tinyllm.kernels.cuda.transfers import to_device, to_host
from tinyllm.kernels.special import INV_SQRT_2, INV_SQRT_2_PI, SQRT_2_OVER_PI

GELU_CUBIC = 0.044715       # the tanh form's x + 0.044715 x^3


@cuda.jit(device=True)
def gelu_cdf_and_slope(x, i, tanh_form):
    """(Phi(x[i]), GELU'(x[i])): the exact form with erf, or the tanh approximation."""
    real = x.dtype.type
    v = x[i]
    half, one = real(0.5), real(1)
    if tanh_form:
        c = real(SQRT_2_OVER_PI)
        cubic = real(GELU_CUBIC)
        th = math.tanh(c * (v + cubic * v * v * v))
        cdf = half * (one + th)
        slope = cdf + half * v * (one - th * th) * c * (one + real(3) * cubic * v * v)
    else:
        cdf = half * (one + math.erf(v * real(INV_SQRT_2)))
        slope = cdf + v * math.exp(-half * v * v) * real(INV_SQRT_2_PI)
    return cdf, slope


@cuda.jit
def gelu_forward_flat(x, tanh_form, y):
    """y = x Phi(x), one element per thread (grid-stride)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        cdf, _ = gelu_cdf_and_slope(x, i, tanh_form)
        y[i] = x[i] * cdf


@cuda.jit
def gelu_backward_flat(grad_y, x, tanh_form, grad_x):
    """grad_x = grad_y GELU'(x), one element per thread (grid-stride)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        _, slope = gelu_cdf_and_slope(x, i, tanh_form)
        grad_x[i] = grad_y[i] * slope


def gelu_forward_cuda(x, approximate="none", threads=THREADS):
    """Same as ``gelu.gelu_forward_reference``, one element per thread: about 10 FLOPs and
    one erf or tanh per element; read x, write y."""
    flat = np.ascontiguousarray(x).reshape(-1)
    check_float_dtype(flat.dtype, "gelu_forward")
    check_threads(threads, "gelu_forward")
    d_y = cuda.device_array(flat.shape, dtype=flat.dtype)
    if flat.size:
        gelu_forward_flat[elementwise_grid(flat.size, threads), threads](
            to_device(flat), approximate == "tanh", d_y)
    return to_host(d_y).reshape(np.shape(x))


def gelu_backward_cuda(grad_y, x, approximate="none", threads=THREADS):
    """Same as ``gelu.gelu_backward_reference``, one element per thread: read x and grad_y,
    write grad_x."""
    flat = np.ascontiguousarray(x).reshape(-1)
    check_float_dtype(flat.dtype, "gelu_backward")
    check_threads(threads, "gelu_backward")
    grad_flat = np.ascontiguousarray(grad_y, dtype=flat.dtype).reshape(-1)
    d_grad_x = cuda.device_array(flat.shape, dtype=flat.dtype)
    if flat.size:
        gelu_backward_flat[elementwise_grid(flat.size, threads), threads](
            to_device(grad_flat), to_device(flat), approximate == "tanh", d_grad_x)
    return to_host(d_grad_x).reshape(np.shape(x))
