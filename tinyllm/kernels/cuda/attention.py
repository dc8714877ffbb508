"""Fused attention on an NVIDIA GPU: ``numba.cuda`` kernels, forward and backward.

Same math, masks and conventions as ``tinyllm.kernels.attention`` (read its docstring first);
the kernels must equal ``attention_forward_reference`` and ``attention_backward_reference``.

Forward: one thread block per (head, block of ``block_q`` queries), one thread per query row.
The block walks over the keys in tiles of ``block_k``: its threads copy K[j0:j0+block_k] and
V[j0:j0+block_k] into shared memory together (consecutive threads, consecutive addresses), then
each thread scores its query against the tile and updates its running max m, sum l and output
accumulator (a row of D numbers per thread, in registers) with the online softmax. Each key and
value is read from global memory once per block of queries, not once per query, and the
(Tq, Tk) scores never exist. Cost: 4 Tq Tk D FLOPs, (Tq / block_q) (Tk D + Tk Dv) numbers read.

Sizes: the kernels are compiled for the head size (``make_attention_kernels``), and the tiles
have up to 64 rows, fewer for long heads or float64, so that a kernel's two shared tiles take at
most 32 KiB (``block_size``): a GPU block may have 48 KiB of static shared memory, and a kernel
that asks for more does not launch.

Backward (FlashAttention-2, without atomics): two kernels.
- dK, dV: one thread per key j (blocks of BLOCK_K keys); the queries, dO, L and Delta stream
  through shared memory in tiles; thread j sums dV[j] += P[i, j] dO[i] and
  dK[j] += dS[i, j] Q[i] over all queries i.
- dQ: one thread per query i, with the keys and values in shared-memory tiles; thread i sums
  dQ[i] += dS[i, j] K[j].
Each thread writes only its own row, so no two threads add to the same number.
Delta = rowsum(dO * O) is computed on the host (Tq Dv multiply-adds per head).
"""

import functools
import math

import numba
import numpy as np
from numba import cuda

from tinyllm.kernels import backend
from tinyllm.kernels.cuda.transfers import to_device, to_host

BLOCK_Q = 64            # queries per block (and per tile), at most
BLOCK_K = 64            # keys per block (and per tile), at most
MAX_HEAD_DIM = 256      # the largest head size (D and Dv) the per-thread buffers are made for
SHARED_BYTES = 32 * 1024    # shared memory a kernel's two tiles may take (a block may use 48 KiB)


def block_size(head_dim, itemsize, largest=BLOCK_Q):
    """Rows per tile: the largest power of two up to ``largest`` such that the two shared tiles
    of a kernel, (rows, head_dim) numbers each, fit in ``SHARED_BYTES``. float32 and a head of 64:
    64 rows (32 KiB); a head of 128: 32 rows; float64 halves them."""
    rows = largest
    while rows > 1 and 2 * rows * head_dim * itemsize > SHARED_BYTES:
        rows //= 2
    return rows


