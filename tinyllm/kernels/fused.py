"""Fused kernels for the training path: softmax + cross-entropy, layer norm, GELU, Adam/AdamW,
and the embedding backward (a scatter-add of rows).

Each is a chain of elementwise steps and row reductions. Written with NumPy, every step reads
its input from memory and writes a temporary back (``x - max``, ``exp``, ``sum``, ``/``, ...):
for arrays larger than the cache the time goes into moving bytes, not arithmetic. The Numba
versions do the whole chain in one or two passes over each row, with the rows split over the
cores (``prange``), so they move each number about once.

For each kernel: ``*_reference`` is the NumPy function it must equal (to float rounding),
``*_numba`` the compiled one, ``*_cuda`` (in ``tinyllm.kernels.cuda_fused``) the GPU one, and the
plain name dispatches on the current backend (``tinyllm.kernels.backend``).
"""

import math

import numpy as np
from numba import njit, prange

from tinyllm.kernels import backend
from tinyllm.kernels.special import erf_float32, exp_float32

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2_PI = 1.0 / math.sqrt(2.0 * math.pi)        # the normal density's constant


def _pick(kernel, reference, numba_version, cuda_name):
    """The function that runs ``kernel`` on the current backend."""
    which = backend.resolve(kernel)
    if which == "cuda":
        from tinyllm.kernels import cuda_fused
        return getattr(cuda_fused, cuda_name)
    return numba_version if which == "numba" else reference


# ----- softmax + cross-entropy --------------------------------------------------------------
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


@njit(parallel=True, cache=True, fastmath={"contract"})
def _softmax_cross_entropy_rows(logits, targets, ignore_index, n, grad, row_loss):
    rows, V = logits.shape
    float32_math = logits.itemsize == 4             # float32 data: SIMD exp
    for i in prange(rows):
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
    _softmax_cross_entropy_rows(logits, targets, ignore_index, max(n, 1), grad, row_loss)
    loss = row_loss.sum() / n if n else np.nan
    return logits.dtype.type(loss), grad


def softmax_cross_entropy(logits, targets, ignore_index=-100):
    """(mean loss, dloss/dlogits) on the current backend; see the reference."""
    kernel = _pick("softmax_cross_entropy", softmax_cross_entropy_reference,
                   softmax_cross_entropy_numba, "softmax_cross_entropy_cuda")
    return kernel(logits, targets, ignore_index)


# ----- layer norm ----------------------------------------------------------------------------
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


@njit(parallel=True, cache=True)
def _layer_norm_forward_rows(x, weight, bias, eps, y, mean, rstd):
    N, C = x.shape
    for i in prange(N):
        total = 0.0
        for j in range(C):
            total += x[i, j]
        mu = total / C
        squares = 0.0
        for j in range(C):
            squares += (x[i, j] - mu) ** 2
        r = 1.0 / math.sqrt(squares / C + eps)
        for j in range(C):
            y[i, j] = (x[i, j] - mu) * r * weight[j] + bias[j]
        mean[i] = mu
        rstd[i] = r


ROWS_PER_CHUNK = 32     # layer norm backward: rows whose weight/bias gradients one task sums


