"""Checks of step distributed (chapter 19): the ring all-reduce simulated over a list of
"ranks", its alpha-beta cost, gradient buckets and ZeRO's memory arithmetic.

The sums are recorded from the reference solution and cross-checked against ``np.sum``; the
byte counts, times and memory figures are derived by hand in the checks.
"""

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="distributed", chapter=19, module="distributed",
    title="distributed: the ring all-reduce, its cost model, buckets, ZeRO's memory",
    teaches="How a ring all-reduce sums N gradients with every link equally busy (a "
            "reduce-scatter that adds travelling partial sums, then an all-gather that passes "
            "the complete chunks on), why each rank sends 2 (N-1)/N of the gradient whatever N, "
            "what the alpha-beta model predicts, why gradients travel in buckets, and what ZeRO "
            "stage 1 saves.",
    minutes=75,
    hints=(
        "ring_allreduce: np.array_split(x, N) gives the N chunks of one rank; keep a list of "
        "such lists, chunks[r][c], one per rank.",
        "Take all the messages of a step first (copies of the chunks), then deliver them: on a "
        "real ring every rank sends before it receives, and delivering at once would let a "
        "rank pass on a chunk it received in the same step.",
        "In the reduce-scatter the receiver adds (+=) the chunk; in the all-gather it replaces "
        "(=) it. After the reduce-scatter, rank r holds the complete chunk (r + 1) mod N.",
        "flatten_buckets: start a new bucket when adding the next array would pass "
        "bucket_size, unless the bucket is empty (then the big array gets a bucket alone). "
        "Remember each array's index and shape for unflatten_buckets.",
        "The formulas: sent[r] = 2 (N-1) chunks of n/N numbers of 8 bytes; T = 2 (N-1) alpha + "
        "2 (N-1)/N n_bytes beta; Adam bytes per rank 16 P, or 8 P + 8 P / N with ZeRO.",
    ))


def _ranks(N, n, seed):
    r = np.random.default_rng(seed)
    return [r.standard_normal(n) for _ in range(N)]


@STEP.check("ring_allreduce_leaves_the_sum_on_every_rank")
def sums(c):
    """For N = 1, 2, 3, 5 ranks every rank ends with the sum of all inputs."""
    ring_allreduce = c.get("ring_allreduce")
    for N, n in ((1, 4), (2, 6), (3, 7), (5, 12)):
        arrays = _ranks(N, n, N)
        results, _ = ring_allreduce([a.copy() for a in arrays])
        c.true(len(results) == N, "ring_allreduce should return one array per rank, got %d for "
               "N = %d" % (len(results), N))
        for r, result in enumerate(results):
            c.expect("rank %d of %d after the all-reduce" % (r, N), np.asarray(result),
                     reference=lambda arrays=arrays: np.sum(arrays, axis=0))


@STEP.check("ring_allreduce_leaves_the_inputs_alone")
def inputs_unchanged(c):
    """The callers' arrays are not modified."""
    ring_allreduce = c.get("ring_allreduce")
    arrays = _ranks(3, 6, 7)
    copies = [a.copy() for a in arrays]
    ring_allreduce(arrays)
    for r, (a, b) in enumerate(zip(arrays, copies)):
        c.known("rank %d's input after the call" % r, a, b)


