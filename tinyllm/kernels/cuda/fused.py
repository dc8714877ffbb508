"""The training-path kernels on an NVIDIA GPU (``numba.cuda``).

Same math and the same NumPy references as ``tinyllm.kernels.softmax_cross_entropy``,
``layer_norm``, ``gelu``, ``adam`` and ``embedding_backward`` (read their docstrings first): softmax + cross-entropy, layer norm forward and backward, GELU forward and backward,
the Adam/AdamW update and the embedding backward. Two patterns cover them all.

Row kernels (softmax + cross-entropy, layer norm): one thread block of ``THREADS`` threads per
row. Thread t handles the columns t, t + THREADS, t + 2 THREADS, ..., so at every step the
block's threads read consecutive addresses (coalesced loads). A row statistic (a max, a sum)
is first taken per thread over its columns, then combined across the block by a tree in shared
memory (``block_reduce``): THREADS numbers, then THREADS/2 sums of pairs, ..., then one, in
log2(THREADS) steps with a barrier (``cuda.syncthreads``) after each. Every thread then reads
the result and makes its next pass over its columns. The row stays in the GPU's caches between
passes, so each number is read from memory about once.

Elementwise kernels (GELU, Adam, the embedding scatter-add): a "grid-stride loop": thread g of
G threads in the grid handles elements g, g + G, g + 2G, ... (consecutive threads, consecutive
elements), with enough blocks to fill the GPU but never more than there are elements.

Numbers are computed in the arrays' dtype: the constants are converted to it, so float32 data
is computed in float32 (a GPU's float64 units are few; on most consumer GPUs 1/32 to 1/64 as
many). Like the other CUDA kernels, the host
functions copy their inputs to the GPU and the results back, since tinyllm's tensors live in
host memory.
"""

import functools
import math

import numba
import numpy as np
from numba import cuda

from tinyllm.kernels import backend
from tinyllm.kernels.cuda.transfers import to_device, to_host
from tinyllm.kernels.special import INV_SQRT_2, INV_SQRT_2_PI, SQRT_2_OVER_PI

THREADS = 128           # threads per block; a power of two, for the reduction tree
ELEMENTWISE_BLOCKS = 1024   # most blocks an elementwise kernel launches (then grid-stride)

_GELU_CUBIC = 0.044715       # the tanh form's x + 0.044715 x^3


