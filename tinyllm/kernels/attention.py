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

Layout: the kernels hold every block transposed, one column per query. The block of scores
is S^T = K (Q scale)^T, (nk keys, nq queries), and the per-query numbers (m, l, L, Delta) are
rows of length nq, so that each inner loop (the running max, the exponentials, the sums, the
rescaling of acc^T = V^T P^T) runs along the queries of the block: independent numbers in
contiguous memory, which the compiler turns into SIMD code (8 float32 per AVX2 register).
Held the other way, a query's max and sum run along its row of scores, and a sum the compiler
must keep in order runs one number at a time. The masks become a first visible column per key
row: causal key j is seen by queries i >= j, a padded key by none. Queries are taken in blocks
of ``BLOCK_Q`` = 128 (long rows: 1.15-1.25x faster than 64 at T = 1024), keys in blocks of
``BLOCK_K`` = 64. The block products are ``tile_matmul_add`` (rank-1 updates of the rows of the
result, for products whose rows run along the queries) and ``tile_matmul_transposed_add`` (row
dot products, for dK and dV, whose rows are only D long). The running max of a block takes
four rows of scores at a time (``_running_max4``): it reads and writes the row of maxima once
per four rows instead of once per row (one row at a time, the max had taken 14% of the
forward's time at B = 1, T = 1024, measured by leaving it out); masked scores are set to -inf
first, so the same loop serves every mask.

Exponentials: one per visible score, forward and backward, the kernels' costliest scalar
work. Masked scores get none. The kernels work in base 2, as FlashAttention does: the queries
are scaled by scale * log2 e, so each score is s2 = s log2 e and e^(s - m) = 2^(s2 - m2), and
``exp2_float32`` (``tinyllm.kernels.special``; ``math.exp2`` for float64) costs two
multiply-adds fewer than e^x per score (it needs no ln 2 in its range reduction; measured
0.60 against 0.82 ns a number). The log-sum-exp leaves the forward in natural units,
L = (m2 + log2 l) ln 2, and the backward takes it back, L2 = L log2 e; dK, a product with the
base-2 queries, is multiplied by ln 2 once per key block. Float32 kernels call the SIMD
``exp2_float32`` (the compiler turns it into 8-lane code) instead of one library call per score.
Each such loop starts at index 0 of a slice (``_exp_minus``): from an index Numba cannot prove
non-negative every access checks for a negative index, and the loop runs one number at a time.

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
from tinyllm.kernels.special import exp2_float32

BLOCK_Q = 128    # queries per parallel task (forward) and per block (backward)
BLOCK_K = 64     # keys per block
LOG2_E = 1.4426950408889634     # log2 e: e^s = 2^(s log2 e)
LN_2 = 0.6931471805599453       # ln 2 = 1 / log2 e


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
@njit(fastmath={"contract"}, inline="always")
def _update_four_rows(c0, c1, c2, c3, b0, b1, a, i, p):
    """The micro-kernel: four rows of c += a 4 x 2 block of a times two rows of b.

        c_r[j] += a[i + r, p] b0[j] + a[i + r, p + 1] b1[j],   r = 0..3

    Each loaded element of b serves 4 rows. Why 4 x 2 and not the matmul's 4 x 4: AVX2 has 16
    vector registers, and 4 x 4 needs 16 for the broadcast numbers of a alone, plus 4 for b and
    4 for c, more than there are. Measured on one core of the 2-core AVX2 machine, best of 9:
    the (64, 32) x (32, 128) score block at 62 GFLOP/s with 4 x 2, 54 with 4 x 4; but the
    (32, 64) x (64, 128) output block at 40 and 52, and at 128 -> 64 columns both at 36-37.
    In the whole kernels, the 4 x 4 kernel for the (32, 64) x (64, 128) products gave no
    difference beyond the spread; one kernel for every product is simpler.
    """
    a00, a01 = a[i, p], a[i, p + 1]
    a10, a11 = a[i + 1, p], a[i + 1, p + 1]
    a20, a21 = a[i + 2, p], a[i + 2, p + 1]
    a30, a31 = a[i + 3, p], a[i + 3, p + 1]
    for j in range(c0.size):
        x0, x1 = b0[j], b1[j]
        c0[j] += a00 * x0 + a01 * x1
        c1[j] += a10 * x0 + a11 * x1
        c2[j] += a20 * x0 + a21 * x1
        c3[j] += a30 * x0 + a31 * x1


@njit(fastmath={"contract"}, inline="always")
def _update_row(c_row, b_row, a_value):
    """c_row += a_value * b_row: the leftover rows and terms that do not fill a 4 x 2 block."""
    for j in range(c_row.size):
        c_row[j] += a_value * b_row[j]


@njit(cache=True, fastmath={"contract"})
def tile_matmul_add(c, a, b):
    """c += a @ b for the small blocks of attention: c (n, m), a (n, k), b (k, m).

    Rows of c and b must be contiguous (the loop over a row then compiles to SIMD fused
    multiply-adds); a may be any view (only single numbers are read from it), so a transposed
    block costs no copy. 4 rows x 2 terms at a time (``_update_four_rows``), leftovers one by
    one. Equals ``np.matmul`` to float rounding (fused multiply-adds, sums in order of p).
    """
    n, k = a.shape
    i = 0
    while i + 4 <= n:
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        p = 0
        while p + 2 <= k:
            _update_four_rows(c0, c1, c2, c3, b[p], b[p + 1], a, i, p)
            p += 2
        if p < k:
            for r in range(4):
                _update_row(c[i + r], b[p], a[i + r, p])
        i += 4
    for r in range(i, n):
        for p in range(k):
            _update_row(c[r], b[p], a[r, p])


@njit(inline="always")
def _exp2(x, float32_math):
    """2^x: ``exp2_float32`` (SIMD) for float32 kernels, ``math.exp2`` for float64 ones."""
    return exp2_float32(x) if float32_math else math.exp2(x)


@njit(inline="always")
def _running_max(best, x):
    """best[r] = max(best[r], x[r]) for 1-D arrays. Written as a comparison, which compiles
    to SIMD, where Python's ``max`` (it checks for NaN) took one number at a time."""
    for r in range(x.size):
        best[r] = x[r] if x[r] > best[r] else best[r]


@njit(inline="always")
def _running_max4(best, x0, x1, x2, x3):
    """best[r] = max(best[r], x0[r], x1[r], x2[r], x3[r]) for 1-D arrays of one length: the
    running max of a block four rows at a time (``best`` is loaded and stored once, not four
    times). Comparisons, as ``_running_max``."""
    for r in range(best.size):
        m01 = x0[r] if x0[r] > x1[r] else x1[r]
        m23 = x2[r] if x2[r] > x3[r] else x3[r]
        m = m01 if m01 > m23 else m23
        best[r] = m if m > best[r] else best[r]


@njit(inline="always")
def _exp_minus(x, shift, float32_math):
    """x[r] = 2^(x[r] - shift[r]) in place, for 1-D arrays. The loops start at index 0
    (slice first): from an index Numba cannot prove non-negative, each access checks for a
    negative index, and the loop then runs one number at a time instead of in SIMD."""
    for r in range(x.size):
        x[r] = _exp2(x[r] - shift[r], float32_math)


@njit(inline="always")
def _first_seeing_query(j, Tq, is_causal, padding, b):
    """The first query that may see key j: 0; j when causal; Tq (none) when key j is padded."""
    if padding.shape[0] > 0 and padding[b, j]:
        return Tq
    return j if is_causal else 0


@njit(inline="always")
def _first_visible_column(j, i0, nq, Tq, is_causal, padding, b):
    """In a transposed block of scores (row j = key j, columns = queries i0 .. i0 + nq - 1),
    the first column that may see key j (nq if none): the columns before it are masked."""
    return min(nq, max(0, _first_seeing_query(j, Tq, is_causal, padding, b) - i0))


@njit(inline="always")
def _block(buffer, rows, columns):
    """The first rows * columns numbers of a 1-D work array as a contiguous (rows, columns)
    array, for one block of a task. (Slicing a 2-D array to fewer columns would give rows that
    are not contiguous, and the block products would lose their SIMD code.)"""
    return buffer[:rows * columns].reshape((rows, columns))


def forward_tasks(q):
    """How many tasks the forward has: one per (batch entry, head, block of BLOCK_Q queries)."""
    B, H, Tq, _ = q.shape
    return B * H * ((Tq + BLOCK_Q - 1) // BLOCK_Q)


@njit(nogil=True, cache=True, fastmath={"contract"})
def attention_forward_tasks(q, k, v, scale, is_causal, padding, out, lse, first, stop):
    """Fused forward (online softmax) of tasks ``first`` to ``stop - 1`` into ``out``
    (B, H, Tq, Dv) and ``lse`` (B, H, Tq).

    q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), with any strides (a GPT's heads are
    strided views of one (B, T, 3C) array); padding is a (B, Tk) boolean array (True = padded
    key) or a (0, 0) array for none. Task number ``task`` is (batch entry, head, block of
    BLOCK_Q queries) in that order (``forward_tasks`` of them); each writes only its own rows
    of ``out`` and ``lse``, so ranges of tasks can run on different threads.

    Everything is held transposed, one column per query (see the module docstring): the
    block of scores S^T = K (Q scale log2 e)^T (nk, nq), in base 2, the running max m, sum l
    and output acc^T = V^T P^T (Dv, nq), so that every inner loop runs along the queries of
    the block. Masked scores get no exponential; key blocks after the last query (causal) are
    skipped. The work arrays are made once per call, not once per task.
    """
    B, H, Tq, D = q.shape
    Tk, Dv = k.shape[2], v.shape[3]
    float32_math = q.itemsize == 4                      # float32 data: SIMD exp2
    q_blocks = (Tq + BLOCK_Q - 1) // BLOCK_Q
    scale_base_2 = scale * q.dtype.type(LOG2_E)         # scores in base 2: s log2 e
    width = max(1, min(BLOCK_Q, Tq))                    # the most queries a task has
    q_t_buffer = np.empty(D * width, dtype=q.dtype)
    acc_t_buffer = np.empty(Dv * width, dtype=q.dtype)
    scores_buffer = np.empty(BLOCK_K * width, dtype=q.dtype)
    row_max_buffer = np.empty(width, dtype=q.dtype)
    row_sum_buffer = np.empty(width, dtype=q.dtype)
    new_max_buffer = np.empty(width, dtype=q.dtype)
    shift_buffer = np.empty(width, dtype=q.dtype)
    rescale_buffer = np.empty(width, dtype=q.dtype)
    starts = np.empty(BLOCK_K, dtype=np.int64)
    for task in range(first, stop):
        b, h, i0 = task // (H * q_blocks), (task // q_blocks) % H, (task % q_blocks) * BLOCK_Q
        i1 = min(i0 + BLOCK_Q, Tq)
        nq = i1 - i0
        q_t = _block(q_t_buffer, D, nq)                     # (Q scale log2 e)^T
        for r in range(nq):
            for d in range(D):
                q_t[d, r] = q[b, h, i0 + r, d] * scale_base_2
        row_max = row_max_buffer[:nq]                       # m of each query
        row_max[:] = -np.inf
        row_sum = row_sum_buffer[:nq]                       # l of each query
        row_sum[:] = 0
        new_max = new_max_buffer[:nq]                       # m after this block of keys
        shift = shift_buffer[:nq]                           # the new m, 0 where still -inf
        rescale = rescale_buffer[:nq]                       # 2^(m - new m)
        acc_t = _block(acc_t_buffer, Dv, nq)                # acc^T
        acc_t[:, :] = 0
        last_key = min(Tk, i1) if is_causal else Tk         # causal: later keys are all masked
        for j0 in range(0, last_key, BLOCK_K):
            j1 = min(j0 + BLOCK_K, last_key)
            nk = j1 - j0
            p_t = _block(scores_buffer, nk, nq)             # S^T, then P-tilde^T in place
            p_t[:, :] = 0
            tile_matmul_add(p_t, k[b, h, j0:j1], q_t)       # S^T = K (Q scale log2 e)^T
            new_max[:] = row_max
            for c in range(nk):
                starts[c] = _first_visible_column(j0 + c, i0, nq, Tq, is_causal, padding, b)
                p_t[c, :starts[c]] = -np.inf                # masked: no part in the max
            c = 0
            while c + 4 <= nk:
                _running_max4(new_max, p_t[c], p_t[c + 1], p_t[c + 2], p_t[c + 3])
                c += 4
            for c in range(c, nk):
                _running_max(new_max, p_t[c])
            for r in range(nq):
                shift[r] = 0 if new_max[r] == -np.inf else new_max[r]   # nothing seen yet
                rescale[r] = _exp2(row_max[r] - shift[r], float32_math)
                row_max[r] = new_max[r]
                row_sum[r] *= rescale[r]
            for c in range(nk):
                p_t[c, :starts[c]] = 0
                _exp_minus(p_t[c, starts[c]:], shift[starts[c]:], float32_math)  # P-tilde^T
                row = p_t[c]
                for r in range(nq):
                    row_sum[r] += row[r]
            for d in range(Dv):
                for r in range(nq):
                    acc_t[d, r] *= rescale[r]
            tile_matmul_add(acc_t, v[b, h, j0:j1].T, p_t)   # acc^T += V^T P-tilde^T
        for r in range(nq):
            if row_sum[r] == 0:                             # no visible key: defined as 0
                out[b, h, i0 + r] = 0
                lse[b, h, i0 + r] = -np.inf
            else:
                inverse_sum = 1 / row_sum[r]                # one division per row, not per number
                for d in range(Dv):
                    out[b, h, i0 + r, d] = acc_t[d, r] * inverse_sum
                lse[b, h, i0 + r] = (row_max[r] + math.log2(row_sum[r])) * LN_2  # natural units


@njit(inline="always", fastmath={"contract", "reassoc"})
def _dot_add(c, a, b, i, j):
    """c[i, j] += a[i] . b[j], the dot product of two contiguous rows."""
    a_row, b_row = a[i], b[j]
    total = c.dtype.type(0)
    for p in range(a_row.size):
        total += a_row[p] * b_row[p]
    c[i, j] += total


@njit(cache=True, fastmath={"contract", "reassoc"})
def tile_matmul_transposed_add(c, a, b):
    """c += a @ b^T for c (n, m), a (n, k), b (m, k), rows of a and b contiguous: each element
    a dot product of two contiguous rows, c[i, j] += sum_p a[i, p] b[j, p].

    For products whose result rows are short (dK, dV: D = 32 numbers), where the rank-1 updates
    of ``tile_matmul_add`` run few SIMD steps per row; here the SIMD loop runs along k (the
    queries of a block). A 4 x 2 block of dot products at a time: four rows of a and two of b,
    eight sums, each loaded row serving two or four of them (measured, one core: 46 GFLOP/s
    against 40 for four rows and one row of b at k = 64, 64 against 57 at k = 128); leftovers
    one dot product at a time. ``reassoc`` lets the compiler split each sum into SIMD lanes: a
    different order of the additions than ``np.matmul``'s, equal to float rounding.
    """
    n, k = a.shape
    m = b.shape[0]
    zero = c.dtype.type(0)
    i = 0
    while i + 4 <= n:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        j = 0
        while j + 2 <= m:
            b0, b1 = b[j], b[j + 1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
            for p in range(k):
                x0, x1 = b0[p], b1[p]
                s00 += a0[p] * x0
                s01 += a0[p] * x1
                s10 += a1[p] * x0
                s11 += a1[p] * x1
                s20 += a2[p] * x0
                s21 += a2[p] * x1
                s30 += a3[p] * x0
                s31 += a3[p] * x1
            c[i, j] += s00
            c[i, j + 1] += s01
            c[i + 1, j] += s10
            c[i + 1, j + 1] += s11
            c[i + 2, j] += s20
            c[i + 2, j + 1] += s21
            c[i + 3, j] += s30
            c[i + 3, j + 1] += s31
            j += 2
        for j in range(j, m):
            for r in range(i, i + 4):
                _dot_add(c, a, b, r, j)
        i += 4
    for r in range(i, n):
        for j in range(m):
            _dot_add(c, a, b, r, j)


@njit(nogil=True, cache=True, fastmath={"contract"})
def attention_backward_tasks(grad_out, q, k, v, out, lse, scale, is_causal, padding,
                             grad_q, grad_k, grad_v, first, stop):
    """Fused backward (FlashAttention-2) of tasks ``first`` to ``stop - 1`` into grad_q,
    grad_k, grad_v (shapes of q, k, v).

    Shapes as ``attention_forward_tasks`` (any strides); lse (B, H, Tq) from the forward,
    in natural units (taken to base 2 here, L2 = L log2 e, as the scores).
    Task number ``bh`` is the (batch entry, head) pair (bh // H, bh % H), B * H of them, each
    writing only its own head's gradients. Per head, once: Delta = rowsum(dO * O), and
    (Q scale)^T and dO^T in blocks of ``width`` = min(BLOCK_Q, Tq) queries, the last block
    filled up with zero queries (whose P is 0: L = +inf), so that every block has the same
    width. Then key blocks outer, query blocks inner: the weights are rebuilt transposed,
    P^T = 2^(K (Q scale log2 e)^T - L2) (nk, width), and dS^T = P^T * (V dO^T - Delta);
    dV += P^T dO and dK += dS^T (Q scale log2 e) are summed over the query blocks in small
    buffers and written once per key block (dK times ln 2); dQ^T += K^T dS^T is summed per query block. No exponential
    for masked scores; causally, query blocks before the key block are skipped.
    """
    B, H, Tq, D = q.shape
    Tk, Dv = k.shape[2], v.shape[3]
    float32_math = q.itemsize == 4                      # float32 data: SIMD exp2
    scale_base_2 = scale * q.dtype.type(LOG2_E)         # scores in base 2, as the forward's
    log2_e, ln_2 = q.dtype.type(LOG2_E), q.dtype.type(LN_2)
    width = max(1, min(BLOCK_Q, Tq))                    # (1 for Tq = 0: no block at all)
    q_blocks = (Tq + width - 1) // width
    q_t = np.zeros((q_blocks, D, width), dtype=q.dtype)            # (Q scale log2 e)^T
    grad_out_t = np.zeros((q_blocks, Dv, width), dtype=q.dtype)    # dO^T per block
    grad_q_t = np.empty((q_blocks, D, width), dtype=q.dtype)       # dQ^T per block
    delta = np.zeros(q_blocks * width, dtype=q.dtype)
    lse_safe = np.full(q_blocks * width, np.inf, dtype=q.dtype)    # +inf: P = 0
    p_t = np.empty((BLOCK_K, width), dtype=q.dtype)
    ds_t = np.empty((BLOCK_K, width), dtype=q.dtype)
    grad_k_acc = np.empty((BLOCK_K, D), dtype=q.dtype)
    grad_v_acc = np.empty((BLOCK_K, Dv), dtype=q.dtype)
    for bh in range(first, stop):
        b, h = bh // H, bh % H
        for i in range(Tq):
            block, r = i // width, i % width
            for d in range(D):
                q_t[block, d, r] = q[b, h, i, d] * scale_base_2
            total = 0.0
            for d in range(Dv):
                grad_out_t[block, d, r] = grad_out[b, h, i, d]
                total += grad_out[b, h, i, d] * out[b, h, i, d]
            delta[i] = total
            lse_safe[i] = np.inf if lse[b, h, i] == -np.inf else lse[b, h, i] * log2_e
        grad_q_t[:] = 0
        for j0 in range(0, Tk, BLOCK_K):
            j1 = min(j0 + BLOCK_K, Tk)
            nk = j1 - j0
            k_block, v_block = k[b, h, j0:j1], v[b, h, j0:j1]
            grad_k_block, grad_v_block = grad_k_acc[:nk], grad_v_acc[:nk]
            grad_k_block[:] = 0
            grad_v_block[:] = 0
            p_block, ds_block = p_t[:nk], ds_t[:nk]
            first_block = j0 // width if is_causal else 0   # earlier queries see none of them
            for block in range(first_block, q_blocks):
                i0 = block * width
                p_block[:] = 0
                tile_matmul_add(p_block, k_block, q_t[block])            # S^T
                for c in range(nk):
                    start = _first_visible_column(j0 + c, i0, width, Tq, is_causal, padding, b)
                    p_block[c, :start] = 0
                    _exp_minus(p_block[c, start:], lse_safe[i0 + start:i0 + width],
                               float32_math)                             # P^T
                tile_matmul_transposed_add(grad_v_block, p_block, grad_out_t[block])  # dV += P^T dO
                ds_block[:] = 0
                tile_matmul_add(ds_block, v_block, grad_out_t[block])   # dP^T = V dO^T
                delta_block = delta[i0:i0 + width]
                for c in range(nk):
                    p_row, ds_row = p_block[c], ds_block[c]
                    for r in range(width):
                        ds_row[r] = p_row[r] * (ds_row[r] - delta_block[r])   # dS^T
                tile_matmul_transposed_add(grad_k_block, ds_block, q_t[block])  # dK / ln 2
                tile_matmul_add(grad_q_t[block], k_block.T, ds_block)   # dQ^T += K^T dS^T
            for c in range(nk):
                for d in range(D):
                    grad_k[b, h, j0 + c, d] = grad_k_block[c, d] * ln_2
            grad_v[b, h, j0:j1] = grad_v_block
        for block in range(q_blocks):
            for r in range(min(width, Tq - block * width)):
                for d in range(D):
                    grad_q[b, h, block * width + r, d] = grad_q_t[block, d, r] * scale


# ----- the entry points that the autograd op calls --------------------------------------------
@functools.lru_cache(maxsize=None)
def _any_layout_type(dtype, ndim, readonly):
    """Numba's type of an array of ``dtype`` and ``ndim`` axes with any strides (layout "A");
    remembered, since building it costs more than some kernel calls."""
    return numba.types.Array(numba.from_dtype(dtype), ndim, "A", readonly=readonly)


# The compiled kernels by (kernel, what each argument's Numba type depends on).
_compiled_kernels = {}


def _compiled_for_any_layout(kernel, *args):
    """The compiled ``kernel`` for ``args``, compiled once for arrays of any layout.

    Numba compiles a kernel once per combination of argument types, and an array's type
    includes its layout: "C" (contiguous) or "A" (any strides). The heads of a GPT are strided
    views ("A"), except in a window of one token (sampling's first step), where they are
    contiguous ("C"), and called with both, Numba would compile the kernel twice (seconds
    each on a first run). Here it is compiled (or loaded from Numba's on-disk cache) for "A"
    arrays only, and that version runs every call: a contiguous array is an "A" array too.
    The entry point is remembered by the arrays' dtypes, axes and writability and the
    scalars' Python types: building Numba's types for the lookup took 85 us for the
    backward's 14 arguments (about 4% of a forward and backward at B = 12, H = 4, T = 64),
    this lookup 12 us.
    """
    key = (kernel,) + tuple((a.dtype, a.ndim, a.flags.writeable) if isinstance(a, np.ndarray)
                            else type(a) for a in args)
    compiled = _compiled_kernels.get(key)
    if compiled is None:
        signature = tuple(_any_layout_type(a.dtype, a.ndim, not a.flags.writeable)
                          if isinstance(a, np.ndarray) else numba.typeof(a) for a in args)
        if signature not in kernel.overloads:
            kernel.compile(signature)
        compiled = _compiled_kernels[key] = kernel.overloads[signature].entry_point
    return compiled


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