@njit(parallel=True, cache=True)
def _layer_norm_backward_rows(grad_y, x, mean, rstd, weight, grad_x, partial_w, partial_b):
    N, C = x.shape
    chunks = partial_w.shape[0]
    for chunk in prange(chunks):
        for i in range(chunk * ROWS_PER_CHUNK, min((chunk + 1) * ROWS_PER_CHUNK, N)):
            sum_g = 0.0
            sum_g_xhat = 0.0
            for j in range(C):
                xhat = (x[i, j] - mean[i]) * rstd[i]
                g = grad_y[i, j] * weight[j]
                sum_g += g
                sum_g_xhat += g * xhat
                partial_w[chunk, j] += grad_y[i, j] * xhat
                partial_b[chunk, j] += grad_y[i, j]
            for j in range(C):
                xhat = (x[i, j] - mean[i]) * rstd[i]
                g = grad_y[i, j] * weight[j]
                grad_x[i, j] = rstd[i] * (g - sum_g / C - xhat * sum_g_xhat / C)


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
    _layer_norm_forward_rows(x, weight, bias, eps, y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward_numba(grad_y, x, mean, rstd, weight):
    """Same as ``layer_norm_backward_reference``: two passes per row; the weight and bias
    gradients are summed per chunk of ``ROWS_PER_CHUNK`` rows (so no two tasks write the same
    number) and the chunks added at the end. Cost: about 12 N C FLOPs."""
    x = np.ascontiguousarray(x)
    grad_y = np.ascontiguousarray(grad_y, dtype=x.dtype)
    N, C = x.shape
    weight = np.ones(C, x.dtype) if weight is None else np.ascontiguousarray(weight, x.dtype)
    chunks = (N + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    partial_w = np.zeros((chunks, C), dtype=np.float64)
    partial_b = np.zeros((chunks, C), dtype=np.float64)
    grad_x = np.empty_like(x)
    _layer_norm_backward_rows(grad_y, x, mean, rstd, weight, grad_x, partial_w, partial_b)
    return grad_x, partial_w.sum(axis=0).astype(x.dtype), partial_b.sum(axis=0).astype(x.dtype)


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """(y, mean, rstd) on the current backend; see the reference."""
    kernel = _pick("layer_norm", layer_norm_forward_reference, layer_norm_forward_numba,
                   "layer_norm_forward_cuda")
    return kernel(x, weight, bias, eps)


def layer_norm_backward(grad_y, x, mean, rstd, weight):
    """(grad_x, grad_weight, grad_bias) on the current backend; see the reference."""
    kernel = _pick("layer_norm", layer_norm_backward_reference, layer_norm_backward_numba,
                   "layer_norm_backward_cuda")
    return kernel(grad_y, x, mean, rstd, weight)


# ----- GELU ----------------------------------------------------------------------------------
def gelu_forward_reference(x, approximate="none"):
    """GELU(x) = x Phi(x), exact (``"none"``: Phi(x) = (1 + erf(x / sqrt 2)) / 2) or the
    ``"tanh"`` approximation x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the NumPy way."""
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    from tinyllm.kernels.special import erf
    return (0.5 * x * (1 + erf(x * x.dtype.type(_INV_SQRT_2)))).astype(x.dtype, copy=False)


def gelu_backward_reference(grad_y, x, approximate="none"):
    """dL/dx = dL/dy * GELU'(x): exact Phi(x) + x phi(x), phi the normal density; tanh form
    (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(u)."""
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return (grad_y * slope).astype(x.dtype, copy=False)
    from tinyllm.kernels.special import erf
    cdf = 0.5 * (1 + erf(x * x.dtype.type(_INV_SQRT_2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return (grad_y * (cdf + x * pdf)).astype(x.dtype, copy=False)


@njit(parallel=True, cache=True, fastmath={"contract"})
def _gelu_forward_flat(x, tanh_form, y):
    float32_math = x.itemsize == 4                  # float32 data: SIMD erf
    for i in prange(x.size):
        v = x[i]
        if tanh_form:
            y[i] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
        elif float32_math:
            y[i] = 0.5 * v * (1.0 + erf_float32(v * np.float32(_INV_SQRT_2)))
        else:
            y[i] = 0.5 * v * (1.0 + math.erf(v * _INV_SQRT_2))


@njit(parallel=True, cache=True, fastmath={"contract"})
def _gelu_backward_flat(grad_y, x, tanh_form, grad_x):
    float32_math = x.itemsize == 4                  # float32 data: SIMD erf and exp
    for i in prange(x.size):
        v = x[i]
        if tanh_form:
            t = math.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))
            slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * _SQRT_2_OVER_PI * (
                1.0 + 3 * 0.044715 * v * v)
        elif float32_math:
            slope = (0.5 * (1.0 + erf_float32(v * np.float32(_INV_SQRT_2)))
                     + v * exp_float32(np.float32(-0.5) * v * v) * np.float32(_INV_SQRT_2_PI))
        else:
            slope = (0.5 * (1.0 + math.erf(v * _INV_SQRT_2))
                     + v * math.exp(-0.5 * v * v) * _INV_SQRT_2_PI)
        grad_x[i] = grad_y[i] * slope


def gelu_forward_numba(x, approximate="none"):
    """Same as ``gelu_forward_reference``, one pass: read x, write y (NumPy makes ~6 passes).
    Cost: about 10 FLOPs and one tanh or erf per element; for float32 the erf is
    ``erf_float32`` (SIMD, within 1e-7 of ``math.erf``), for float64 ``math.erf``."""
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    _gelu_forward_flat(flat, approximate == "tanh", y)
    return y.reshape(np.shape(x))


def gelu_backward_numba(grad_y, x, approximate="none"):
    """Same as ``gelu_backward_reference``, one pass over x and grad_y; for float32, erf and
    exp are ``erf_float32`` and ``exp_float32`` (SIMD)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    grad_flat = np.ascontiguousarray(grad_y, dtype=flat.dtype).reshape(-1)
    grad_x = np.empty_like(flat)
    _gelu_backward_flat(grad_flat, flat, approximate == "tanh", grad_x)
    return grad_x.reshape(np.shape(x))


def gelu_forward(x, approximate="none"):
    """GELU(x) on the current backend; see the reference."""
    kernel = _pick("gelu", gelu_forward_reference, gelu_forward_numba, "gelu_forward_cuda")
    return kernel(x, approximate)


def gelu_backward(grad_y, x, approximate="none"):
    """dL/dx of GELU on the current backend; see the reference."""
    kernel = _pick("gelu", gelu_backward_reference, gelu_backward_numba, "gelu_backward_cuda")
    return kernel(grad_y, x, approximate)


# ----- Adam / AdamW update -------------------------------------------------------------------
def adam_update_reference(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                          weight_decay=0.0, decoupled=False):
    """One Adam (``decoupled=False``) or AdamW (``True``) step, in place on param, exp_avg (m)
    and exp_avg_sq (v), the NumPy way (as ``torch.optim.Adam`` / ``AdamW``):

        AdamW: p <- p (1 - lr wd)             Adam: g <- g + wd p
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
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
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)


@njit(parallel=True, cache=True)
def _adam_flat(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, correction1,
               correction2):
    for i in prange(p.size):
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
    _adam_flat(flats[0], g, flats[1], flats[2], lr, beta1, beta2, eps, weight_decay,
               bool(decoupled), 1 - beta1 ** step, 1 - beta2 ** step)


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False):
    """One Adam/AdamW step in place on the current backend; see the reference."""
    kernel = _pick("adam", adam_update_reference, adam_update_numba, "adam_update_cuda")
    kernel(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
           decoupled)


# ----- embedding backward (scatter-add of rows) ----------------------------------------------
def embedding_backward_reference(ids, grad, num_embeddings):
    """dL/dW of an embedding lookup y = W[ids], the NumPy way.

    ids (N,) integers in [0, V), grad (N, D) = dL/dy, V = num_embeddings. Row v of dL/dW is
    the sum of the rows of grad whose id is v (an id seen twice gets both gradients):

        dL/dW[v] = sum_{i : ids[i] = v} grad[i]          (0 for ids never seen)

    ``np.add.at`` adds one row at a time, so repeated ids accumulate (plain assignment
    ``out[ids] = grad`` would keep only the last). Cost: N D additions.
    """
    grad_weight = np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype)
    np.add.at(grad_weight, ids, grad)
    return grad_weight


@njit(cache=True)
def _add_rows(grad_weight, ids, grad):
    # Element by element: a row-at-a-time ``grad_weight[ids[i]] += grad[i]`` makes Numba also
    # compile its shape-mismatch error message, which tripled this kernel's compile time.
    for i in range(ids.shape[0]):
        row = ids[i]
        for j in range(grad.shape[1]):
            grad_weight[row, j] += grad[i, j]


def embedding_backward_numba(ids, grad, num_embeddings):
    """Same as ``embedding_backward_reference``: one compiled loop over the N rows, each added
    to row ids[i] (``np.add.at`` pays a general indexing machinery per row: ~20x slower at
    N = 768, D = 128). One thread: two rows with the same id must not be added at once."""
    grad_weight = np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype)
    _add_rows(grad_weight, np.ascontiguousarray(ids, dtype=np.int64),
              np.ascontiguousarray(grad))
    return grad_weight


def embedding_backward(ids, grad, num_embeddings):
    """dL/dW of y = W[ids] on the current backend; see the reference."""
    kernel = _pick("embedding", embedding_backward_reference, embedding_backward_numba,
                   "embedding_backward_cuda")
    return kernel(ids, grad, num_embeddings)
