"""Fused attention on an NVIDIA GPU: ``numba.cuda`` kernels, forward and backward.

Same math, masks and conventions as ``tinyllm.kernels.attention`` (read its docstring first);
the kernels must equal ``attention_forward_reference`` and ``attention_backward_reference``.

Forward: one thread block per (head, block of ``BLOCK_Q`` queries), one thread per query row.
The block walks over the keys in tiles of ``BLOCK_K``: its threads copy K[j0:j0+BLOCK_K] and
V[j0:j0+BLOCK_K] into shared memory together (consecutive threads, consecutive addresses), then
each thread scores its query against the tile and updates its running max m, sum l and output
accumulator (a row of D numbers per thread, in registers) with the online softmax. Each key and
value is read from global memory once per block of queries, not once per query, and the
(Tq, Tk) scores never exist. Cost: 4 Tq Tk D FLOPs, (Tq / BLOCK_Q) (Tk D + Tk Dv) numbers read.

Sizes: the tiles and a thread's rows have module-constant sizes, ``BLOCK_Q`` and ``BLOCK_K``
rows of ``HEAD_DIM`` numbers: every loop over a head runs HEAD_DIM times, a number known when
the kernel is compiled, so the compiler can unroll it and keep a thread's rows (q_row, acc, ...)
in registers instead of slower local memory. The kernels below are compiled as written for
heads of 64 (GPT-2's) in float32; ``attention_kernels`` compiles them for another head size
(max(D, Dv), exactly) and tiles of up to 64 rows, fewer for long heads or float64, so that a
kernel's two shared tiles take at most 32 KiB (``block_size``): a GPU block may have 48 KiB of
static shared memory, and a kernel that asks for more does not launch. Heads shorter than
HEAD_DIM are padded with zeros as they are loaded (a zero adds nothing to a dot product). The
tiles and rows take the dtype of q, so float32 data is computed in float32.

Backward (FlashAttention-2, without atomics): two kernels.
- dK, dV: one thread per key j (blocks of BLOCK_K keys); the queries, dO, L and Delta stream
  through shared memory in tiles; thread j sums dV[j] += P[i, j] dO[i] and
  dK[j] += dS[i, j] Q[i] over all queries i.
- dQ: one thread per query i, with the keys and values in shared-memory tiles; thread i sums
  dQ[i] += dS[i, j] K[j].
Each thread writes only its own row, so no two threads add to the same number.
Delta = rowsum(dO * O) is computed on the host (Tq Dv multiply-adds per head).
"""

import math

import numpy as np
from numba import cuda

from tinyllm.kernels import backend
from tinyllm.kernels.cuda.common import recompiled
from tinyllm.kernels.cuda.transfers import to_device, to_host

BLOCK_Q = 64            # queries per block (and per tile)
BLOCK_K = 64            # keys per block (and per tile)
HEAD_DIM = 64           # numbers per row of a tile: the head size the kernels are compiled for
MAX_HEAD_DIM = 256      # the largest head size (D and Dv) that ``launch_sizes`` accepts
SHARED_BYTES = 32 * 1024    # shared memory a kernel's two tiles may take (a block may use 48 KiB)


def block_size(head_dim, itemsize, largest=BLOCK_Q):
    """Rows per tile: the largest power of two up to ``largest`` such that the two shared tiles
    of a kernel, (rows, head_dim) numbers each, fit in ``SHARED_BYTES``. float32 and a head of 64:
    64 rows (32 KiB); a head of 128: 32 rows; float64 halves them."""
    rows = largest
    while rows > 1 and 2 * rows * head_dim * itemsize > SHARED_BYTES:
        rows //= 2
    return rows


@cuda.jit(device=True)
def visible(i, j, is_causal, padding, has_padding, b):
    """Whether query i of batch entry b sees key j (the causal mask, the key-padding mask)."""
    if is_causal and j > i:
        return False
    return not (has_padding and padding[b, j])


