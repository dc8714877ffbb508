"""Compiled kernels (Numba) that the ops call where NumPy has no routine or is too slow.

Each kernel names the NumPy (or Python standard library) reference it must equal, and a test
holds them together.

- ``backend``: the switch (``set_backend``, ``use_backend``, ``get_backend``, the
  ``TINYLLM_BACKEND`` variable) that picks NumPy, Numba on the CPU, or CUDA for each call;
- ``matmul``: blocked, register-tiled matrix product on the CPU; ``cuda_matmul``: its
  shared-memory tiled GPU version;
- ``attention``: fused scaled-dot-product attention with the online softmax, forward and
  backward; ``cuda_attention``: its GPU version;
- ``fused``: softmax + cross-entropy, layer norm, GELU, the Adam/AdamW update and the
  embedding backward in one pass; ``cuda_fused``: their GPU versions;
- ``cuda_transfers``: the copies between host memory and the GPU that the CUDA versions make,
  counted (``count_transfers``);
- ``special``: elementwise functions NumPy lacks (``erf``), and float32 ``erf`` and ``exp``
  that the kernels' loops compile to SIMD code;
- ``cpu_runtime``: three process-wide settings, applied on import, that keep Numba's and
  OpenBLAS's idle threads from spinning and freed memory from going back to the operating
  system between training steps.

This package is the bottom layer of tinyllm: it imports NumPy and Numba only.
"""

from tinyllm.kernels import cpu_runtime  # noqa: F401  (applies its settings before any kernel)
