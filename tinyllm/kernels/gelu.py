"""GELU, forward and backward, exact (erf) or with the tanh approximation: one pass per element.

``*_reference`` is the NumPy function the kernel must equal (to float rounding), ``*_numba`` the
compiled one, ``*_cuda`` (in ``tinyllm.kernels.cuda.gelu``) the GPU one, and the plain name
dispatches on the current backend (``tinyllm.kernels.backend.pick``).

The kernels are plain loops over a range of elements, compiled with ``nogil=True`` (Numba's
``parallel=True`` compiled two to four times slower); ``cpu_runtime.run_in_chunks`` runs ranges
of ``ELEMENTS_PER_TASK`` elements on all cores at once. Each element is computed alone, so the
split changes no number.

``error_model="numpy"``: a float division by zero gives inf or NaN, as in NumPy (and as under
``parallel=True``), instead of Python's ZeroDivisionError, whose test before every division
kept the compiler from turning the loop into SIMD code (GELU's erf divides once per element:
float32 GELU ran 4x slower with it, Adam 10x). For the same reason the loops run over slices,
``for i in range(x.size)`` on ``x[first:stop]``: with ``range(first, stop)`` the compiler
cannot tell that i is never negative, keeps Python's wrap-around of negative indices, and
makes no SIMD code either (Adam 5x slower).
"""

import math

import numpy as np
from numba import njit

from tinyllm.kernels import backend, cpu_runtime
from tinyllm.kernels.special import (INV_SQRT_2, INV_SQRT_2_PI, SQRT_2_OVER_PI, erf,
                                     erf_float32, exp_float32)


def gelu_forward_reference(x, approximate="none"):
    """GELU(x) = x Phi(x), exact (``"none"``: Phi(x) = (1 + erf(x / sqrt 2)) / 2) or the
    ``"tanh"`` approximation x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the NumPy way."""
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    return (0.5 * x * (1 + erf(x * x.dtype.type(INV_SQRT_2)))).astype(x.dtype, copy=False)


def gelu_backward_reference(grad_y, x, approximate="none"):
    """dL/dx = dL/dy * GELU'(x): exact Phi(x) + x phi(x), phi the normal density; tanh form
    (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(u)."""
    if approximate == "tanh":
        t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return (grad_y * slope).astype(x.dtype, copy=False)
    cdf = 0.5 * (1 + erf(x * x.dtype.type(INV_SQRT_2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return (grad_y * (cdf + x * pdf)).astype(x.dtype, copy=False)


# Elements per task of the thread pool: arrays up to this size run on the calling thread alone.
ELEMENTS_PER_TASK = 16384


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _gelu_forward_flat(x, tanh_form, y, first, stop):
    """y[i] = GELU(x[i]) for i in first .. stop - 1 (flat arrays)."""
    float32_math = x.itemsize == 4                  # float32 data: SIMD erf
    x, y = x[first:stop], y[first:stop]
    for i in range(x.size):
        v = x[i]
        if tanh_form:
            y[i] = 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
        elif float32_math:
            y[i] = 0.5 * v * (1.0 + erf_float32(v * np.float32(INV_SQRT_2)))
        else:
            y[i] = 0.5 * v * (1.0 + math.erf(v * INV_SQRT_2))


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _gelu_backward_flat(grad_y, x, tanh_form, grad_x, first, stop):
    """grad_x[i] = grad_y[i] GELU'(x[i]) for i in first .. stop - 1 (flat arrays)."""
    float32_math = x.itemsize == 4                  # float32 data: SIMD erf and exp
    grad_y, x, grad_x = grad_y[first:stop], x[first:stop], grad_x[first:stop]
    for i in range(x.size):
        v = x[i]
        if tanh_form:
            t = math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))
            slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (
                1.0 + 3 * 0.044715 * v * v)
        elif float32_math:
            slope = (0.5 * (1.0 + erf_float32(v * np.float32(INV_SQRT_2)))
                     + v * exp_float32(np.float32(-0.5) * v * v) * np.float32(INV_SQRT_2_PI))
        else:
            slope = (0.5 * (1.0 + math.erf(v * INV_SQRT_2))
                     + v * math.exp(-0.5 * v * v) * INV_SQRT_2_PI)
        grad_x[i] = grad_y[i] * slope


def _run_on_threads(kernel, size, *args):
    """``kernel(*args, first, stop)`` for element ranges that cover ``range(size)``, in tasks of
    ``ELEMENTS_PER_TASK`` elements on the kernel threads (``cpu_runtime.run_in_chunks``)."""
    def elements(first_task, stop_task):
        kernel(*args, first_task * ELEMENTS_PER_TASK, min(stop_task * ELEMENTS_PER_TASK, size))
    cpu_runtime.run_in_chunks(elements, -(-size // ELEMENTS_PER_TASK))


def gelu_forward_numba(x, approximate="none"):
    """Same as ``gelu_forward_reference``, one pass: read x, write y (NumPy makes ~6 passes).
    Cost: about 10 FLOPs and one tanh or erf per element; for float32 the erf is
    ``erf_float32`` (SIMD, within 1e-7 of ``math.erf``), for float64 ``math.erf``."""
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    _run_on_threads(_gelu_forward_flat, flat.size, flat, approximate == "tanh", y)
    return y.reshape(np.shape(x))


def gelu_backward_numba(grad_y, x, approximate="none"):
    """Same as ``gelu_backward_reference``, one pass over x and grad_y; for float32, erf and
    exp are ``erf_float32`` and ``exp_float32`` (SIMD)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    grad_flat = np.ascontiguousarray(grad_y, dtype=flat.dtype).reshape(-1)
    grad_x = np.empty_like(flat)
    _run_on_threads(_gelu_backward_flat, flat.size, grad_flat, flat, approximate == "tanh",
                    grad_x)
    return grad_x.reshape(np.shape(x))


def gelu_forward(x, approximate="none"):
    """GELU(x) on the current backend; see the reference."""
    kernel = backend.pick("gelu", gelu_forward_reference, gelu_forward_numba,
                          "gelu.gelu_forward_cuda")
    return kernel(x, approximate)


def gelu_backward(grad_y, x, approximate="none"):
    """dL/dx of GELU on the current backend; see the reference."""
    kernel = backend.pick("gelu", gelu_backward_reference, gelu_backward_numba,
                          "gelu.gelu_backward_cuda")
    return kernel(grad_y, x, approximate)
