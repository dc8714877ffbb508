"""Softmax + cross-entropy of a batch of logit rows, and its gradient, in one pass per row.

Written with NumPy, each step (``x - max``, ``exp``, ``sum``, ``/``) reads its input from
memory and writes a temporary back; the Numba version does the chain in one sweep over each
row, so it moves each number about once. The rows are independent: ranges of them run on all
cores at once (``cpu_runtime.run_in_chunks``), and each row's numbers do not depend on the split.

``error_model="numpy"``: a float division by zero gives inf or NaN, as in NumPy (and as under
``parallel=True``), instead of Python's ZeroDivisionError, whose test before every division
kept the compiler from turning the loop into SIMD code (GELU's erf divides once per element:
float32 GELU ran 4x slower with it, Adam 10x).

``*_reference`` is the NumPy function the kernel must equal (to float rounding), ``*_numba`` the
compiled one, ``*_cuda`` (in ``tinyllm.kernels.cuda.softmax_cross_entropy``) the GPU one, and the
plain name dispatches on the current backend (``tinyllm.kernels.backend.pick``).
"""

import math

import numpy as np
from numba import njit

from tinyllm.kernels import backend, cpu_runtime
from tinyllm.kernels.special import exp_float32


def softmax_cross_entropy_reference(logits, targets, ignore_index=-100):
    """Mean cross-entropy of softmax(logits) and its gradient, the NumPy way.

    logits (N, V) float, targets (N,) integers (``ignore_index`` = no loss). With
    L_i = logsumexp(z_i) - z_i[t_i] and n the number of counted rows:

        loss = sum_i L_i / n,     dloss/dz_i = (softmax(z_i) - onehot(t_i)) / n  (0 if ignored)

    When every row is ignored the loss is NaN (0 / 0, as PyTorch) and the gradient 0.
    Cost: about 5 N V FLOPs (max, subtract, exp, sum, divide) and 5-6 passes over N V numbers.
    """
    counted = targets != ignore_index
    n = int(counted.sum())
    shifted = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    safe_targets = np.where(counted, targets, 0)
    picked = np.take_along_axis(shifted, safe_targets[:, None], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.sum(np.where(counted[:, None], lse - picked, 0)) / n
    grad = np.exp(shifted - lse)
    grad[np.arange(len(targets)), safe_targets] -= 1
    grad *= np.where(counted, 1.0 / max(n, 1), 0.0).astype(logits.dtype)[:, None]
    return logits.dtype.type(loss), grad


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _softmax_cross_entropy_rows(logits, targets, ignore_index, n, grad, row_loss, first, stop):
    """Rows ``first`` to ``stop - 1``: row_loss[i] = L_i, grad[i] = (softmax(z_i) - onehot(t_i))
    / n (both 0 for an ignored row)."""
    V = logits.shape[1]
    float32_math = logits.itemsize == 4             # float32 data: SIMD exp
    for i in range(first, stop):
        t = targets[i]
        if t == ignore_index:
            grad[i] = 0
            row_loss[i] = 0
            continue
        m = logits[i, 0]                            # pass 1: the row's max
        for j in range(1, V):
            m = max(m, logits[i, j])
        for j in range(V):                          # pass 2: exp(z - max) into grad
            z = logits[i, j] - m
            grad[i, j] = exp_float32(z) if float32_math else math.exp(z)
        total = 0.0                                 # pass 3: their sum (a loop of its own,
        for j in range(V):                          # so that pass 2 compiles to SIMD code)
            total += grad[i, j]
        row_loss[i] = m + math.log(total) - logits[i, t]
        scale = 1.0 / (total * n)                   # pass 4: normalise in place
        for j in range(V):
            grad[i, j] *= scale
        grad[i, t] -= 1.0 / n


def softmax_cross_entropy_numba(logits, targets, ignore_index=-100):
    """Same as ``softmax_cross_entropy_reference``, fused per row: the max, then one
    exponential per logit written straight into the gradient (``exp_float32`` for float32),
    their sum, then the normalisation in place (the row stays in cache between passes).
    Cost: about 4 N V FLOPs and one exp per logit; N V numbers read from memory and N V
    written."""
    logits = np.ascontiguousarray(logits)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    n = int(np.sum(targets != ignore_index))
    grad = np.empty_like(logits)
    row_loss = np.empty(len(targets), dtype=np.float64)
    cpu_runtime.run_in_chunks(
        lambda first, stop: _softmax_cross_entropy_rows(logits, targets, ignore_index,
                                                        max(n, 1), grad, row_loss, first, stop),
        len(targets))
    loss = row_loss.sum() / n if n else np.nan
    return logits.dtype.type(loss), grad


def softmax_cross_entropy(logits, targets, ignore_index=-100):
    """(mean loss, dloss/dlogits) on the current backend; see the reference."""
    kernel = backend.pick("softmax_cross_entropy", softmax_cross_entropy_reference,
                          softmax_cross_entropy_numba,
                          "softmax_cross_entropy.softmax_cross_entropy_cuda")
    return kernel(logits, targets, ignore_index)