@functools.lru_cache(maxsize=None)
def make_fused_kernels(dtype, threads=THREADS):
    """Compile the kernels for ``dtype`` (float32 or float64) and ``threads`` per row block (a
    power of two; small blocks run faster under the CUDA simulator). Returns a dict of kernels
    by name."""
    if threads < 1 or threads & (threads - 1):
        raise ValueError("cuda fused kernels: threads per block must be a power of two, got %d"
                         % threads)
    element = numba.from_dtype(np.dtype(dtype))
    sqrt_2_over_pi = element(SQRT_2_OVER_PI)
    inv_sqrt_2 = element(INV_SQRT_2)
    inv_sqrt_2_pi = element(INV_SQRT_2_PI)
    cubic = element(_GELU_CUBIC)
    zero, half, one, three = element(0), element(0.5), element(1.0), element(3.0)
    minus_infinity = element(-math.inf)

    @cuda.jit(device=True)
    def block_reduce(value, scratch, take_max):
        """The max (``take_max``) or the sum of ``value`` over the block's threads, returned
        to every thread: a tree of log2(threads) steps in the shared array ``scratch``."""
        t = cuda.threadIdx.x
        scratch[t] = value
        cuda.syncthreads()
        stride = threads // 2
        while stride > 0:
            if t < stride:
                if take_max:
                    scratch[t] = max(scratch[t], scratch[t + stride])
                else:
                    scratch[t] += scratch[t + stride]
            cuda.syncthreads()
            stride //= 2
        result = scratch[0]
        cuda.syncthreads()          # everyone has read scratch[0] before it is written again
        return result

    @cuda.jit
    def softmax_cross_entropy_rows(logits, targets, ignore_index, inv_n, grad, row_loss):
        """Block i: row i. Passes over the row: max; exp(z - max) into grad and its sum;
        grad = exp / sum / n - onehot / n. Row loss = max + log(sum) - z[target]."""
        i = cuda.blockIdx.x
        t = cuda.threadIdx.x
        V = logits.shape[1]
        scratch = cuda.shared.array(threads, element)
        target = targets[i]
        if target == ignore_index:              # the whole block leaves together
            for j in range(t, V, threads):
                grad[i, j] = 0
            if t == 0:
                row_loss[i] = 0
            return
        m = minus_infinity
        for j in range(t, V, threads):
            m = max(m, logits[i, j])
        m = block_reduce(m, scratch, True)
        total = zero
        for j in range(t, V, threads):
            e = math.exp(logits[i, j] - m)
            grad[i, j] = e
            total += e
        total = block_reduce(total, scratch, False)
        scale = inv_n / total
        for j in range(t, V, threads):
            grad[i, j] = grad[i, j] * scale - (inv_n if j == target else zero)
        if t == 0:
            row_loss[i] = m + math.log(total) - logits[i, target]

    @cuda.jit
    def layer_norm_forward_rows(x, weight, bias, eps, y, mean, rstd):
        """Block i: row i. Passes: sum (mean), sum of squared deviations (variance), write
        y = (x - mean) rstd weight + bias."""
        i = cuda.blockIdx.x
        t = cuda.threadIdx.x
        C = x.shape[1]
        scratch = cuda.shared.array(threads, element)
        total = zero
        for j in range(t, C, threads):
            total += x[i, j]
        mu = block_reduce(total, scratch, False) / element(C)
        squares = zero
        for j in range(t, C, threads):
            squares += (x[i, j] - mu) * (x[i, j] - mu)
        r = one / math.sqrt(block_reduce(squares, scratch, False) / element(C) + eps)
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
        C = x.shape[1]
        scratch = cuda.shared.array(threads, element)
        sum_g = zero
        sum_g_xhat = zero
        for j in range(t, C, threads):
            g = grad_y[i, j] * weight[j]
            sum_g += g
            sum_g_xhat += g * (x[i, j] - mean[i]) * rstd[i]
        mean_g = block_reduce(sum_g, scratch, False) / element(C)
        mean_g_xhat = block_reduce(sum_g_xhat, scratch, False) / element(C)
        for j in range(t, C, threads):
            xhat = (x[i, j] - mean[i]) * rstd[i]
            g = grad_y[i, j] * weight[j]
            grad_x[i, j] = rstd[i] * (g - mean_g - xhat * mean_g_xhat)

    @cuda.jit
    def layer_norm_parameter_grads(grad_y, x, mean, rstd, rows_per_chunk, partial_w,
                                   partial_b):
        """Thread (column j, chunk c): partial_w[c, j] = sum of grad_y xhat and partial_b[c, j]
        = sum of grad_y over the rows of chunk c. Neighbouring threads take neighbouring
        columns (coalesced); the host adds the chunks."""
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        c = cuda.blockIdx.y
        N, C = x.shape
        if j >= C:
            return
        sum_w = zero
        sum_b = zero
        for i in range(c * rows_per_chunk, min((c + 1) * rows_per_chunk, N)):
            sum_w += grad_y[i, j] * (x[i, j] - mean[i]) * rstd[i]
            sum_b += grad_y[i, j]
        partial_w[c, j] = sum_w
        partial_b[c, j] = sum_b

    @cuda.jit(device=True)
    def gelu_cdf_and_slope(v, tanh_form):
        """(Phi(v), GELU'(v)): the exact form with erf, or the tanh approximation."""
        if tanh_form:
            th = math.tanh(sqrt_2_over_pi * (v + cubic * v * v * v))
            cdf = half * (one + th)
            slope = cdf + half * v * (one - th * th) * sqrt_2_over_pi * (
                one + three * cubic * v * v)
        else:
            cdf = half * (one + math.erf(v * inv_sqrt_2))
            slope = cdf + v * math.exp(-half * v * v) * inv_sqrt_2_pi
        return cdf, slope

    @cuda.jit
    def gelu_forward_flat(x, tanh_form, y):
        """y = x Phi(x), one element per thread (grid-stride)."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            cdf, _ = gelu_cdf_and_slope(x[i], tanh_form)
            y[i] = x[i] * cdf

    @cuda.jit
    def gelu_backward_flat(grad_y, x, tanh_form, grad_x):
        """grad_x = grad_y GELU'(x), one element per thread (grid-stride)."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            _, slope = gelu_cdf_and_slope(x[i], tanh_form)
            grad_x[i] = grad_y[i] * slope

    @cuda.jit
    def adam_flat(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, correction1,
                  correction2):
        """One Adam/AdamW step on element i (grid-stride), as ``adam_update_reference``."""
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            gi = g[i]
            if decoupled:
                p[i] *= one - lr * weight_decay
            else:
                gi += weight_decay * p[i]
            m[i] = beta1 * m[i] + (one - beta1) * gi
            v[i] = beta2 * v[i] + (one - beta2) * gi * gi
            p[i] -= lr * (m[i] / correction1) / (math.sqrt(v[i] / correction2) + eps)

    @cuda.jit
    def embedding_add_rows(grad_weight, ids, grad):
        """grad_weight[ids[i], d] += grad[i, d], one (i, d) per thread (grid-stride). Two rows
        with the same id add to the same numbers: ``cuda.atomic.add`` makes each addition
        indivisible, so none is lost (the order of the additions is not fixed)."""
        D = grad.shape[1]
        for e in range(cuda.grid(1), grad.size, cuda.gridsize(1)):
            i, d = e // D, e % D
            cuda.atomic.add(grad_weight, (ids[i], d), grad[i, d])

    return dict(softmax_cross_entropy_rows=softmax_cross_entropy_rows,
                layer_norm_forward_rows=layer_norm_forward_rows,
                layer_norm_backward_rows=layer_norm_backward_rows,
                layer_norm_parameter_grads=layer_norm_parameter_grads,
                gelu_forward_flat=gelu_forward_flat, gelu_backward_flat=gelu_backward_flat,
                adam_flat=adam_flat, embedding_add_rows=embedding_add_rows)


