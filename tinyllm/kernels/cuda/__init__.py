"""The GPU versions of the kernels (``numba.cuda``); see ``tinyllm.kernels.backend``.

Each module has the name of the CPU kernel module it mirrors and must equal the same NumPy
references: ``matmul``, ``attention``, ``softmax_cross_entropy``, ``layer_norm``, ``gelu``,
``adam``, ``embedding_backward``. Their kernels are module-level ``@cuda.jit`` functions with
their tile sizes as module constants; ``common`` below them holds what they share, and
``transfers`` the counted copies between host and GPU. Imported only when the "cuda" backend
picks one of them.
"""
