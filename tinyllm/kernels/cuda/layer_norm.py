"""Layer norm, forward and backward, on an NVIDIA GPU (``numba.cuda``).

Same math and the same NumPy references as ``tinyllm.kernels.layer_norm`` (read its docstring
first): for x (N, C), weight w and bias b (C,),

    mean_i = (1/C) sum_j x_ij      rstd_i = 1 / sqrt((1/C) sum_j (x_ij - mean_i)^2 + eps)
    xhat_ij = (x_ij - mean_i) rstd_i        y_ij = xhat_ij w_j + b_j

and backward, with g_ij = dL/dy_ij w_j:

    dL/dx_ij = rstd_i (g_ij - mean_j(g_ij) - xhat_ij mean_j(g_ij xhat_ij))
    dL/dw_j = sum_i dL/dy_ij xhat_ij        dL/db_j = sum_i dL/dy_ij

Row kernels (forward, dL/dx): one thread block of ``threads`` threads per row, thread t taking
the columns t, t + threads, ... (coalesced), the row's sums combined by
``common.block_reduce``. The weight and bias gradients sum down the columns instead: one thread
per (column, chunk of ``ROWS_PER_CHUNK`` rows), neighbouring threads on neighbouring columns,
and the host adds the chunks. The numbers are computed in x's dtype.
"""

import math

import numpy as np
from numba import cuda

from tinyllm.kernels.cuda.common import THREADS, block_reduce, check_float_dtype, check_threads
from tinyllm.kernels.cuda.transfers import to_device, to_host

ROWS_PER_CHUNK = 32     # backward: rows whose weight/bias gradients one thread sums


@cuda.jit
def layer_norm_forward_rows(x, weight, bias, eps, y, mean, rstd):
    """Block i: row i. Passes: sum (mean), sum of squared deviations (variance), write
    y = (x - mean) rstd weight + bias."""
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    threads = cuda.blockDim.x
    C = x.shape[1]
    real = x.dtype.type
    scratch = cuda.shared.array(THREADS, dtype=x.dtype)
    total = real(0)
    for j in range(t, C, threads):
        total += x[i, j]
    mu = block_reduce(total, scratch, False) / real(C)
    squares = real(0)
    for j in range(t, C, threads):
        squares += (x[i, j] - mu) * (x[i, j] - mu)
    r = real(1) / math.sqrt(block_reduce(squares, scratch, False) / real(C) + eps)
    for j in range(t, C, threads):
        y[i, j] = (x[i, j] - mu) * r * weight[j] + bias[j]
    if t == 0:
        mean[i] = mu
        rstd[i] = r


@cuda.jit
def layer_norm_backward_rows(grad_y, x, mean, rstd, weight, grad_x):
    """Block i: row i. With xhat = (x - mean) rstd and g = grad_y weight:
    grad_x = rstd (g - mean(g) - xhat mean(g xhat))."""
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    threads = cuda.blockDim.x
    C = x.shape[1]
    real = x.dtype.type
    scratch = cuda.shared.array(THREADS, dtype=x.dtype)
    sum_g = real(0)
    sum_g_xhat = real(0)
    for j in range(t, C, threads):
        g = grad_y[i, j] * weight[j]
        sum_g += g
        sum_g_xhat += g * (x[i, j] - mean[i]) * rstd[i]
    mean_g = block_reduce(sum_g, scratch, False) / real(C)
    mean_g_xhat = block_reduce(sum_g_xhat, scratch, False) / real(C)
    for j in range(t, C, threads):
        xhat = (x[i, j] - mean[i]) * rstd[i]
        g = grad_y[i, j] * weight[j]
        grad_x[i, j] = rstd[i] * (g - mean_g - xhat * mean_g_xhat)


