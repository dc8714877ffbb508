"""Checking the batches of token ids that the models read.

Every model takes token ids as a (B, T) batch of integers: a tinyllm ``Tensor``, a NumPy array
or a nested list. ``token_ids`` turns them into an int64 array and raises an error naming the
model and the problem (wrong rank, not integers, too long, an id outside the vocabulary), so a
mistake is caught at the model's door rather than deep inside an embedding lookup.
"""

import numpy as np

from tinyllm.autograd import Tensor


def token_ids(model_name, ids, vocab_size, max_len=None, arg_name="idx",
              max_len_name="max_len"):
    """``ids`` as an int64 NumPy array of shape (B, T), checked.

    Raises ``ValueError`` for a rank other than 2 or T > ``max_len`` (called ``max_len_name``
    in the message, e.g. "block_size"), ``TypeError`` for
    non-integer data, and ``IndexError`` naming the first id outside [0, vocab_size).
    """
    data = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if data.ndim != 2:
        raise ValueError("%s: %s must be a (B, T) batch of token ids, got shape %s (for a single "
                         "sequence use ids[None, :])" % (model_name, arg_name, data.shape))
    if data.dtype.kind not in "iu":
        raise TypeError("%s: %s must hold integer token ids, got dtype %s"
                        % (model_name, arg_name, data.dtype))
    if max_len is not None and data.shape[1] > max_len:
        raise ValueError("%s: sequence length %d exceeds %s %d"
                         % (model_name, data.shape[1], max_len_name, max_len))
    bad = data[(data < 0) | (data >= vocab_size)]
    if bad.size:
        raise IndexError("%s: token id %d in %s is outside the vocabulary [0, %d)"
                         % (model_name, bad.flat[0], arg_name, vocab_size))
    return data.astype(np.int64, copy=False)
