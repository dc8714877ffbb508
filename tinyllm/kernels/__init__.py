"""Compiled kernels (Numba) that the ops call where NumPy has no routine or is too slow.

Each kernel names the NumPy (or Python standard library) reference it must equal, and a test
holds them together.

One module per kernel, named for what it computes, each holding the NumPy ``*_reference``, the
compiled ``*_numba`` version and one dispatcher (``backend.pick``) under the plain name:

- ``matmul``: blocked, register-tiled matrix product on the CPU;
- ``attention``: fused scaled-dot-product attention with the online softmax, forward and
  backward, and ``use_fused_attention``, the choice between it and the composite of ops;
- ``softmax_cross_entropy``, ``layer_norm``, ``gelu``: one pass per row or element;
- ``adam``: the Adam/AdamW update in place, and ``one_pass_applies``, when the one-pass
  kernels can make a step;
- ``embedding_backward``: the scatter-add of gradient rows;
- ``cuda``: the GPU versions, one module of the same name per kernel above (``cuda.matmul``,
  ``cuda.attention``, ``cuda.gelu``, ...), ``cuda.common`` (the block reduction and the other
  helpers they share) and ``cuda.transfers`` (the copies between host memory and the GPU,
  counted).

Below them, the helpers they share:

- ``backend``: the switch (``set_backend``, ``use_backend``, the ``TINYLLM_BACKEND``
  variable) that picks NumPy, Numba on the CPU, or CUDA, and ``pick``, which every dispatcher
  calls;
- ``batched``: ``np.matmul``'s shape rules for the matmul kernels;
- ``special``: elementwise functions NumPy lacks (``erf``), and float32 ``erf`` and ``exp``
  that the kernels' loops compile to SIMD code;
- ``compilation``: when the Numba kernels compile, and saying so on a first run;
- ``cpu_runtime``: three process-wide settings, applied on import, that keep Numba's and
  OpenBLAS's idle threads from spinning and freed memory from going back to the operating
  system between training steps.

This package is the bottom layer of tinyllm: it imports NumPy and Numba only. Its
``README.md`` traces ``a @ b`` and attention from the Tensor down to the kernel that runs.
"""

from tinyllm.kernels import cpu_runtime  # noqa: F401  (applies its settings before any kernel)