@cuda.jit(device=True)
def load_tiles(a, b, bh, row0, a_tile, b_tile, first, step):
    """a_tile[r] = a[bh, row0 + r] and b_tile[r] = b[bh, row0 + r] for the tile's rows,
    zero-padded to the tile's width (and past the last row), thread ``first`` of ``step``
    taking elements first, first + step, ...: neighbouring threads, neighbouring addresses
    (coalesced). The caller synchronises before reading the tiles."""
    rows, width = a_tile.shape
    zero = a_tile.dtype.type(0)
    for idx in range(first, rows * width, step):
        r, d = idx // width, idx % width
        inside = row0 + r < a.shape[1]
        a_tile[r, d] = a[bh, row0 + r, d] if inside and d < a.shape[2] else zero
        b_tile[r, d] = b[bh, row0 + r, d] if inside and d < b.shape[2] else zero


@cuda.jit
def attention_forward_tiled(q, k, v, scale, is_causal, padding, has_padding, num_heads, out,
                            lse):
    """(out, lse) for the heads q (B H, Tq, D), k (B H, Tk, D), v (B H, Tk, Dv): block
    (x, bh) takes the queries x BLOCK_Q ... of head bh, one thread per query, over key tiles
    with the online softmax. Launch on a grid (ceil(Tq / BLOCK_Q), B H) of BLOCK_Q threads."""
    Tq, D = q.shape[1], q.shape[2]
    Tk, Dv = k.shape[1], v.shape[2]
    real = q.dtype.type
    bh = cuda.blockIdx.y
    b = bh // num_heads
    r = cuda.threadIdx.x
    i = cuda.blockIdx.x * BLOCK_Q + r
    k_tile = cuda.shared.array((BLOCK_K, HEAD_DIM), dtype=q.dtype)
    v_tile = cuda.shared.array((BLOCK_K, HEAD_DIM), dtype=q.dtype)
    q_row = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    acc = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    for d in range(HEAD_DIM):
        q_row[d] = q[bh, i, d] * scale if i < Tq and d < D else real(0)
        acc[d] = 0
    row_max = real(-math.inf)
    row_sum = real(0)
    last_key = min(Tk, (cuda.blockIdx.x + 1) * BLOCK_Q) if is_causal else Tk
    for j0 in range(0, last_key, BLOCK_K):
        load_tiles(k, v, bh, j0, k_tile, v_tile, r, BLOCK_Q)     # all threads together
        cuda.syncthreads()
        if i < Tq:
            for jj in range(min(BLOCK_K, Tk - j0)):
                if not visible(i, j0 + jj, is_causal, padding, has_padding, b):
                    continue
                s = real(0)
                for d in range(HEAD_DIM):
                    s += q_row[d] * k_tile[jj, d]
                if s > row_max:                             # new maximum: rescale
                    rescale = math.exp(row_max - s)
                    row_sum *= rescale
                    for d in range(HEAD_DIM):
                        acc[d] *= rescale
                    row_max = s
                p = math.exp(s - row_max)
                row_sum += p
                for d in range(HEAD_DIM):
                    acc[d] += p * v_tile[jj, d]
        cuda.syncthreads()
    if i < Tq:
        for d in range(Dv):
            out[bh, i, d] = acc[d] / row_sum if row_sum > 0 else real(0)
        lse[bh, i] = row_max + math.log(row_sum) if row_sum > 0 else real(-math.inf)


@cuda.jit
def attention_backward_kv(grad_out, q, k, v, lse, delta, scale, is_causal, padding,
                          has_padding, num_heads, grad_k, grad_v):
    """dK and dV: block (x, bh) takes the keys x BLOCK_K ... of head bh, one thread per key,
    over tiles of queries and dO. Launch on a grid (ceil(Tk / BLOCK_K), B H) of BLOCK_K
    threads."""
    Tq, D = q.shape[1], q.shape[2]
    Tk, Dv = k.shape[1], v.shape[2]
    real = q.dtype.type
    bh = cuda.blockIdx.y
    b = bh // num_heads
    c = cuda.threadIdx.x
    j = cuda.blockIdx.x * BLOCK_K + c
    q_tile = cuda.shared.array((BLOCK_Q, HEAD_DIM), dtype=q.dtype)
    g_tile = cuda.shared.array((BLOCK_Q, HEAD_DIM), dtype=q.dtype)
    k_row = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    v_row = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    dk = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    dv = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    for d in range(HEAD_DIM):
        k_row[d] = k[bh, j, d] if j < Tk and d < D else real(0)
        v_row[d] = v[bh, j, d] if j < Tk and d < Dv else real(0)
        dk[d] = 0
        dv[d] = 0
    first = cuda.blockIdx.x * BLOCK_K if is_causal else 0   # earlier queries see none
    for i0 in range(first - first % BLOCK_Q, Tq, BLOCK_Q):
        load_tiles(q, grad_out, bh, i0, q_tile, g_tile, c, BLOCK_K)
        cuda.syncthreads()
        if j < Tk:
            for ii in range(min(BLOCK_Q, Tq - i0)):
                i = i0 + ii
                if lse[bh, i] == -math.inf or not visible(i, j, is_causal, padding,
                                                          has_padding, b):
                    continue
                s = real(0)
                for d in range(HEAD_DIM):
                    s += q_tile[ii, d] * k_row[d]
                p = math.exp(s * scale - lse[bh, i])
                dp = real(0)
                for d in range(HEAD_DIM):
                    dv[d] += p * g_tile[ii, d]
                    dp += g_tile[ii, d] * v_row[d]
                ds = p * (dp - delta[bh, i])
                for d in range(HEAD_DIM):
                    dk[d] += ds * q_tile[ii, d]
        cuda.syncthreads()
    if j < Tk:
        for d in range(D):
            grad_k[bh, j, d] = dk[d] * scale
        for d in range(Dv):
            grad_v[bh, j, d] = dv[d]


