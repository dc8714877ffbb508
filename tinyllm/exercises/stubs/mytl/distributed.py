"""Step distributed (chapter 19): the ring all-reduce, its cost, gradient buckets, ZeRO's memory.

N ranks each hold a gradient x_r of n numbers; an all-reduce leaves sum_r x_r on every rank.
The ring all-reduce cuts each gradient into N chunks (``np.array_split``) and runs

    reduce-scatter, steps s = 0 .. N-2:  rank r sends chunk (r - s) mod N to rank r + 1,
                                         which ADDS it to its own chunk
    all-gather,     steps s = 0 .. N-2:  rank r sends chunk (r + 1 - s) mod N to rank r + 1,
                                         which REPLACES its own chunk

All messages of a step are taken before any is delivered (every link works at once). Each rank
sends 2 (N - 1) chunks, 2 (N - 1)/N n numbers, and the alpha-beta model prices the whole as

    T(N, n_bytes) = 2 (N - 1) alpha + 2 (N - 1)/N n_bytes beta.

Here the "ranks" are a list of NumPy arrays in one process: no MPI needed.

You write: ``ring_allreduce``, ``ring_allreduce_time``, ``flatten_buckets``,
``unflatten_buckets`` and ``adam_bytes_per_rank``.
"""

import numpy as np


def ring_allreduce(arrays):
    """Sum a list of N 1-D arrays of equal length n the way a ring does.

    Returns (results, sent): results[r] is rank r's array afterwards (float64, the sum of all
    N inputs), sent[r] the number of bytes rank r sent (an int array of shape (N,)). Raises
    ValueError naming ``ring_allreduce`` for an empty list or arrays of different lengths.
    """
    raise NotImplementedError


def ring_allreduce_time(N, n_bytes, alpha, beta):
    """Seconds of a ring all-reduce of n_bytes over N ranks: 2 (N-1) alpha + 2 (N-1)/N
    n_bytes beta (alpha: seconds per message, beta: seconds per byte); 0.0 for N = 1."""
    raise NotImplementedError


def flatten_buckets(grads, bucket_size):
    """Pack the arrays ``grads`` (in order) into flat float64 buckets of at most
    ``bucket_size`` numbers; an array larger than that gets a bucket of its own.

    Returns a list of (flat, members): flat the 1-D concatenation of the bucket's arrays
    (each raveled), members the list of (index in grads, shape) of those arrays, in order.
    Raises ValueError naming ``flatten_buckets`` if bucket_size < 1.
    """
    raise NotImplementedError


def unflatten_buckets(buckets):
    """The arrays of ``flatten_buckets``'s output, back in their order and shapes."""
    raise NotImplementedError


def adam_bytes_per_rank(P, N, zero):
    """Bytes per rank for P float32 parameters trained with Adam on N ranks: weights 4P,
    gradients 4P, moments m and v 8P; with ZeRO stage 1 (``zero=True``) the moments are
    sharded: 8P / N."""
    raise NotImplementedError
