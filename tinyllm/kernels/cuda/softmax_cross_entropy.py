"""Softmax + cross-entropy on an NVIDIA GPU (``numba.cuda``), loss and gradient in one kernel.

Same math and the same NumPy reference as ``tinyllm.kernels.softmax_cross_entropy`` (read its
docstring first): for logits z (N, V) and targets y (N,),

    loss = mean over the rows with y_i != ignore_index of  logsumexp(z_i) - z_i[y_i]
    dL/dz_i = (softmax(z_i) - onehot(y_i)) / n        (zero for an ignored row)

with n the number of rows not ignored.

A row kernel: one thread block of ``threads`` threads per row. Thread t handles the columns
t, t + threads, t + 2 threads, ..., so at every step the block's threads read consecutive
addresses (coalesced loads). A row statistic (the max, the sum) is first taken per thread over
its columns, then combined across the block by ``common.block_reduce``. Three passes over the
row: the max; exp(z - max) into the gradient and its sum; the normalisation. The row stays in
the GPU's caches between passes, so each number is read from memory about once. The numbers are
computed in the logits' dtype.
"""

import math

import numpy as np
from numba import cuda

from tinyllm.kernels.cuda.common import THREADS, block_reduce, check_float_dtype, check_threads
from tinyllm.kernels.cuda.transfers import to_device, to_host


@cuda.jit
def softmax_cross_entropy_rows(logits, targets, ignore_index, inv_n, grad, row_loss):
    """Block i: row i. grad[i] = softmax(logits[i]) / n - onehot(targets[i]) / n and
    row_loss[i] = max + log(sum of exp(logits[i] - max)) - logits[i, targets[i]]."""
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    threads = cuda.blockDim.x
    V = logits.shape[1]
    zero = logits.dtype.type(0)
    scratch = cuda.shared.array(THREADS, dtype=logits.dtype)
    target = targets[i]
    if target == ignore_index:              # the whole block leaves together
        for j in range(t, V, threads):
            grad[i, j] = 0
        if t == 0:
            row_loss[i] = 0
        return
    m = logits.dtype.type(-math.inf)
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


def softmax_cross_entropy_cuda(logits, targets, ignore_index=-100, threads=THREADS):
    """Same as ``softmax_cross_entropy.softmax_cross_entropy_reference``: (loss, dL/dlogits)
    for logits (N, V), one block per row, three passes (max; exp and sum; normalise). Cost:
    about 4 N V FLOPs and one exp per logit; N V numbers read from memory and N V written (plus
    N V more on each side of the PCIe copies)."""
    logits = np.ascontiguousarray(logits)
    check_float_dtype(logits.dtype, "softmax_cross_entropy")
    check_threads(threads, "softmax_cross_entropy")
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    n = int(np.sum(targets != ignore_index))
    d_grad = cuda.device_array(logits.shape, dtype=logits.dtype)
    d_row_loss = cuda.device_array(len(targets), dtype=logits.dtype)
    if logits.size:
        softmax_cross_entropy_rows[logits.shape[0], threads](
            to_device(logits), to_device(targets), ignore_index,
            logits.dtype.type(1.0 / max(n, 1)), d_grad, d_row_loss)
    row_loss = to_host(d_row_loss).astype(np.float64)
    loss = row_loss.sum() / n if n else np.nan
    return logits.dtype.type(loss), to_host(d_grad)
