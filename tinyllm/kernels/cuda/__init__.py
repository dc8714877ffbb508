"""The GPU versions of the kernels (``numba.cuda``); see ``tinyllm.kernels.backend``.

Each module has the name of the CPU kernel module it mirrors and must equal the same NumPy
references. Imported only when the "cuda" backend picks one of them.
"""