@functools.lru_cache(maxsize=None)
def make_attention_kernels(dtype, block_q, block_k, max_d):
    """Compile the forward, dK/dV and dQ kernels for ``dtype``, tiles of ``block_q`` queries
    and ``block_k`` keys, and heads of up to ``max_d`` numbers. Returns (forward, backward_kv,
    backward_q).

    The kernels are compiled for one head size: every loop over a head runs ``max_d`` times,
    a number known when the kernel is compiled, so the compiler can unroll it and keep a
    thread's rows (q_row, acc, ...) in registers instead of slower local memory. Heads shorter
    than ``max_d`` are padded with zeros as they are loaded (a zero adds nothing to a dot
    product); the host functions compile for max(D, Dv) exactly.
    """
    element = numba.from_dtype(np.dtype(dtype))
    zero = element(0)

    @cuda.jit(device=True)
    def visible(i, j, is_causal, padding, has_padding, b):
        if is_causal and j > i:
            return False
        return not (has_padding and padding[b, j])

    @cuda.jit(device=True)
    def load_tiles(a, b, bh, row0, a_tile, b_tile, first, step):
        """a_tile[r] = a[bh, row0 + r] and b_tile[r] = b[bh, row0 + r] for the tile's rows,
        zero-padded to max_d numbers (and past the last row), thread ``first`` of ``step``
        taking elements first, first + step, ...: neighbouring threads, neighbouring addresses
        (coalesced). The caller synchronises before reading the tiles."""
        rows = a_tile.shape[0]
        for idx in range(first, rows * max_d, step):
            r, d = idx // max_d, idx % max_d
            inside = row0 + r < a.shape[1]
            a_tile[r, d] = a[bh, row0 + r, d] if inside and d < a.shape[2] else zero
            b_tile[r, d] = b[bh, row0 + r, d] if inside and d < b.shape[2] else zero

    @cuda.jit
    def forward(q, k, v, scale, is_causal, padding, has_padding, num_heads, out, lse):
        Tq, D = q.shape[1], q.shape[2]
        Tk, Dv = k.shape[1], v.shape[2]
        bh = cuda.blockIdx.y
        b = bh // num_heads
        r = cuda.threadIdx.x
        i = cuda.blockIdx.x * block_q + r
        k_tile = cuda.shared.array((block_k, max_d), element)
        v_tile = cuda.shared.array((block_k, max_d), element)
        q_row = cuda.local.array(max_d, element)
        acc = cuda.local.array(max_d, element)
        for d in range(max_d):
            q_row[d] = q[bh, i, d] * scale if i < Tq and d < D else zero
            acc[d] = 0
        row_max = element(-math.inf)
        row_sum = element(0)
        last_key = min(Tk, (cuda.blockIdx.x + 1) * block_q) if is_causal else Tk
        for j0 in range(0, last_key, block_k):
            load_tiles(k, v, bh, j0, k_tile, v_tile, r, block_q)     # all threads together
            cuda.syncthreads()
            if i < Tq:
                for jj in range(min(block_k, Tk - j0)):
                    if not visible(i, j0 + jj, is_causal, padding, has_padding, b):
                        continue
                    s = element(0)
                    for d in range(max_d):
                        s += q_row[d] * k_tile[jj, d]
                    if s > row_max:                             # new maximum: rescale
                        rescale = math.exp(row_max - s)
                        row_sum *= rescale
                        for d in range(max_d):
                            acc[d] *= rescale
                        row_max = s
                    p = math.exp(s - row_max)
                    row_sum += p
                    for d in range(max_d):
                        acc[d] += p * v_tile[jj, d]
            cuda.syncthreads()
        if i < Tq:
            for d in range(Dv):
                out[bh, i, d] = acc[d] / row_sum if row_sum > 0 else zero
            lse[bh, i] = row_max + math.log(row_sum) if row_sum > 0 else -math.inf

    @cuda.jit
    def backward_kv(grad_out, q, k, v, lse, delta, scale, is_causal, padding, has_padding,
                    num_heads, grad_k, grad_v):
        Tq, D = q.shape[1], q.shape[2]
        Tk, Dv = k.shape[1], v.shape[2]
        bh = cuda.blockIdx.y
        b = bh // num_heads
        c = cuda.threadIdx.x
        j = cuda.blockIdx.x * block_k + c
        q_tile = cuda.shared.array((block_q, max_d), element)
        g_tile = cuda.shared.array((block_q, max_d), element)
        k_row = cuda.local.array(max_d, element)
        v_row = cuda.local.array(max_d, element)
        dk = cuda.local.array(max_d, element)
        dv = cuda.local.array(max_d, element)
        for d in range(max_d):
            k_row[d] = k[bh, j, d] if j < Tk and d < D else zero
            v_row[d] = v[bh, j, d] if j < Tk and d < Dv else zero
            dk[d] = 0
            dv[d] = 0
        first = cuda.blockIdx.x * block_k if is_causal else 0   # earlier queries see none
        for i0 in range(first - first % block_q, Tq, block_q):
            load_tiles(q, grad_out, bh, i0, q_tile, g_tile, c, block_k)
            cuda.syncthreads()
            if j < Tk:
                for ii in range(min(block_q, Tq - i0)):
                    i = i0 + ii
                    if lse[bh, i] == -math.inf or not visible(i, j, is_causal, padding,
                                                              has_padding, b):
                        continue
                    s = element(0)
                    for d in range(max_d):
                        s += q_tile[ii, d] * k_row[d]
                    p = math.exp(s * scale - lse[bh, i])
                    dp = element(0)
                    for d in range(max_d):
                        dv[d] += p * g_tile[ii, d]
                        dp += g_tile[ii, d] * v_row[d]
                    ds = p * (dp - delta[bh, i])
                    for d in range(max_d):
                        dk[d] += ds * q_tile[ii, d]
            cuda.syncthreads()
        if j < Tk:
            for d in range(D):
                grad_k[bh, j, d] = dk[d] * scale
            for d in range(Dv):
                grad_v[bh, j, d] = dv[d]

    @cuda.jit
    def backward_q(grad_out, q, k, v, lse, delta, scale, is_causal, padding, has_padding,
                   num_heads, grad_q):
        Tq, D = q.shape[1], q.shape[2]
        Tk, Dv = k.shape[1], v.shape[2]
        bh = cuda.blockIdx.y
        b = bh // num_heads
        r = cuda.threadIdx.x
        i = cuda.blockIdx.x * block_q + r
        k_tile = cuda.shared.array((block_k, max_d), element)
        v_tile = cuda.shared.array((block_k, max_d), element)
        q_row = cuda.local.array(max_d, element)
        g_row = cuda.local.array(max_d, element)
        dq = cuda.local.array(max_d, element)
        for d in range(max_d):
            q_row[d] = q[bh, i, d] if i < Tq and d < D else zero
            g_row[d] = grad_out[bh, i, d] if i < Tq and d < Dv else zero
            dq[d] = 0
        last_key = min(Tk, (cuda.blockIdx.x + 1) * block_q) if is_causal else Tk
        for j0 in range(0, last_key, block_k):
            load_tiles(k, v, bh, j0, k_tile, v_tile, r, block_q)
            cuda.syncthreads()
            if i < Tq and lse[bh, i] != -math.inf:
                for jj in range(min(block_k, Tk - j0)):
                    if not visible(i, j0 + jj, is_causal, padding, has_padding, b):
                        continue
                    s = element(0)
                    for d in range(max_d):
                        s += q_row[d] * k_tile[jj, d]
                    p = math.exp(s * scale - lse[bh, i])
                    dp = element(0)
                    for d in range(max_d):
                        dp += g_row[d] * v_tile[jj, d]
                    ds = p * (dp - delta[bh, i])
                    for d in range(max_d):
                        dq[d] += ds * k_tile[jj, d]
            cuda.syncthreads()
        if i < Tq:
            for d in range(D):
                grad_q[bh, i, d] = dq[d] * scale

    return forward, backward_kv, backward_q


