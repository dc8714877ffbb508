"""What the CUDA kernels share: the block reduction, the grid of an elementwise kernel, the
dtype check, and ``recompiled`` (a kernel compiled with other tile sizes).

The kernels sit in the modules above this one (``cuda.softmax_cross_entropy``,
``cuda.layer_norm``, ...); this module imports none of them.

Two conventions hold in every kernel:

- **The dtype follows the data.** A kernel's shared and local arrays take the dtype of its
  input (``cuda.shared.array(THREADS, dtype=x.dtype)``) and its constants are made in it
  (``x.dtype.type(0.5)``), so a float32 call computes in float32 and a float64 call in float64.
  Numba compiles a kernel once per argument types, so the two versions come without any code
  for them.
- **Sizes are module constants.** A shared or local array needs its shape when the kernel is
  compiled, so each module's tile sizes are constants (``TILE = 64``) used directly in
  ``cuda.shared.array((DEPTH, TILE), ...)``. Where other sizes are needed (smaller tiles, which
  run much faster under the CUDA simulator; a head size the default tiles do not fit),
  ``recompiled`` compiles the same kernel with other values of those constants.
"""

import functools
import types

import numpy as np
from numba import cuda

from tinyllm.kernels import backend

THREADS = 128               # threads per block of the row and elementwise kernels, at most
ELEMENTWISE_BLOCKS = 1024   # most blocks an elementwise kernel launches (then grid-stride)


def check_float_dtype(dtype, kernel):
    """Raise unless ``dtype`` is float32 or float64 (and a GPU, or the simulator, is there)."""
    backend.require_cuda()
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError("%s (cuda): float32 or float64 arrays only, got %s" % (kernel, dtype))
    return dtype


def check_threads(threads, kernel):
    """Raise unless ``threads`` (per block) is a power of two up to ``THREADS``, the size of
    the shared array that ``block_reduce`` works in."""
    if threads < 1 or threads & (threads - 1) or threads > THREADS:
        raise ValueError("%s (cuda): threads per block must be a power of two up to %d, got %d"
                         % (kernel, THREADS, threads))


@cuda.jit(device=True)
def block_reduce(value, scratch, take_max):
    """The max (``take_max``) or the sum of ``value`` over the block's threads, returned to
    every thread: a tree in the shared array ``scratch`` (at least one number per thread).
    One number per thread, then half as many sums (or maxima) of pairs, ..., then one, in
    log2(threads) steps with a barrier (``cuda.syncthreads``) after each; the number of threads
    in the block must be a power of two."""
    t = cuda.threadIdx.x
    scratch[t] = value
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if t < stride:
            if take_max:
                scratch[t] = max(scratch[t], scratch[t + stride])
            else:
                scratch[t] += scratch[t + stride]
        cuda.syncthreads()
        stride //= 2
    result = scratch[0]
    cuda.syncthreads()          # everyone has read scratch[0] before it is written again
    return result


def elementwise_grid(size, threads):
    """Blocks for a grid-stride loop over ``size`` elements: enough, never too many."""
    return max(1, min(ELEMENTWISE_BLOCKS, (size + threads - 1) // threads))


@functools.lru_cache(maxsize=None)
def _recompiled(kernel, constants):
    function = kernel.py_func
    namespace = dict(function.__globals__, **dict(constants))
    return cuda.jit(types.FunctionType(function.__code__, namespace, function.__name__,
                                       function.__defaults__))


def recompiled(kernel, **constants):
    """``kernel`` (a ``@cuda.jit`` function) compiled with other values of the module constants
    it reads, e.g. ``recompiled(matmul_tiled, TILE=8, MICRO=2, DEPTH=4)``: the same Python code
    run in a copy of its module's namespace with those names bound to the new values (Numba
    reads a kernel's global constants when it compiles it; the module is left as it was).
    ``kernel`` itself when nothing changes; one compilation per set of values. The device
    functions a kernel calls keep their own module's values, so they take sizes from the
    shapes of the arrays they are given."""
    current = kernel.py_func.__globals__
    unknown = sorted(set(constants) - set(current))
    if unknown:
        raise ValueError("recompiled: %s has no module constants %s"
                         % (kernel.py_func.__name__, ", ".join(unknown)))
    changed = {name: value for name, value in constants.items() if current[name] != value}
    if not changed:
        return kernel
    return _recompiled(kernel, tuple(sorted(changed.items())))
