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
    if len(arrays) == 0:
        raise ValueError("ring_allreduce: no arrays (one per rank) were given")
    lengths = [np.shape(a) for a in arrays]
    if any(len(s) != 1 for s in lengths) or len(set(lengths)) != 1:
        raise ValueError("ring_allreduce: every rank needs a 1-D array of the same length, got "
                         "shapes %s" % lengths)
    N = len(arrays)
    chunks = [np.array_split(np.array(a, dtype=np.float64), N) for a in arrays]
    sent = np.zeros(N, dtype=np.int64)
    for s in range(N - 1):
        messages = [(r, (r - s) % N, chunks[r][(r - s) % N].copy()) for r in range(N)]
        for r, c, data in messages:
            chunks[(r + 1) % N][c] += data
            sent[r] += data.nbytes
    for s in range(N - 1):
        messages = [(r, (r + 1 - s) % N, chunks[r][(r + 1 - s) % N].copy()) for r in range(N)]
        for r, c, data in messages:
            chunks[(r + 1) % N][c] = data
            sent[r] += data.nbytes
    return [np.concatenate(c) for c in chunks], sent


def ring_allreduce_time(N, n_bytes, alpha, beta):
    """Seconds of a ring all-reduce of n_bytes over N ranks: 2 (N-1) alpha + 2 (N-1)/N
    n_bytes beta (alpha: seconds per message, beta: seconds per byte); 0.0 for N = 1."""
    return 2 * (N - 1) * alpha + 2 * (N - 1) / N * n_bytes * beta


def flatten_buckets(grads, bucket_size):
    """Pack the arrays ``grads`` (in order) into flat float64 buckets of at most
    ``bucket_size`` numbers; an array larger than that gets a bucket of its own.

    Returns a list of (flat, members): flat the 1-D concatenation of the bucket's arrays
    (each raveled), members the list of (index in grads, shape) of those arrays, in order.
    Raises ValueError naming ``flatten_buckets`` if bucket_size < 1.
    """
    if bucket_size < 1:
        raise ValueError("flatten_buckets: bucket_size must be >= 1, got %r" % (bucket_size,))
    buckets, current, size = [], [], 0
    for i, g in enumerate(grads):
        g = np.asarray(g)
        if current and size + g.size > bucket_size:
            buckets.append(current)
            current, size = [], 0
        current.append((i, g))
        size += g.size
    if current:
        buckets.append(current)
    return [(np.concatenate([g.ravel() for _, g in b]).astype(np.float64),
             [(i, g.shape) for i, g in b]) for b in buckets]


def unflatten_buckets(buckets):
    """The arrays of ``flatten_buckets``'s output, back in their order and shapes."""
    arrays = {}
    for flat, members in buckets:
        start = 0
        for i, shape in members:
            size = int(np.prod(shape))
            arrays[i] = flat[start:start + size].reshape(shape)
            start += size
    return [arrays[i] for i in sorted(arrays)]


def adam_bytes_per_rank(P, N, zero):
    """Bytes per rank for P float32 parameters trained with Adam on N ranks: weights 4P,
    gradients 4P, moments m and v 8P; with ZeRO stage 1 (``zero=True``) the moments are
    sharded: 8P / N."""
    return 4 * P + 4 * P + (8 * P / N if zero else 8 * P)
