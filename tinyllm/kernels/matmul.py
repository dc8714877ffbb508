"""Matrix product C = A @ B: the NumPy reference, a blocked Numba CPU kernel, and the dispatch.

    C[b, i, j] = sum_p A[b, i, p] * B[b, p, j]     A (batch, n, k), B (batch, k, m), C (batch, n, m)

Cost: 2 n k m FLOPs per batch entry; at least 4 (n k + k m + n m) bytes moved in float32.
A naive triple loop reads each of B's k m numbers n times from main memory, so it runs at
memory speed. Blocking makes each number fetched from memory serve many multiply-adds while it
sits in a cache:

1. Split C's columns into strips of ``NC`` and the sum over p into steps of ``KC``. The block
   B[p0:p0+KC, j0:j0+NC] is copied ("packed") into a small contiguous buffer that stays in the
   core's L1/L2 cache while every row of A's current row block uses it; the block of C being
   summed (MC x NC) lives in a contiguous buffer too, and is written to C once at the end.
2. For one row i, the update C[i, j0:j0+NC] += sum_p A[i, p] B[p, j0:j0+NC] is a sum of row
   vectors. The micro-kernel ``_update_four_rows`` does it for 4 rows of C and 4 terms p at
   once, with the 4 x 4 numbers of A in registers: each element of B loaded serves 4 rows,
   and each element of C is loaded and stored once per 4 multiply-adds (instead of once per
   multiply-add). The loop over j is contiguous, and the compiler turns it into SIMD fused
   multiply-adds (8 float32 per AVX2 register, 16 per AVX-512 register).
3. Rows of C are split in blocks of ``MC``; (batch entry, row block) pairs run in parallel on
   the cores (``prange``), each with its own packed buffer, so no two threads write the same
   element of C.

The reference the kernel must equal (to float rounding) is ``matmul_reference`` = ``np.matmul``.
"""

import numpy as np
from numba import njit, prange

from tinyllm.kernels import backend
from tinyllm.kernels.batched import run_batched

MC = 64      # rows of C per parallel task
KC = 64      # terms of the sum over p per packed block
NC = 256     # columns of C per strip (a KC x NC float32 block is 64 KiB)


def matmul_reference(a, b):
    """NumPy's ``a @ b`` (BLAS): the reference every matmul kernel must equal."""
    return np.matmul(a, b)


@njit(fastmath={"contract"}, inline="always")
def _update_four_rows(c0, c1, c2, c3, b0, b1, b2, b3, a, p):
    """The micro-kernel: four rows of C += a 4 x 4 block of A times four rows of packed B.

        c_r[j] += a[r, p] b0[j] + a[r, p+1] b1[j] + a[r, p+2] b2[j] + a[r, p+3] b3[j],  r = 0..3

    The 16 numbers of A sit in registers; each loaded element of B serves 4 rows, and each
    element of C is loaded and stored once for 4 multiply-adds. The loop over j compiles to
    SIMD fused multiply-adds.
    """
    a00, a01, a02, a03 = a[0, p], a[0, p + 1], a[0, p + 2], a[0, p + 3]
    a10, a11, a12, a13 = a[1, p], a[1, p + 1], a[1, p + 2], a[1, p + 3]
    a20, a21, a22, a23 = a[2, p], a[2, p + 1], a[2, p + 2], a[2, p + 3]
    a30, a31, a32, a33 = a[3, p], a[3, p + 1], a[3, p + 2], a[3, p + 3]
    for j in range(c0.size):
        x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
        c0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
        c1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
        c2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
        c3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3


@njit(fastmath={"contract"}, inline="always")
def _update_row(c_row, b_row, a_value):
    """c_row += a_value * b_row: the leftover rows and terms that do not fill a 4 x 4 block."""
    for j in range(c_row.size):
        c_row[j] += a_value * b_row[j]


@njit(cache=True, fastmath={"contract"})
def block_matmul_add(c, a, b):
    """c += a @ b for 2-D blocks c (n, m), a (n, k), b (k, m); c and b C-contiguous.

    The single-threaded core of every matrix product in tinyllm's Numba kernels (matmul, and
    the score and value products of fused attention): 4 rows x 4 terms at a time through
    ``_update_four_rows``, the 0-3 leftover rows and terms one at a time. Rows of c and b must
    be contiguous (Numba then knows their stride is one element and emits SIMD code); a may be
    any view, since only single numbers are read from it.
    """
    n, k = a.shape
    i = 0
    while i + 4 <= n:
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        a_block = a[i:i + 4]
        p = 0
        while p + 4 <= k:
            _update_four_rows(c0, c1, c2, c3, b[p], b[p + 1], b[p + 2], b[p + 3], a_block, p)
            p += 4
        for q in range(p, k):
            for r in range(4):
                _update_row(c[i + r], b[q], a_block[r, q])
        i += 4
    for r in range(i, n):
        for q in range(k):
            _update_row(c[r], b[q], a[r, q])


@njit(parallel=True, cache=True, fastmath={"contract"})
def matmul_numba_into(a, b, c):
    """C = A @ B for C-contiguous float arrays A (batch, n, k), B (batch, k, m), C (batch, n, m).

    Blocked as in the module docstring; writes every element of C. ``fastmath={"contract"}``
    allows only fused multiply-adds (one rounding instead of two), never reordering sums, so
    the result stays within float rounding of ``matmul_reference``.
    """
    batch, n, k = a.shape
    m = b.shape[2]
    row_blocks = (n + MC - 1) // MC
    for task in prange(batch * row_blocks):
        bi = task // row_blocks
        i0 = (task % row_blocks) * MC
        i1 = min(i0 + MC, n)
        for j0 in range(0, m, NC):
            j1 = min(j0 + NC, m)
            c_block = np.zeros((i1 - i0, j1 - j0), dtype=c.dtype)     # stays in cache
            for p0 in range(0, k, KC):
                p1 = min(p0 + KC, k)
                b_block = np.ascontiguousarray(b[bi, p0:p1, j0:j1])   # packed
                block_matmul_add(c_block, a[bi, i0:i1, p0:p1], b_block)
            c[bi, i0:i1, j0:j1] = c_block


def matmul_numba(a, b):
    """``np.matmul(a, b)`` computed by ``matmul_numba_into`` (float32/float64, any batch
    shape, NumPy's broadcasting and 1-D rules)."""
    return run_batched(a, b, matmul_numba_into)


def matmul(a, b):
    """``np.matmul(a, b)`` on the current backend (see ``tinyllm.kernels.backend``).

    Float32 and float64 products run the chosen kernel; other dtypes (integers) always use
    NumPy.
    """
    if np.result_type(a, b) not in (np.float32, np.float64):
        return matmul_reference(a, b)
    kernel = backend.pick("matmul", matmul_reference, matmul_numba, "matmul.matmul_cuda")
    return kernel(a, b)