@cuda.jit
def attention_backward_q(grad_out, q, k, v, lse, delta, scale, is_causal, padding,
                         has_padding, num_heads, grad_q):
    """dQ: block (x, bh) takes the queries x BLOCK_Q ... of head bh, one thread per query,
    over tiles of keys and values. Launch on a grid (ceil(Tq / BLOCK_Q), B H) of BLOCK_Q
    threads."""
    Tq, D = q.shape[1], q.shape[2]
    Tk, Dv = k.shape[1], v.shape[2]
    real = q.dtype.type
    bh = cuda.blockIdx.y
    b = bh // num_heads
    r = cuda.threadIdx.x
    i = cuda.blockIdx.x * BLOCK_Q + r
    k_tile = cuda.shared.array((BLOCK_K, HEAD_DIM), dtype=q.dtype)
    v_tile = cuda.shared.array((BLOCK_K, HEAD_DIM), dtype=q.dtype)
    q_row = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    g_row = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    dq = cuda.local.array(HEAD_DIM, dtype=q.dtype)
    for d in range(HEAD_DIM):
        q_row[d] = q[bh, i, d] if i < Tq and d < D else real(0)
        g_row[d] = grad_out[bh, i, d] if i < Tq and d < Dv else real(0)
        dq[d] = 0
    last_key = min(Tk, (cuda.blockIdx.x + 1) * BLOCK_Q) if is_causal else Tk
    for j0 in range(0, last_key, BLOCK_K):
        load_tiles(k, v, bh, j0, k_tile, v_tile, r, BLOCK_Q)
        cuda.syncthreads()
        if i < Tq and lse[bh, i] != -math.inf:
            for jj in range(min(BLOCK_K, Tk - j0)):
                if not visible(i, j0 + jj, is_causal, padding, has_padding, b):
                    continue
                s = real(0)
                for d in range(HEAD_DIM):
                    s += q_row[d] * k_tile[jj, d]
                p = math.exp(s * scale - lse[bh, i])
                dp = real(0)
                for d in range(HEAD_DIM):
                    dp += g_row[d] * v_tile[jj, d]
                ds = p * (dp - delta[bh, i])
                for d in range(HEAD_DIM):
                    dq[d] += ds * k_tile[jj, d]
        cuda.syncthreads()
    if i < Tq:
        for d in range(D):
            grad_q[bh, i, d] = dq[d] * scale


def attention_kernels(block_q=BLOCK_Q, block_k=BLOCK_K, head_dim=HEAD_DIM):
    """(forward, backward_kv, backward_q) compiled for tiles of ``block_q`` queries and
    ``block_k`` keys and heads of up to ``head_dim`` numbers (the kernels above as written
    for the module's constants; each other size compiled once)."""
    sizes = dict(BLOCK_Q=block_q, BLOCK_K=block_k, HEAD_DIM=head_dim)
    return tuple(recompiled(kernel, **sizes) for kernel in
                 (attention_forward_tiled, attention_backward_kv, attention_backward_q))


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
    forward, _, _ = attention_kernels(block_q, block_k, max_d)
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
    _, backward_kv, backward_q = attention_kernels(block_q, block_k, max_d)
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
