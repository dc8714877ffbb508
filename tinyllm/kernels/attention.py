"""Fused scaled-dot-product attention, forward and backward: NumPy references and Numba kernels.

For one (batch, head) pair, queries Q (Tq, D), keys K (Tk, D), values V (Tk, Dv)::

    S = Q K^T * scale                          scores               (Tq, Tk)
    S[i, j] = -inf  where key j is masked      (causal: j > i; padding: key_padding_mask[j])
    P = softmax(S) row by row                  attention weights    (Tq, Tk)
    O = P V                                    output               (Tq, Dv)
    L[i] = log sum_j exp(S[i, j])              log-sum-exp of row i (Tq,)

Backward, with dO = dLoss/dO (FlashAttention-2's form)::

    Delta[i] = sum_d dO[i, d] O[i, d]          (= sum_j P[i, j] dP[i, j])
    dV = P^T dO,   dP = dO V^T,   dS = P * (dP - Delta),
    dQ = dS K * scale,   dK = dS^T Q * scale

Cost (no mask): 4 Tq Tk D FLOPs forward (two matrix products; 2 Tq Tk D each when Dv = D),
8-10 Tq Tk D backward (the scores are recomputed, then four products).

The references compute S and P whole: (Tq, Tk) numbers per head, O(T^2) memory. The fused
forward never builds S: it walks over the keys in blocks of ``BLOCK_K`` and keeps, for each
query row, the running maximum m, the running sum l = sum_j exp(S[i, j] - m) and the running
output acc = sum_j exp(S[i, j] - m) V[j] (the "online softmax"). When a new block raises the
maximum to m', the old sums are rescaled by exp(m - m') before the block is added:

    l <- exp(m - m') l + sum_{j in block} exp(S[i, j] - m'),   acc likewise,   m <- m'

and at the end O[i] = acc / l and L[i] = m + log l. Extra memory per query row: m, l and
acc, O(D), plus one (BLOCK_Q, BLOCK_K) block of scores per task. The backward recomputes each
block of scores from Q, K and the saved L (P = exp(S - L) needs no new softmax) so it, too, never
holds more than one block.

Masks: ``is_causal`` lets query i see keys j <= i (top-left aligned, as ``causal_mask`` in
tinyllm.functional); ``key_padding_mask`` (B, Tk) is True at padded keys, which no query sees.
A query that sees no key at all (every key masked) gets output 0, L = -inf and gradient 0
through it, never NaN (as PyTorch 2.x and ``tinyllm.functional.scaled_dot_product_attention``).

Exponentials: one per visible score, forward and backward, the kernels' costliest scalar
work. Causally masked scores get none, and float32 kernels use ``exp_float32``
(``tinyllm.kernels.special``), which the compiler turns into SIMD code, instead of one
``math.exp`` call per score. For that, the loop that takes the exponentials of a row does
nothing else: had it also added them up (``total += p``), the compiler, which must keep the
order of a float sum, would have run it one score at a time (about 1.5x slower forward at
T = 64). The row's max and sum are loops of their own (``_row_max``, ``_row_sum``).

Threads: the kernels are compiled without Numba's ``parallel=True`` (compiling its parallel
loops took 7.6 s for the forward and 7.3 s for the backward, most of a first training step's
wait). Each is a plain loop over a range of independent tasks, (batch entry, head, block of
queries) forward and (batch entry, head) backward, compiled with ``nogil=True``, and
``cpu_runtime.run_in_chunks`` runs ranges of tasks on all cores at once. Each task writes only
its own rows of the outputs, so the split changes no number.

The kernels must equal ``attention_forward_reference`` and ``attention_backward_reference``
to float rounding.
"""

import functools
import math

import numba
import numpy as np
from numba import njit

from tinyllm.kernels import backend, cpu_runtime
from tinyllm.kernels.matmul import block_matmul_add
from tinyllm.kernels.special import exp_float32

BLOCK_Q = 64     # query rows per parallel task (forward) and per block (backward)
BLOCK_K = 64     # keys per block


# ----- the NumPy references -------------------------------------------------------------------
def _transposed(x):
    """x with its last two axes swapped, as a C-contiguous copy. NumPy 2.4's matmul of 4-D
    stacks takes a slow path for a swapped view: q @ k^T at B=12, H=4, T=256, D=32 took 2.3 s
    in one run on 2 cores, where the product of the same size on contiguous arrays, P @ V,
    took 11 ms. The copy costs one pass over x."""
    return np.ascontiguousarray(np.swapaxes(x, -1, -2))