def launch_sizes(q, v, block_q=None, block_k=None, max_d=None):
    """(block_q, block_k, max_d) for heads q (..., D) and v (..., Dv): the kernels are compiled
    for max_d = max(D, Dv) and tiles that fit in shared memory (``block_size``), unless given."""
    head = max(q.shape[-1], v.shape[-1])
    if max_d is None:
        max_d = head
    if head > min(max_d, MAX_HEAD_DIM):
        raise ValueError("attention (cuda): head sizes up to %d are supported, got q of shape "
                         "%s and v of shape %s" % (min(max_d, MAX_HEAD_DIM), q.shape, v.shape))
    rows = block_size(max_d, q.dtype.itemsize)
    return block_q or rows, block_k or rows, max_d


def _prepare(q, k, v, key_padding_mask):
    backend.require_cuda()
    heads = [np.ascontiguousarray(x).reshape((-1,) + x.shape[2:]) for x in (q, k, v)]
    has_padding = key_padding_mask is not None
    padding = (np.ascontiguousarray(key_padding_mask, dtype=np.bool_) if has_padding
               else np.zeros((1, 1), dtype=np.bool_))
    return heads, to_device(padding), has_padding


def attention_forward_cuda(q, k, v, scale, is_causal=False, key_padding_mask=None,
                           block_q=None, block_k=None, max_d=None):
    """(O, L) for q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) host arrays. The block
    sizes and head size of the compiled kernel come from ``launch_sizes`` unless given."""
    block_q, block_k, max_d = launch_sizes(q, v, block_q, block_k, max_d)
    (q3, k3, v3), d_padding, has_padding = _prepare(q, k, v, key_padding_mask)
    B, H, Tq = q.shape[:3]
    forward, _, _ = make_attention_kernels(q.dtype, block_q, block_k, max_d)
    d_out = cuda.device_array((B * H, Tq, v.shape[-1]), dtype=q.dtype)
    d_lse = cuda.device_array((B * H, Tq), dtype=q.dtype)
    if B * H * Tq:
        grid = ((Tq + block_q - 1) // block_q, B * H)
        forward[grid, block_q](to_device(q3), to_device(k3), to_device(v3),
                               q.dtype.type(scale), bool(is_causal), d_padding, has_padding,
                               H, d_out, d_lse)
    return to_host(d_out).reshape(B, H, Tq, -1), to_host(d_lse).reshape(B, H, Tq)


def attention_backward_cuda(grad_out, q, k, v, out, lse, scale, is_causal=False,
                            key_padding_mask=None, block_q=None, block_k=None, max_d=None):
    """(dQ, dK, dV) for the host arrays of ``attention_forward_cuda``."""
    block_q, block_k, max_d = launch_sizes(q, v, block_q, block_k, max_d)
    (q3, k3, v3), d_padding, has_padding = _prepare(q, k, v, key_padding_mask)
    B, H, Tq = q.shape[:3]
    Tk = k.shape[2]
    _, backward_kv, backward_q = make_attention_kernels(q.dtype, block_q, block_k, max_d)
    grad_out = np.ascontiguousarray(grad_out, dtype=q.dtype)
    delta = np.sum(grad_out * out, axis=-1).reshape(B * H, Tq).astype(q.dtype)
    d_q, d_k, d_v = to_device(q3), to_device(k3), to_device(v3)
    d_g = to_device(grad_out.reshape(B * H, Tq, -1))
    d_lse = to_device(np.ascontiguousarray(lse, dtype=q.dtype).reshape(B * H, Tq))
    d_delta = to_device(delta)
    d_grad_q = cuda.device_array(q3.shape, dtype=q.dtype)
    d_grad_k = cuda.device_array(k3.shape, dtype=q.dtype)
    d_grad_v = cuda.device_array(v3.shape, dtype=q.dtype)
    scale = q.dtype.type(scale)
    if B * H * Tk:
        backward_kv[((Tk + block_k - 1) // block_k, B * H), block_k](
            d_g, d_q, d_k, d_v, d_lse, d_delta, scale, bool(is_causal), d_padding, has_padding,
            H, d_grad_k, d_grad_v)
    if B * H * Tq:
        backward_q[((Tq + block_q - 1) // block_q, B * H), block_q](
            d_g, d_q, d_k, d_v, d_lse, d_delta, scale, bool(is_causal), d_padding, has_padding,
            H, d_grad_q)
    return (to_host(d_grad_q).reshape(q.shape), to_host(d_grad_k).reshape(k.shape),
            to_host(d_grad_v).reshape(v.shape))
