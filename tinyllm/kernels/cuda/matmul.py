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
"""

import functools

import numba
import numpy as np
from numba import cuda

from tinyllm.kernels import backend
from tinyllm.kernels.cuda.transfers import to_device, to_host
from tinyllm.kernels.batched import run_batched

TILE = 64
MICRO = 4
DEPTH = 8


@functools.lru_cache(maxsize=None)
def make_matmul_kernel(dtype, tile=TILE, micro=MICRO, depth=DEPTH):
    """Compile the tiled kernel for ``dtype`` (float32 or float64) and tile sizes (smaller
    tiles run faster under the CUDA simulator). Launch with blocks of (tile/micro)^2 threads
    on a grid (ceil(m / tile), ceil(n / tile), batch)."""
    element = numba.from_dtype(np.dtype(dtype))
    threads = tile // micro                     # threads per side of the block
    count = threads * threads

    @cuda.jit
    def matmul_tiled(a, b, c):
        n, k = a.shape[1], a.shape[2]
        m = b.shape[2]
        bi = cuda.blockIdx.z
        row0 = cuda.blockIdx.y * tile
        col0 = cuda.blockIdx.x * tile
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        t = ty * threads + tx
        a_tile = cuda.shared.array((depth, tile), element)     # A block, transposed
        b_tile = cuda.shared.array((depth, tile), element)
        acc = cuda.local.array((micro, micro), element)
        a_reg = cuda.local.array(micro, element)
        b_reg = cuda.local.array(micro, element)
        for i in range(micro):
            for j in range(micro):
                acc[i, j] = 0
        for k0 in range(0, k, depth):
            for idx in range(t, tile * depth, count):       # A: neighbours read neighbours
                r, p = idx // depth, idx % depth
                inside = row0 + r < n and k0 + p < k
                a_tile[p, r] = a[bi, row0 + r, k0 + p] if inside else 0
            for idx in range(t, tile * depth, count):       # B: neighbours read neighbours
                p, col = idx // tile, idx % tile
                inside = k0 + p < k and col0 + col < m
                b_tile[p, col] = b[bi, k0 + p, col0 + col] if inside else 0
            cuda.syncthreads()
            for p in range(depth):
                for i in range(micro):
                    a_reg[i] = a_tile[p, ty + i * threads]
                for j in range(micro):
                    b_reg[j] = b_tile[p, tx + j * threads]
                for i in range(micro):
                    for j in range(micro):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(micro):
            row = row0 + ty + i * threads
            for j in range(micro):
                col = col0 + tx + j * threads
                if row < n and col < m:
                    c[bi, row, col] = acc[i, j]

    return matmul_tiled


def matmul_cuda_device(d_a, d_b, d_c, tile=TILE, micro=MICRO, depth=DEPTH):
    """Launch the kernel on arrays already on the GPU (no transfers: what a benchmark times)."""
    batch, n, _ = d_a.shape
    m = d_b.shape[2]
    kernel = make_matmul_kernel(np.dtype(d_a.dtype), tile, micro, depth)
    grid = ((m + tile - 1) // tile, (n + tile - 1) // tile, batch)
    kernel[grid, (tile // micro, tile // micro)](d_a, d_b, d_c)


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

