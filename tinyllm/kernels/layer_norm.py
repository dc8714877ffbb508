"""Layer norm over the last axis of a matrix (N, C), forward and backward: a fused pass per row.

``*_reference`` is the NumPy function the kernel must equal (to float rounding), ``*_numba`` the
compiled one, ``*_cuda`` (in ``tinyllm.kernels.cuda.layer_norm``) the GPU one, and the plain name
dispatches on the current backend (``tinyllm.kernels.backend.pick``).

The kernels are plain loops over a range of rows (forward) or of chunks of rows (backward),
compiled with ``nogil=True``; ``cpu_runtime.run_in_chunks`` runs ranges of them on all cores at
once. Each range writes only its own rows and partial sums, so the split changes no number.

``error_model="numpy"``: a float division by zero gives inf or NaN, as in NumPy (and as under
``parallel=True``), instead of Python's ZeroDivisionError, whose test before every division
kept the compiler from turning the loop into SIMD code (GELU's erf divides once per element:
float32 GELU ran 4x slower with it, Adam 10x).
"""

import math

import numpy as np
from numba import njit

from tinyllm.kernels import backend, cpu_runtime


def layer_norm_forward_reference(x, weight, bias, eps=1e-5):
    """y = (x - mean) * rstd * weight + bias over the last axis, the NumPy way.

    x (N, C); weight, bias (C,) or None. Returns y (N, C), mean (N,), rstd (N,) with
    rstd = 1 / sqrt(var + eps) (biased variance). Cost: about 8 N C FLOPs.
    """
    mean = x.mean(axis=1)
    var = ((x - mean[:, None]) ** 2).mean(axis=1)
    rstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    y = (x - mean[:, None]) * rstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype, copy=False), mean, rstd


def layer_norm_backward_reference(grad_y, x, mean, rstd, weight):
    """(grad_x, grad_weight, grad_bias) of layer norm, the NumPy way.

    With xhat = (x - mean) rstd and g = grad_y * weight:
        grad_x = rstd (g - mean_C(g) - xhat mean_C(g xhat)),
        grad_weight = sum_N grad_y xhat,   grad_bias = sum_N grad_y.
    """
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = grad_y if weight is None else grad_y * weight
    grad_x = rstd[:, None] * (g - g.mean(axis=1, keepdims=True)
                              - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return grad_x.astype(x.dtype, copy=False), (grad_y * xhat).sum(axis=0), grad_y.sum(axis=0)


# ``reassoc`` lets the compiler split each row's sums into SIMD lanes (it changes the order of
# the additions, not their float64 precision); ``contract`` allows fused multiply-adds.
@njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _layer_norm_forward_rows(x, weight, bias, eps, y, mean, rstd, first, stop):
    """Rows ``first`` to ``stop - 1`` of y, mean and rstd."""
    C = x.shape[1]
    for i in range(first, stop):
        row, out = x[i], y[i]
        total = 0.0
        for j in range(C):
            total += row[j]
        mu = total / C
        squares = 0.0
        for j in range(C):
            d = row[j] - mu
            squares += d * d
        r = 1.0 / math.sqrt(squares / C + eps)
        for j in range(C):
            out[j] = (row[j] - mu) * r * weight[j] + bias[j]
        mean[i] = mu
        rstd[i] = r


ROWS_PER_CHUNK = 32     # layer norm backward: rows whose weight/bias gradients one task sums


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _layer_norm_backward_rows(grad_y, x, mean, rstd, weight, grad_x, partial_w, partial_b,
                              first, stop):
    """Chunks ``first`` to ``stop - 1`` of ROWS_PER_CHUNK rows: their rows of grad_x, and
    their sums of grad_y xhat and grad_y into partial_w[chunk] and partial_b[chunk]."""
    N, C = x.shape
    for chunk in range(first, stop):
        sum_w, sum_b = partial_w[chunk], partial_b[chunk]
        for i in range(chunk * ROWS_PER_CHUNK, min((chunk + 1) * ROWS_PER_CHUNK, N)):
            row, grad_row, out = x[i], grad_y[i], grad_x[i]
            mu, r = mean[i], rstd[i]
            sum_g = 0.0
            sum_g_xhat = 0.0
            for j in range(C):
                xhat = (row[j] - mu) * r
                g = grad_row[j] * weight[j]
                sum_g += g
                sum_g_xhat += g * xhat
                sum_w[j] += grad_row[j] * xhat
                sum_b[j] += grad_row[j]
            mean_g, mean_g_xhat = sum_g / C, sum_g_xhat / C
            for j in range(C):
                xhat = (row[j] - mu) * r
                out[j] = r * (grad_row[j] * weight[j] - mean_g - xhat * mean_g_xhat)


def layer_norm_forward_numba(x, weight, bias, eps=1e-5):
    """Same as ``layer_norm_forward_reference``: per row, one pass for the mean, one for the
    variance, one to write y. Cost: about 8 N C FLOPs, 3 N C numbers read, N C written."""
    x = np.ascontiguousarray(x)
    C = x.shape[1]
    weight = np.ones(C, x.dtype) if weight is None else np.ascontiguousarray(weight, x.dtype)
    bias = np.zeros(C, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
    y = np.empty_like(x)
    mean = np.empty(x.shape[0], x.dtype)
    rstd = np.empty(x.shape[0], x.dtype)
    cpu_runtime.run_in_chunks(
        lambda first, stop: _layer_norm_forward_rows(x, weight, bias, eps, y, mean, rstd,
                                                     first, stop), x.shape[0])
    return y, mean, rstd


def layer_norm_backward_numba(grad_y, x, mean, rstd, weight):
    """Same as ``layer_norm_backward_reference``: two passes per row; the weight and bias
    gradients are summed per chunk of ``ROWS_PER_CHUNK`` rows (so no two tasks write the same
    number) and the chunks added at the end, in float64. Each chunk's partial sums keep the
    data's dtype: a float32 partial sum of 32 rows loses nothing that matters, and float32
    lanes make the row loop twice as wide as float64 ones. Cost: about 12 N C FLOPs."""
    x = np.ascontiguousarray(x)
    grad_y = np.ascontiguousarray(grad_y, dtype=x.dtype)
    N, C = x.shape
    weight = np.ones(C, x.dtype) if weight is None else np.ascontiguousarray(weight, x.dtype)
    chunks = (N + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    partial_w = np.zeros((chunks, C), dtype=x.dtype)
    partial_b = np.zeros((chunks, C), dtype=x.dtype)
    grad_x = np.empty_like(x)
    cpu_runtime.run_in_chunks(
        lambda first, stop: _layer_norm_backward_rows(grad_y, x, mean, rstd, weight, grad_x,
                                                      partial_w, partial_b, first, stop), chunks)
    return (grad_x, partial_w.sum(axis=0, dtype=np.float64).astype(x.dtype),
            partial_b.sum(axis=0, dtype=np.float64).astype(x.dtype))


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """(y, mean, rstd) on the current backend; see the reference."""
    kernel = backend.pick("layer_norm", layer_norm_forward_reference, layer_norm_forward_numba,
                          "layer_norm.layer_norm_forward_cuda")
    return kernel(x, weight, bias, eps)


def layer_norm_backward(grad_y, x, mean, rstd, weight):
    """(grad_x, grad_weight, grad_bias) on the current backend; see the reference."""
    kernel = backend.pick("layer_norm", layer_norm_backward_reference, layer_norm_backward_numba,
                          "layer_norm.layer_norm_backward_cuda")
    return kernel(grad_y, x, mean, rstd, weight)