@STEP.check("each_rank_sends_2_(N-1)/N_of_the_gradient")
def bytes_sent(c):
    """sent[r] = 2 (N - 1) n/N * 8 bytes, the same for every rank."""
    ring_allreduce = c.get("ring_allreduce")
    for N, n in ((2, 8), (4, 12), (6, 30)):
        _, sent = ring_allreduce(_ranks(N, n, 3))
        c.known("bytes sent by each of %d ranks for %d float64 numbers" % (N, n),
                np.asarray(sent, dtype=float), np.full(N, 2.0 * (N - 1) * (n // N) * 8))


@STEP.check("ring_allreduce_rejects_ranks_of_different_lengths")
def errors(c):
    """Arrays of different lengths, or no arrays, are a ValueError naming ring_allreduce."""
    ring_allreduce = c.get("ring_allreduce")
    c.raises("ring_allreduce of lengths 4 and 5",
             lambda: ring_allreduce([np.zeros(4), np.zeros(5)]), (ValueError,),
             contains=("ring_allreduce",))
    c.raises("ring_allreduce of no arrays", lambda: ring_allreduce([]), (ValueError,),
             contains=("ring_allreduce",))


@STEP.check("the_alpha_beta_model_of_the_ring")
def cost(c):
    """T = 2 (N-1) alpha + 2 (N-1)/N n beta, worked by hand for three cases."""
    t = c.get("ring_allreduce_time")
    c.known("T(1 rank)", t(1, 1e9, 5e-6, 1e-10), 0.0)
    c.known("T(2 ranks, 1 MB, alpha 5 us, beta 0.1 ns/B)", t(2, 1e6, 5e-6, 1e-10),
            2 * 5e-6 + 1e6 * 1e-10)
    c.known("T(512 ranks, 496 MB, alpha 5 us, 12.5 GB/s)", t(512, 496e6, 5e-6, 0.08e-9),
            2 * 511 * 5e-6 + 2 * 511 / 512 * 496e6 * 0.08e-9)


@STEP.check("buckets_hold_at_most_bucket_size_numbers_in_order")
def buckets(c):
    """Sizes 3, 4, 2, 9, 1 in buckets of 6: [3], [4, 2], [9], [1], flattened in order."""
    flatten = c.get("flatten_buckets")
    grads = [np.arange(n, dtype=float).reshape(shape) + 10 * i for i, (n, shape) in
             enumerate(((3, (3,)), (4, (2, 2)), (2, (2, 1)), (9, (3, 3)), (1, (1,))))]
    result = flatten(grads, 6)
    sizes = [[int(np.prod(shape)) for _, shape in members] for _, members in result]
    c.equal("the arrays' sizes in each bucket", sizes, [[3], [4, 2], [9], [1]])
    c.equal("the members of the second bucket", [(i, tuple(s)) for i, s in result[1][1]],
            [(1, (2, 2)), (2, (2, 1))])
    c.known("the second bucket's flat array", np.asarray(result[1][0]),
            np.concatenate([grads[1].ravel(), grads[2].ravel()]))
    c.raises("flatten_buckets with bucket_size 0", lambda: flatten(grads, 0), (ValueError,),
             contains=("flatten_buckets",))


@STEP.check("unflatten_buckets_gives_back_the_arrays")
def roundtrip(c):
    """unflatten(flatten(grads)) is grads: the same values, shapes and order."""
    flatten, unflatten = c.get("flatten_buckets"), c.get("unflatten_buckets")
    r = np.random.default_rng(5)
    grads = [r.standard_normal(shape) for shape in ((4, 3), (5,), (2, 2, 2), (7,), (1, 1))]
    back = unflatten(flatten(grads, 10))
    c.true(len(back) == len(grads), "unflatten_buckets should give back %d arrays, got %d"
           % (len(grads), len(back)))
    for i, (a, b) in enumerate(zip(back, grads)):
        c.known("array %d after flatten and unflatten" % i, np.asarray(a), b)


@STEP.check("zero_stage_1_shards_only_the_moments")
def zero_memory(c):
    """16 P bytes per rank without ZeRO; 8 P + 8 P / N with stage 1."""
    bytes_per_rank = c.get("adam_bytes_per_rank")
    c.known("124M parameters, 8 ranks, no ZeRO", bytes_per_rank(124e6, 8, False), 16 * 124e6)
    c.known("124M parameters, 8 ranks, ZeRO stage 1", bytes_per_rank(124e6, 8, True),
            8 * 124e6 + 124e6)
    c.known("1B parameters, 1 rank, ZeRO stage 1", bytes_per_rank(1e9, 1, True), 16e9)