@cuda.jit
def layer_norm_parameter_grads(grad_y, x, mean, rstd, rows_per_chunk, partial_w, partial_b):
    """Thread (column j, chunk c): partial_w[c, j] = sum of grad_y xhat and partial_b[c, j]
    = sum of grad_y over the rows of chunk c. Neighbouring threads take neighbouring columns
    (coalesced); the host adds the chunks."""
    j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    c = cuda.blockIdx.y
    N, C = x.shape
    if j >= C:
        return
    sum_w = x.dtype.type(0)
    sum_b = x.dtype.type(0)
    for i in range(c * rows_per_chunk, min((c + 1) * rows_per_chunk, N)):
        sum_w += grad_y[i, j] * (x[i, j] - mean[i]) * rstd[i]
        sum_b += grad_y[i, j]
    partial_w[c, j] = sum_w
    partial_b[c, j] = sum_b


def _weight_and_bias(C, dtype, weight, bias):
    weight = np.ones(C, dtype) if weight is None else np.ascontiguousarray(weight, dtype)
    bias = np.zeros(C, dtype) if bias is None else np.ascontiguousarray(bias, dtype)
    return weight, bias


def layer_norm_forward_cuda(x, weight, bias, eps=1e-5, threads=THREADS):
    """Same as ``layer_norm.layer_norm_forward_reference``: (y, mean, rstd) for x (N, C), one
    block per row, three passes (mean, variance, y). Cost: about 8 N C FLOPs; N C numbers read,
    N C written."""
    x = np.ascontiguousarray(x)
    check_float_dtype(x.dtype, "layer_norm_forward")
    check_threads(threads, "layer_norm_forward")
    weight, bias = _weight_and_bias(x.shape[1], x.dtype, weight, bias)
    N = x.shape[0]
    d_y = cuda.device_array(x.shape, dtype=x.dtype)
    d_mean = cuda.device_array(N, dtype=x.dtype)
    d_rstd = cuda.device_array(N, dtype=x.dtype)
    if x.size:
        layer_norm_forward_rows[N, threads](to_device(x), to_device(weight), to_device(bias),
                                            x.dtype.type(eps), d_y, d_mean, d_rstd)
    return to_host(d_y), to_host(d_mean), to_host(d_rstd)


def layer_norm_backward_cuda(grad_y, x, mean, rstd, weight, threads=THREADS):
    """Same as ``layer_norm.layer_norm_backward_reference``: (grad_x, grad_weight, grad_bias);
    grad_x by one block per row (two reductions, one pass to write); grad_weight and grad_bias
    by one thread per (column, chunk of ``ROWS_PER_CHUNK`` rows), the chunks added on the host.
    Cost: about 12 N C FLOPs."""
    x = np.ascontiguousarray(x)
    check_float_dtype(x.dtype, "layer_norm_backward")
    check_threads(threads, "layer_norm_backward")
    grad_y = np.ascontiguousarray(grad_y, dtype=x.dtype)
    N, C = x.shape
    weight, _ = _weight_and_bias(C, x.dtype, weight, None)
    d_grad_y, d_x = to_device(grad_y), to_device(x)
    d_mean = to_device(np.ascontiguousarray(mean, dtype=x.dtype))
    d_rstd = to_device(np.ascontiguousarray(rstd, dtype=x.dtype))
    chunks = max(1, (N + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK)
    d_grad_x = cuda.device_array(x.shape, dtype=x.dtype)
    d_partial_w = cuda.device_array((chunks, C), dtype=x.dtype)
    d_partial_b = cuda.device_array((chunks, C), dtype=x.dtype)
    if x.size:
        layer_norm_backward_rows[N, threads](d_grad_y, d_x, d_mean, d_rstd, to_device(weight),
                                             d_grad_x)
        layer_norm_parameter_grads[((C + threads - 1) // threads, chunks), threads](
            d_grad_y, d_x, d_mean, d_rstd, ROWS_PER_CHUNK, d_partial_w, d_partial_b)
        grad_weight = to_host(d_partial_w).sum(axis=0, dtype=np.float64)
        grad_bias = to_host(d_partial_b).sum(axis=0, dtype=np.float64)
    else:
        grad_weight = grad_bias = np.zeros(C)
    return (to_host(d_grad_x), grad_weight.astype(x.dtype), grad_bias.astype(x.dtype))
