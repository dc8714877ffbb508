"""The backward of an embedding lookup: a scatter-add of gradient rows into the table's rows.

``*_reference`` is the NumPy function the kernel must equal (to float rounding), ``*_numba`` the
compiled one, ``*_cuda`` (in ``tinyllm.kernels.cuda.embedding_backward``) the GPU one, and the
plain name dispatches on the current backend (``tinyllm.kernels.backend.pick``).
"""

import numpy as np
from numba import njit

from tinyllm.kernels import backend


def embedding_backward_reference(ids, grad, num_embeddings):
    """dL/dW of an embedding lookup y = W[ids], the NumPy way.

    ids (N,) integers in [0, V), grad (N, D) = dL/dy, V = num_embeddings. Row v of dL/dW is
    the sum of the rows of grad whose id is v (an id seen twice gets both gradients):

        dL/dW[v] = sum_{i : ids[i] = v} grad[i]          (0 for ids never seen)

    ``np.add.at`` adds one row at a time, so repeated ids accumulate (plain assignment
    ``out[ids] = grad`` would keep only the last). Cost: N D additions.
    """
    grad_weight = np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype)
    np.add.at(grad_weight, ids, grad)
    return grad_weight


@njit(cache=True)
def _add_rows(grad_weight, ids, grad):
    # Element by element: a row-at-a-time ``grad_weight[ids[i]] += grad[i]`` makes Numba also
    # compile its shape-mismatch error message, which tripled this kernel's compile time.
    for i in range(ids.shape[0]):
        row = ids[i]
        for j in range(grad.shape[1]):
            grad_weight[row, j] += grad[i, j]


def embedding_backward_numba(ids, grad, num_embeddings):
    """Same as ``embedding_backward_reference``: one compiled loop over the N rows, each added
    to row ids[i] (``np.add.at`` pays a general indexing machinery per row: ~20x slower at
    N = 768, D = 128). One thread: two rows with the same id must not be added at once."""
    grad_weight = np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype)
    _add_rows(grad_weight, np.ascontiguousarray(ids, dtype=np.int64),
              np.ascontiguousarray(grad))
    return grad_weight


def embedding_backward(ids, grad, num_embeddings):
    """dL/dW of y = W[ids] on the current backend; see the reference."""
    kernel = backend.pick("embedding", embedding_backward_reference, embedding_backward_numba,
                          "embedding_backward.embedding_backward_cuda")
    return kernel(ids, grad, num_embeddings)