def attention_mask_reference(Tq, Tk, is_causal=False, key_padding_mask=None, batch=None):
    """Boolean array broadcasting to (B, 1, Tq, Tk): True where query i may see key j."""
    allowed = np.ones((1, 1, Tq, Tk), dtype=bool)
    if is_causal:
        allowed = allowed & np.tril(np.ones((Tq, Tk), dtype=bool))
    if key_padding_mask is not None:
        allowed = allowed & ~np.asarray(key_padding_mask, dtype=bool)[:, None, None, :]
    return allowed


def attention_forward_reference(q, k, v, scale, is_causal=False, key_padding_mask=None):
    """(O, L) computed the plain way: scores, mask, softmax, weighted sum of values.

    q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) -> O (B, H, Tq, Dv), L (B, H, Tq).
    Holds the (B, H, Tq, Tk) scores: O(T^2) memory.
    """
    allowed = attention_mask_reference(q.shape[2], k.shape[2], is_causal, key_padding_mask)
    scores = np.where(allowed, np.matmul(q, _transposed(k)) * scale, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    empty = row_max == -np.inf                             # rows that see no key
    row_max = np.where(empty, 0, row_max)
    weights = np.exp(scores - row_max)
    row_sum = weights.sum(axis=-1, keepdims=True)
    weights = weights / np.where(empty, 1, row_sum)
    out = np.matmul(weights, v)
    with np.errstate(divide="ignore"):
        lse = np.where(empty, -np.inf, row_max + np.log(row_sum))[..., 0]
    return out.astype(q.dtype, copy=False), lse.astype(q.dtype, copy=False)


def attention_backward_reference(grad_out, q, k, v, out, lse, scale, is_causal=False,
                                 key_padding_mask=None):
    """(dQ, dK, dV) from the full weight matrix P = exp(S - L) (see the module docstring)."""
    allowed = attention_mask_reference(q.shape[2], k.shape[2], is_causal, key_padding_mask)
    scores = np.matmul(q, _transposed(k)) * scale
    finite = np.isfinite(lse)[..., None]
    weights = np.where(allowed & finite, np.exp(scores - np.where(finite, lse[..., None], 0)), 0)
    grad_v = np.matmul(_transposed(weights), grad_out)
    grad_weights = np.matmul(grad_out, _transposed(v))
    delta = np.sum(grad_out * out, axis=-1, keepdims=True)
    grad_scores = weights * (grad_weights - delta)
    grad_q = np.matmul(grad_scores, k) * scale
    grad_k = np.matmul(_transposed(grad_scores), q) * scale
    return (grad_q.astype(q.dtype, copy=False), grad_k.astype(q.dtype, copy=False),
            grad_v.astype(q.dtype, copy=False))


# ----- the Numba kernels ----------------------------------------------------------------------
@njit(cache=True)
def _mask_block(s, i0, j0, is_causal, padding, b):
    """Set s[r, c] = -inf where query i0 + r may not see key j0 + c (causal or padded)."""
    nq, nk = s.shape
    for r in range(nq):
        for c in range(nk):
            if (is_causal and j0 + c > i0 + r) or (padding.shape[0] > 0 and padding[b, j0 + c]):
                s[r, c] = -np.inf


@njit(cache=True)
def _scores_block(s, q, k_t, i0, j0, scale, is_causal, padding, b):
    """s = (q @ k_t) * scale, then masked; s (nq, nk), q (nq, D), k_t (D, nk) contiguous."""
    s[:, :] = 0
    block_matmul_add(s, q, k_t)
    s *= scale
    if is_causal or padding.shape[0] > 0:
        _mask_block(s, i0, j0, is_causal, padding, b)


@njit(inline="always")
def _visible_keys(is_causal, i, j0, nk):
    """How many of the keys j0 .. j0 + nk - 1 query i can see before the causal mask starts:
    the columns of a score block whose exponentials are worth computing (0 if none)."""
    return max(0, min(nk, i - j0 + 1)) if is_causal else nk


@njit(inline="always")
def _row_max(x):
    """max(x) of a 1-D array, -inf if it is empty."""
    best = x.dtype.type(-np.inf)        # float32 data: float32 max, and exps after it
    for value in x:
        best = max(best, value)
    return best


@njit(inline="always")
def _row_sum(x):
    """sum(x) of a 1-D array, left to right."""
    total = x.dtype.type(0)
    for value in x:
        total += value
    return total


@njit(inline="always")
def _exp(x, float32_math):
    """e^x: ``exp_float32`` (SIMD) for float32 kernels, ``math.exp`` for float64 ones."""
    return exp_float32(x) if float32_math else math.exp(x)


def forward_tasks(q):
    """How many tasks the forward has: one per (batch entry, head, block of BLOCK_Q queries)."""
    B, H, Tq, _ = q.shape
    return B * H * ((Tq + BLOCK_Q - 1) // BLOCK_Q)


@njit(nogil=True, cache=True, fastmath={"contract"})
def attention_forward_tasks(q, k, v, scale, is_causal, padding, out, lse, first, stop):
    """Fused forward (online softmax) of tasks ``first`` to ``stop - 1`` into ``out``
    (B, H, Tq, Dv) and ``lse`` (B, H, Tq).

    q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), with any strides (a GPT's heads are
    strided views of one (B, T, 3C) array; every block is copied into a small contiguous
    buffer here anyway); padding is a (B, Tk) boolean array (True = padded key) or a (0, 0)
    array for none. Task number ``task`` is (batch entry, head, block of BLOCK_Q queries) in
    that order (``forward_tasks`` of them); each holds m, l, acc and one block of scores, and
    writes only its own rows of ``out`` and ``lse``, so ranges of tasks can run on different
    threads. Causally masked scores get no exponential.
    """
    B, H, Tq, D = q.shape
    Tk, Dv = k.shape[2], v.shape[3]
    float32_math = q.itemsize == 4                      # float32 data: SIMD exp
    q_blocks = (Tq + BLOCK_Q - 1) // BLOCK_Q
    for task in range(first, stop):
        b, h, i0 = task // (H * q_blocks), (task // q_blocks) % H, (task % q_blocks) * BLOCK_Q
        i1 = min(i0 + BLOCK_Q, Tq)
        nq = i1 - i0
        q_block = np.ascontiguousarray(q[b, h, i0:i1])
        row_max = np.full(nq, -np.inf, dtype=q.dtype)
        row_sum = np.zeros(nq, dtype=q.dtype)
        acc = np.zeros((nq, Dv), dtype=q.dtype)
        last_key = min(Tk, i1) if is_causal else Tk         # causal: later keys are all masked
        for j0 in range(0, last_key, BLOCK_K):
            j1 = min(j0 + BLOCK_K, last_key)
            k_t = np.ascontiguousarray(k[b, h, j0:j1].T)    # (D, nk): rows contiguous
            v_block = np.ascontiguousarray(v[b, h, j0:j1])
            s = np.empty((nq, j1 - j0), dtype=q.dtype)
            _scores_block(s, q_block, k_t, i0, j0, scale, is_causal, padding, b)
            for r in range(nq):
                visible = _visible_keys(is_causal, i0 + r, j0, j1 - j0)
                new_max = max(row_max[r], _row_max(s[r, :visible]))
                if new_max == -np.inf:                      # nothing seen yet in this row
                    s[r, :] = 0
                    continue
                rescale = _exp(row_max[r] - new_max, float32_math)
                for c in range(visible):
                    s[r, c] = _exp(s[r, c] - new_max, float32_math)  # P-tilde: unnormalised
                s[r, visible:] = 0
                row_sum[r] = rescale * row_sum[r] + _row_sum(s[r, :visible])
                acc[r] *= rescale
                row_max[r] = new_max
            block_matmul_add(acc, s, v_block)
        for r in range(nq):
            if row_sum[r] == 0:                             # no visible key: defined as 0
                out[b, h, i0 + r] = 0
                lse[b, h, i0 + r] = -np.inf
            else:
                out[b, h, i0 + r] = acc[r] / row_sum[r]
                lse[b, h, i0 + r] = row_max[r] + math.log(row_sum[r])


@njit(nogil=True, cache=True, fastmath={"contract"})
def attention_backward_tasks(grad_out, q, k, v, out, lse, scale, is_causal, padding,
                             grad_q, grad_k, grad_v, first, stop):
    """Fused backward (FlashAttention-2) of tasks ``first`` to ``stop - 1`` into grad_q,
    grad_k, grad_v (shapes of q, k, v).

    Shapes as ``attention_forward_tasks`` (any strides); lse (B, H, Tq) from the forward.
    Task number ``bh`` is the (batch entry, head) pair (bh // H, bh % H), B * H of them, each
    writing only its own head's gradients. For each block of keys, dK and dV are summed over
    all query blocks in small buffers; dQ is summed in place, key block after key block. P is
    rebuilt from the scores and L, with no exponential for causally masked scores.
    """
    B, H, Tq, D = q.shape
    Tk, Dv = k.shape[2], v.shape[3]
    float32_math = q.itemsize == 4                      # float32 data: SIMD exp
    for bh in range(first, stop):
        b, h = bh // H, bh % H
        delta = np.empty(Tq, dtype=q.dtype)
        for i in range(Tq):
            total = 0.0
            for d in range(Dv):
                total += grad_out[b, h, i, d] * out[b, h, i, d]
            delta[i] = total
        grad_q_acc = np.zeros((Tq, D), dtype=q.dtype)
        for j0 in range(0, Tk, BLOCK_K):
            j1 = min(j0 + BLOCK_K, Tk)
            nk = j1 - j0
            k_block = np.ascontiguousarray(k[b, h, j0:j1])  # (nk, D)
            k_t = np.ascontiguousarray(k_block.T)           # (D, nk)
            v_t = np.ascontiguousarray(v[b, h, j0:j1].T)    # (Dv, nk)
            grad_k_acc = np.zeros((nk, D), dtype=q.dtype)
            grad_v_acc = np.zeros((nk, Dv), dtype=q.dtype)
            first_query = j0 if is_causal else 0            # earlier queries see none of them
            for i0 in range(first_query - first_query % BLOCK_Q, Tq, BLOCK_Q):
                i1 = min(i0 + BLOCK_Q, Tq)
                nq = i1 - i0
                q_block = np.ascontiguousarray(q[b, h, i0:i1])
                grad_out_block = np.ascontiguousarray(grad_out[b, h, i0:i1])
                p = np.empty((nq, nk), dtype=q.dtype)
                _scores_block(p, q_block, k_t, i0, j0, scale, is_causal, padding, b)
                for r in range(nq):
                    row_lse = lse[b, h, i0 + r]
                    visible = _visible_keys(is_causal, i0 + r, j0, nk)
                    if row_lse == -np.inf:                  # a row that sees no key
                        visible = 0
                    for c in range(visible):
                        p[r, c] = _exp(p[r, c] - row_lse, float32_math)
                    p[r, visible:] = 0
                block_matmul_add(grad_v_acc, p.T, grad_out_block)      # dV += P^T dO
                ds = np.zeros((nq, nk), dtype=q.dtype)
                block_matmul_add(ds, grad_out_block, v_t)              # dP = dO V^T
                for r in range(nq):
                    for c in range(nk):
                        ds[r, c] = p[r, c] * (ds[r, c] - delta[i0 + r])  # dS
                block_matmul_add(grad_q_acc[i0:i1], ds, k_block)       # dQ += dS K
                block_matmul_add(grad_k_acc, ds.T, q_block)            # dK += dS^T Q
            grad_k[b, h, j0:j1] = grad_k_acc * scale
            grad_v[b, h, j0:j1] = grad_v_acc
        grad_q[b, h] = grad_q_acc * scale


# ----- the entry points that the autograd op calls --------------------------------------------
@functools.lru_cache(maxsize=None)
def _any_layout_type(dtype, ndim, readonly):
    """Numba's type of an array of ``dtype`` and ``ndim`` axes with any strides (layout "A");
    remembered, since building it costs more than some kernel calls."""
    return numba.types.Array(numba.from_dtype(dtype), ndim, "A", readonly=readonly)


def _compiled_for_any_layout(kernel, *args):
    """The compiled ``kernel`` for ``args``, compiled once for arrays of any layout.

    Numba compiles a kernel once per combination of argument types, and an array's type
    includes its layout: "C" (contiguous) or "A" (any strides). The heads of a GPT are strided
    views ("A"), except in a window of one token (sampling's first step), where they are
    contiguous ("C"), and called with both, Numba would compile the kernel twice (seconds
    each on a first run). Here it is compiled (or loaded from Numba's on-disk cache) for "A"
    arrays only, and that version runs every call: a contiguous array is an "A" array too.
    """
    signature = tuple(_any_layout_type(a.dtype, a.ndim, not a.flags.writeable)
                      if isinstance(a, np.ndarray) else numba.typeof(a) for a in args)
    if signature not in kernel.overloads:
        kernel.compile(signature)
    return kernel.overloads[signature].entry_point


def _run_on_threads(kernel, tasks, *args):
    """``kernel(*args, first, stop)`` for ranges of ``range(tasks)`` on the kernel threads
    (``cpu_runtime.run_in_chunks``), compiled once for arrays of any layout."""
    compiled = _compiled_for_any_layout(kernel, *args, 0, tasks)
    cpu_runtime.run_in_chunks(lambda first, stop: compiled(*args, first, stop), tasks)


def attention_forward_numba(q, k, v, scale, is_causal, padding, out, lse):
    """Fused forward into ``out`` and ``lse``: ``attention_forward_tasks`` for every task, on
    all kernel threads. Arguments as ``attention_forward_tasks`` without first and stop
    (scale of q's dtype, padding from ``_padding_array``)."""
    _run_on_threads(attention_forward_tasks, forward_tasks(q), q, k, v, scale, is_causal,
                    padding, out, lse)


def attention_backward_numba(grad_out, q, k, v, out, lse, scale, is_causal, padding,
                             grad_q, grad_k, grad_v):
    """Fused backward into grad_q, grad_k, grad_v: ``attention_backward_tasks`` for every
    (batch entry, head), on all kernel threads."""
    _run_on_threads(attention_backward_tasks, q.shape[0] * q.shape[1], grad_out, q, k, v, out,
                    lse, scale, is_causal, padding, grad_q, grad_k, grad_v)


def _padding_array(key_padding_mask):
    if key_padding_mask is None:
        return np.zeros((0, 0), dtype=np.bool_)
    return np.ascontiguousarray(key_padding_mask, dtype=np.bool_)


def attention_forward_fused_numba(q, k, v, scale, is_causal=False, key_padding_mask=None):
    """(O, L) by ``attention_forward_numba``, for arrays as ``attention_forward_reference``."""
    B, H, Tq, _ = q.shape
    out = np.empty((B, H, Tq, v.shape[-1]), dtype=q.dtype)
    lse = np.empty((B, H, Tq), dtype=q.dtype)
    attention_forward_numba(q, k, v, q.dtype.type(scale), bool(is_causal),
                            _padding_array(key_padding_mask), out, lse)
    return out, lse


def attention_backward_fused_numba(grad_out, q, k, v, out, lse, scale, is_causal=False,
                                   key_padding_mask=None):
    """(dQ, dK, dV) by ``attention_backward_numba``, for arrays as the reference."""
    grad_q, grad_k, grad_v = (np.empty(x.shape, dtype=q.dtype) for x in (q, k, v))
    attention_backward_numba(grad_out.astype(q.dtype, copy=False), q, k, v, out,
                             lse.astype(q.dtype, copy=False), q.dtype.type(scale),
                             bool(is_causal), _padding_array(key_padding_mask),
                             grad_q, grad_k, grad_v)
    return grad_q, grad_k, grad_v


def attention_forward(q, k, v, scale, is_causal=False, key_padding_mask=None):
    """(O, L) on the current backend; shapes as ``attention_forward_reference``."""
    kernel = backend.pick("attention", attention_forward_reference,
                          attention_forward_fused_numba, "attention.attention_forward_cuda")
    return kernel(q, k, v, scale, is_causal, key_padding_mask)


def attention_backward(grad_out, q, k, v, out, lse, scale, is_causal=False,
                       key_padding_mask=None):
    """(dQ, dK, dV) on the current backend; shapes as ``attention_backward_reference``."""
    kernel = backend.pick("attention", attention_backward_reference,
                          attention_backward_fused_numba, "attention.attention_backward_cuda")
    return kernel(grad_out, q, k, v, out, lse, scale, is_causal, key_padding_mask)


def use_fused_attention(dropout_p=0.0):
    """Whether ``scaled_dot_product_attention`` should run the fused op (these kernels) rather
    than the composite of ops (scores, mask, softmax, weighted sum) that autograd differentiates
    op by op: on the "numba" and "cuda" backends (and "auto"), without attention dropout (the
    fused kernels never hold the weights that dropout would drop). The "numpy" backend runs
    the composite, the plainest statement of the math."""
    return dropout_p == 0.0 and backend.resolve("attention") != "numpy"
