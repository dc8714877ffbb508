"""Matrix product on an NVIDIA GPU: a shared-memory tiled ``numba.cuda`` kernel.

    C[b] = A[b] @ B[b]      A (batch, n, k), B (batch, k, m), C (batch, n, m)

Cost: 2 n k m FLOPs per batch entry. The textbook kernel (one thread per element of C, reading
a row of A and a column of B from global memory) loads 2 k numbers per 2 k FLOPs and is bound
by memory bandwidth. This one:

- gives each thread block a ``TILE x TILE`` tile of C (64 x 64) and walks over k in steps of
  ``DEPTH``; at each step the block copies A[rows, k0:k0+DEPTH] and B[k0:k0+DEPTH, cols] into
  shared memory, each number loaded from global memory once for the whole block. Consecutive
  threads load consecutive addresses (coalesced loads: one memory transaction per warp);
- lets each of the (TILE/MICRO)^2 = 256 threads compute a MICRO x MICRO = 4 x 4 micro-tile of C
  in registers: per step of k it reads 4 numbers of A and 4 of B from shared memory and does
  16 multiply-adds, so shared-memory traffic is a quarter of the arithmetic;
- spreads a thread's micro-tile with a stride of TILE/MICRO (rows ty, ty + 16, ...; columns
  tx, tx + 16, ...). A warp of 32 threads is two rows of the 16 x 16 thread block: its threads
  read 16 consecutive columns of B in shared memory, each column by two threads (a broadcast,
  no bank conflict), and write runs of 16 consecutive elements of C (coalesced stores).

Global memory traffic: each element of A is read m / TILE times, each of B n / TILE times,
instead of m and n times. The kernel must equal ``tinyllm.kernels.matmul.matmul_reference``.
Edges: tiles that stick out of C (sizes not a multiple of TILE) load zeros and skip the writes.
The tiles and the accumulators take the dtype of A, so float32 data is multiplied and added in
float32 (Numba compiles the kernel once for float32 and once for float64 arrays).
"""

import functools

from numba import cuda

from tinyllm.kernels import backend
from tinyllm.kernels.batched import run_batched
from tinyllm.kernels.cuda.common import recompiled
from tinyllm.kernels.cuda.transfers import to_device, to_host

TILE = 64               # a block computes a TILE x TILE tile of C
MICRO = 4               # each thread a MICRO x MICRO micro-tile of it, in registers
DEPTH = 8               # the steps along k: DEPTH columns of A and rows of B at a time
THREADS = TILE // MICRO     # threads per side of the block: 16 x 16 = 256


@cuda.jit
def matmul_tiled(a, b, c):
    """c[bi] = a[bi] @ b[bi]. Launch on a grid (ceil(m / TILE), ceil(n / TILE), batch) of
    blocks of (THREADS, THREADS) threads; other tile sizes through ``matmul_kernel``."""
    n, k = a.shape[1], a.shape[2]
    m = b.shape[2]
    bi = cuda.blockIdx.z
    row0 = cuda.blockIdx.y * TILE
    col0 = cuda.blockIdx.x * TILE
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    t = ty * THREADS + tx
    a_tile = cuda.shared.array((DEPTH, TILE), dtype=a.dtype)        # A block, transposed
    b_tile = cuda.shared.array((DEPTH, TILE), dtype=a.dtype)
    acc = cuda.local.array((MICRO, MICRO), dtype=a.dtype)
    a_reg = cuda.local.array(MICRO, dtype=a.dtype)
    b_reg = cuda.local.array(MICRO, dtype=a.dtype)
    for i in range(MICRO):
        for j in range(MICRO):
            acc[i, j] = 0
    for k0 in range(0, k, DEPTH):
        for idx in range(t, TILE * DEPTH, THREADS * THREADS):   # neighbours read neighbours
            r, p = idx // DEPTH, idx % DEPTH
            inside = row0 + r < n and k0 + p < k
            a_tile[p, r] = a[bi, row0 + r, k0 + p] if inside else 0
        for idx in range(t, TILE * DEPTH, THREADS * THREADS):
            p, col = idx // TILE, idx % TILE
            inside = k0 + p < k and col0 + col < m
            b_tile[p, col] = b[bi, k0 + p, col0 + col] if inside else 0
        cuda.syncthreads()
        for p in range(DEPTH):
            for i in range(MICRO):
                a_reg[i] = a_tile[p, ty + i * THREADS]
            for j in range(MICRO):
                b_reg[j] = b_tile[p, tx + j * THREADS]
            for i in range(MICRO):
                for j in range(MICRO):
                    acc[i, j] += a_reg[i] * b_reg[j]
        cuda.syncthreads()
    for i in range(MICRO):
        row = row0 + ty + i * THREADS
        for j in range(MICRO):
            col = col0 + tx + j * THREADS
            if row < n and col < m:
                c[bi, row, col] = acc[i, j]


def matmul_kernel(tile=TILE, micro=MICRO, depth=DEPTH):
    """``matmul_tiled`` for other tile sizes (``micro`` must divide ``tile``): smaller tiles
    run much faster under the CUDA simulator, larger ones do more arithmetic per load."""
    if tile % micro:
        raise ValueError("matmul (cuda): micro (%d) must divide tile (%d)" % (micro, tile))
    return recompiled(matmul_tiled, TILE=tile, MICRO=micro, DEPTH=depth,
                      THREADS=tile // micro)


def matmul_cuda_device(d_a, d_b, d_c, tile=TILE, micro=MICRO, depth=DEPTH):
    """Launch the kernel on arrays already on the GPU (no transfers: what a benchmark times)."""
    batch, n, _ = d_a.shape
    m = d_b.shape[2]
    grid = ((m + tile - 1) // tile, (n + tile - 1) // tile, batch)
    matmul_kernel(tile, micro, depth)[grid, (tile // micro, tile // micro)](d_a, d_b, d_c)


def matmul_cuda_into(a, b, c, tile=TILE, micro=MICRO, depth=DEPTH):
    """C = A @ B for 3-D host arrays: copy A and B to the GPU, run, copy C back."""
    backend.require_cuda()
    d_a, d_b = to_device(a), to_device(b)
    d_c = cuda.device_array(c.shape, dtype=c.dtype)
    if c.size:
        matmul_cuda_device(d_a, d_b, d_c, tile, micro, depth)
    to_host(d_c, c)


def matmul_cuda(a, b, tile=TILE, micro=MICRO, depth=DEPTH):
    """``np.matmul(a, b)`` on the GPU (float32/float64, NumPy's batch and 1-D rules)."""
    return run_batched(a, b, functools.partial(matmul_cuda_into, tile=tile, micro=micro,
                                            depth=depth))