def _kernels(dtype, threads):
    backend.require_cuda()
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError("cuda fused kernels: float32 or float64 arrays only, got %s" % dtype)
    return make_fused_kernels(dtype, threads)


def _elementwise_grid(size, threads):
    """Blocks for a grid-stride loop over ``size`` elements: enough, never too many."""
    return max(1, min(ELEMENTWISE_BLOCKS, (size + threads - 1) // threads))


# ----- softmax + cross-entropy ----------------------------------------------------------------
def softmax_cross_entropy_cuda(logits, targets, ignore_index=-100, threads=THREADS):
    """Same as ``softmax_cross_entropy.softmax_cross_entropy_reference``: one block per row, three passes
    (max; exp and sum; normalise). Cost: about 4 N V FLOPs and one exp per logit; N V numbers
    read from memory and N V written (plus N V more on each side of the PCIe copies)."""
    logits = np.ascontiguousarray(logits)
    kernels = _kernels(logits.dtype, threads)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    n = int(np.sum(targets != ignore_index))
    d_grad = cuda.device_array(logits.shape, dtype=logits.dtype)
    d_row_loss = cuda.device_array(len(targets), dtype=logits.dtype)
    if logits.size:
        kernels["softmax_cross_entropy_rows"][logits.shape[0], threads](
            to_device(logits), to_device(targets), ignore_index,
            logits.dtype.type(1.0 / max(n, 1)), d_grad, d_row_loss)
    row_loss = to_host(d_row_loss).astype(np.float64)
    loss = row_loss.sum() / n if n else np.nan
    return logits.dtype.type(loss), to_host(d_grad)


# ----- layer norm -----------------------------------------------------------------------------
ROWS_PER_CHUNK = 32     # layer norm backward: rows whose weight/bias gradients one thread sums


def _weight_and_bias(C, dtype, weight, bias):
    weight = np.ones(C, dtype) if weight is None else np.ascontiguousarray(weight, dtype)
    bias = np.zeros(C, dtype) if bias is None else np.ascontiguousarray(bias, dtype)
    return weight, bias


def layer_norm_forward_cuda(x, weight, bias, eps=1e-5, threads=THREADS):
    """Same as ``layer_norm.layer_norm_forward_reference`` for x (N, C): one block per row, three
    passes (mean, variance, y). Cost: about 8 N C FLOPs; N C numbers read, N C written."""
    x = np.ascontiguousarray(x)
    kernels = _kernels(x.dtype, threads)
    weight, bias = _weight_and_bias(x.shape[1], x.dtype, weight, bias)
    N = x.shape[0]
    d_y = cuda.device_array(x.shape, dtype=x.dtype)
    d_mean = cuda.device_array(N, dtype=x.dtype)
    d_rstd = cuda.device_array(N, dtype=x.dtype)
    if x.size:
        kernels["layer_norm_forward_rows"][N, threads](
            to_device(x), to_device(weight), to_device(bias),
            x.dtype.type(eps), d_y, d_mean, d_rstd)
    return to_host(d_y), to_host(d_mean), to_host(d_rstd)


def layer_norm_backward_cuda(grad_y, x, mean, rstd, weight, threads=THREADS):
    """Same as ``layer_norm.layer_norm_backward_reference``: grad_x by one block per row (two
    reductions, one pass to write); grad_weight and grad_bias by one thread per (column, chunk
    of ``ROWS_PER_CHUNK`` rows), the chunks added on the host. Cost: about 12 N C FLOPs."""
    x = np.ascontiguousarray(x)
    kernels = _kernels(x.dtype, threads)
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
        kernels["layer_norm_backward_rows"][N, threads](
            d_grad_y, d_x, d_mean, d_rstd, to_device(weight), d_grad_x)
        kernels["layer_norm_parameter_grads"][((C + threads - 1) // threads, chunks), threads](
            d_grad_y, d_x, d_mean, d_rstd, ROWS_PER_CHUNK, d_partial_w, d_partial_b)
        grad_weight = to_host(d_partial_w).sum(axis=0, dtype=np.float64)
        grad_bias = to_host(d_partial_b).sum(axis=0, dtype=np.float64)
    else:
        grad_weight = grad_bias = np.zeros(C)
    return (to_host(d_grad_x), grad_weight.astype(x.dtype), grad_bias.astype(x.dtype))


# ----- GELU -----------------------------------------------------------------------------------
def gelu_forward_cuda(x, approximate="none", threads=THREADS):
    """Same as ``gelu.gelu_forward_reference``, one element per thread: about 10 FLOPs and
    one erf or tanh per element; read x, write y."""
    flat = np.ascontiguousarray(x).reshape(-1)
    kernels = _kernels(flat.dtype, threads)
    d_y = cuda.device_array(flat.shape, dtype=flat.dtype)
    if flat.size:
        kernels["gelu_forward_flat"][_elementwise_grid(flat.size, threads), threads](
            to_device(flat), approximate == "tanh", d_y)
    return to_host(d_y).reshape(np.shape(x))


def gelu_backward_cuda(grad_y, x, approximate="none", threads=THREADS):
    """Same as ``gelu.gelu_backward_reference``, one element per thread: read x and grad_y,
    write grad_x."""
    flat = np.ascontiguousarray(x).reshape(-1)
    kernels = _kernels(flat.dtype, threads)
    grad_flat = np.ascontiguousarray(grad_y, dtype=flat.dtype).reshape(-1)
    d_grad_x = cuda.device_array(flat.shape, dtype=flat.dtype)
    if flat.size:
        kernels["gelu_backward_flat"][_elementwise_grid(flat.size, threads), threads](
            to_device(grad_flat), to_device(flat), approximate == "tanh", d_grad_x)
    return to_host(d_grad_x).reshape(np.shape(x))


# ----- Adam / AdamW ---------------------------------------------------------------------------
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
    kernels = _kernels(param.dtype, threads)
    flats = [a.reshape(-1) for a in (param, exp_avg, exp_avg_sq)]      # views, not copies
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    if not param.size:
        return
    d_p, d_m, d_v = (to_device(a) for a in flats)
    real = param.dtype.type
    kernels["adam_flat"][_elementwise_grid(param.size, threads), threads](
        d_p, to_device(g), d_m, d_v, real(lr), real(beta1), real(beta2), real(eps),
        real(weight_decay), bool(decoupled), real(1 - beta1 ** step), real(1 - beta2 ** step))
    for d_a, a in zip((d_p, d_m, d_v), flats):
        to_host(d_a, a)


# ----- embedding backward ---------------------------------------------------------------------
def embedding_backward_cuda(ids, grad, num_embeddings, threads=THREADS):
    """Same as ``embedding_backward.embedding_backward_reference``: N D atomic additions, one per thread."""
    grad = np.ascontiguousarray(grad)
    kernels = _kernels(grad.dtype, threads)
    d_grad_weight = to_device(np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype))
    if grad.size:
        kernels["embedding_add_rows"][_elementwise_grid(grad.size, threads), threads](
            d_grad_weight, to_device(np.ascontiguousarray(ids, dtype=np.int64)),
            to_device(grad))
    return to_host(d_grad_weight)
