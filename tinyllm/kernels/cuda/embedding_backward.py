"""The embedding backward on an NVIDIA GPU (``numba.cuda``): a scatter-add of gradient rows.

Same math and the same NumPy reference as ``tinyllm.kernels.embedding_backward`` (read its
docstring first): for ids (N,) and dL/dy (N, D),

    dL/dW[v] = sum of dL/dy[i] over the rows i with ids[i] = v      (zero for unseen ids)

An elementwise kernel with a grid-stride loop (see ``cuda.gelu``) over the N D numbers of
dL/dy, each added into its row of dL/dW with ``cuda.atomic.add``.
"""

import numpy as np
from numba import cuda

from tinyllm.kernels.cuda.common import THREADS, check_float_dtype, check_threads, \
    elementwise_grid
from tinyllm.kernels.cuda.transfers import to_device, to_host


@cuda.jit
def embedding_add_rows(grad_weight, ids, grad):
    """grad_weight[ids[i], d] += grad[i, d], one (i, d) per thread (grid-stride). Two rows
    with the same id add to the same numbers: ``cuda.atomic.add`` makes each addition
    indivisible, so none is lost (the order of the additions is not fixed)."""
    D = grad.shape[1]
    for e in range(cuda.grid(1), grad.size, cuda.gridsize(1)):
        i, d = e // D, e % D
        cuda.atomic.add(grad_weight, (ids[i], d), grad[i, d])


def embedding_backward_cuda(ids, grad, num_embeddings, threads=THREADS):
    """Same as ``embedding_backward.embedding_backward_reference``: dL/dW (num_embeddings, D)
    for ids (N,) and grad (N, D), N D atomic additions, one per thread."""
    grad = np.ascontiguousarray(grad)
    check_float_dtype(grad.dtype, "embedding_backward")
    check_threads(threads, "embedding_backward")
    d_grad_weight = to_device(np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype))
    if grad.size:
        embedding_add_rows[elementwise_grid(grad.size, threads), threads](
            d_grad_weight, to_device(np.ascontiguousarray(ids, dtype=np.int64)),
            to_device(grad))
    return to_host(d_grad_weight)
