"""The shape rules of ``np.matmul`` for kernels that multiply 3-D stacks of matrices.

``run_batched(a, b, kernel_into)`` brings any ``a @ b`` (1-D vectors, broadcast batch axes, a
shared 2-D weight) to the form (batch, n, k) @ (batch, k, m) = (batch, n, m) and back. The
Numba matmul (``tinyllm.kernels.matmul``) and the CUDA one (``tinyllm.kernels.cuda.matmul``)
both go through it, so they agree with NumPy on every shape.
"""

import numpy as np


def run_batched(a, b, kernel_into):
    """Bring ``a @ b`` to the 3-D form (batch, n, k) @ (batch, k, m) of ``kernel_into``, run it
    and give the result NumPy's shape.

    A 2-D ``b`` (the weight of a linear layer) is shared by all batch entries of ``a``: the
    batch is folded into the rows of ``a``, one (batch * n, k) @ (k, m) product.
    """
    dtype = np.result_type(a, b)
    a = np.asarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    a_vector, b_vector = a.ndim == 1, b.ndim == 1
    if a_vector:
        a = a[np.newaxis, :]
    if b_vector:
        b = b[:, np.newaxis]
    n, k = a.shape[-2:]
    m = b.shape[-1]
    if b.ndim == 2:
        batch_shape = a.shape[:-2]
        rows = int(np.prod(a.shape[:-1], dtype=np.int64))
        a3 = np.ascontiguousarray(a).reshape(1, rows, k)
        b3 = np.ascontiguousarray(b).reshape(1, k, m)
    else:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        count = int(np.prod(batch_shape, dtype=np.int64))
        a3 = np.ascontiguousarray(np.broadcast_to(a, batch_shape + (n, k))).reshape(count, n, k)
        b3 = np.ascontiguousarray(np.broadcast_to(b, batch_shape + (k, m))).reshape(count, k, m)
    c = np.empty((a3.shape[0], a3.shape[1], m), dtype=dtype)
    kernel_into(a3, b3, c)
    c = c.reshape(batch_shape + (n, m))
    if a_vector:
        c = c[..., 0, :]
    if b_vector:
        c = c[..., 0]
    return c
