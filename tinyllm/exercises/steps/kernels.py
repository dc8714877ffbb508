"""Checks of step kernels (chapter 11): fused attention with the online softmax, in Numba.

Every call passes C-contiguous float64 arrays of three axes and a Python bool, so Numba
compiles the student's kernel once per run of the checks (about half a second).
"""

import math
import statistics
import time

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="kernels", chapter=11, module="kernels",
    title="fused attention: the online softmax in a Numba kernel",
    teaches="How the online softmax (a running max, a running sum and a running output, "
            "rescaled whenever the max grows) computes softmax(q k^T / sqrt(d)) v one query "
            "row at a time without the T x T score matrix, compiled to machine code by Numba.",
    minutes=90,
    hints=(
        "attention_reference: scores = q @ k^T / sqrt(d) with np.matmul and np.swapaxes(k, -1, "
        "-2) (copied with np.ascontiguousarray: NumPy's batched matmul is slow on a transposed "
        "view); for causal, np.tril(np.ones((T, T), dtype=bool)) says which keys a query may "
        "see; put -inf elsewhere. Then a stable softmax along the last axis, then @ v.",
        "attention_forward: three loops, over n, over the query row i, and over the keys j "
        "(all of them, or j = 0 .. i when causal). A score is a loop over d. Keep one "
        "accumulator array of d numbers for the row, made once with np.empty(d).",
        "Start each row with m = -inf, l = 0 and acc = 0. exp(-inf) is 0.0 in Numba too, so "
        "the first key needs no special case.",
        "When a score s is larger than m, the l and acc you have summed are relative to the "
        "old max: multiply both by exp(m - s) before setting m = s. Then add w = exp(s - m) "
        "to l and w * v[n, j] to acc.",
        "The whole row: for each key j: s = (q[n, i] . k[n, j]) / sqrt(d); if s > m: "
        "r = exp(m - s), l *= r, acc *= r, m = s; w = exp(s - m); l += w; acc += w * v[n, j]. "
        "After the last key, out[n, i] = acc / l.",
    ))


def _inputs(seed, N, T, d, scale=1.0):
    r = np.random.default_rng(seed)
    return tuple(np.ascontiguousarray(r.standard_normal((N, T, d)) * scale) for _ in range(3))


def _tinyllm_reference(q, k, v, causal):
    """tinyllm's NumPy attention, (N, T, d) as (1, N, T, d): the independent computation."""
    from tinyllm.kernels.attention import attention_forward_reference
    out, _ = attention_forward_reference(q[None], k[None], v[None], 1 / math.sqrt(q.shape[-1]),
                                         is_causal=causal)
    return out[0]


def _is_compiled(function):
    """Whether ``function`` is a Numba dispatcher (what @njit returns), not a Python function."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:                                     # an older or newer Numba layout
        return hasattr(function, "py_func") and hasattr(function, "signatures")
    return isinstance(function, CPUDispatcher)


def _forward(c, q, k, v, causal):
    out = c.get("attention_forward")(q, k, v, bool(causal))
    c.shape("attention_forward's output", out, q.shape, dtype=np.float64)
    return out


# ----- the NumPy reference ----------------------------------------------------------------------
@STEP.check("attention_reference_is_softmax_of_scaled_scores_times_v")
def reference_values(c):
    """attention_reference equals softmax(q k^T / sqrt(d)) v, with and without the causal mask."""
    attention_reference = c.get("attention_reference")
    q, k, v = _inputs(0, 2, 7, 3)
    for causal in (False, True):
        c.expect("attention_reference(causal=%s)" % causal,
                 attention_reference(q, k, v, causal),
                 reference=lambda causal=causal: _tinyllm_reference(q, k, v, causal))
    # By hand, d = 4: query 0 = (2, 0, 0, 0), keys (0, 0, 0, 0) and (ln 3, 0, 0, 0) give the
    # scores 0 and 2 ln 3 / sqrt(4) = ln 3, so the weights 1/4 and 3/4; query 1 = 0 gives 1/2, 1/2.
    q1 = np.zeros((1, 2, 4))
    q1[0, 0, 0] = 2.0
    k1 = np.zeros((1, 2, 4))
    k1[0, 1, 0] = math.log(3.0)
    v1 = np.arange(8.0).reshape(1, 2, 4)
    c.known("attention_reference of two queries and two keys (weights 1/4, 3/4 and 1/2, 1/2)",
            attention_reference(q1, k1, v1, False),
            np.stack([0.25 * v1[:, 0] + 0.75 * v1[:, 1], 0.5 * v1[:, 0] + 0.5 * v1[:, 1]],
                     axis=1))


# ----- the kernel -------------------------------------------------------------------------------
@STEP.check("attention_forward_is_compiled_by_numba")
def compiled(c):
    """attention_forward is a Numba dispatcher (decorated with @njit) and runs compiled."""
    attention_forward = c.get("attention_forward")
    c.true(_is_compiled(attention_forward),
           "attention_forward is a %s, not a Numba dispatcher: decorate it with @njit (a "
           "Python loop over T * T * d numbers is about 100 times slower)"
           % type(attention_forward).__name__)
    q, k, v = _inputs(1, 1, 3, 2)
    _forward(c, q, k, v, False)
    c.true(len(attention_forward.signatures) >= 1,
           "attention_forward ran but Numba compiled no signature for it")
    c.note("a Numba %s with %d compiled signature(s), as expected"
           % (type(attention_forward).__name__, len(attention_forward.signatures)))


@STEP.check("attention_forward_matches_the_reference")
def forward_values(c):
    """The kernel equals softmax(q k^T / sqrt(d)) v, causal or not, for T = 37 and d = 1, 5."""
    for seed, (N, T, d) in enumerate([(2, 37, 5), (3, 11, 1), (1, 1, 4)]):
        q, k, v = _inputs(10 + seed, N, T, d)
        for causal in (False, True):
            c.expect("attention_forward(N=%d, T=%d, d=%d, causal=%s)" % (N, T, d, causal),
                     _forward(c, q, k, v, causal),
                     reference=lambda q=q, k=k, v=v, causal=causal:
                     _tinyllm_reference(q, k, v, causal))


@STEP.check("attention_forward_is_stable_for_large_scores")
def stable(c):
    """Scores of +-1000 (exp overflows or underflows) give finite, exact outputs."""
    q, k, v = _inputs(20, 2, 9, 4, scale=40.0)
    # Rows whose scores are all large and negative: q > 0, k < 0 everywhere.
    q_neg, k_neg = np.abs(q) + 20.0, -np.abs(k) - 20.0
    for label, (qq, kk) in (("scores of size ~1000 of both signs", (q, k)),
                            ("scores all below -800", (q_neg, k_neg))):
        for causal in (False, True):
            out = _forward(c, qq, kk, v, causal)
            c.true(np.all(np.isfinite(out)),
                   "attention_forward gave inf or NaN for %s (causal=%s): exponentiate s - m, "
                   "never s itself" % (label, causal))
            c.expect("attention_forward for %s (causal=%s)" % (label, causal), out,
                     reference=lambda qq=qq, kk=kk, causal=causal:
                     _tinyllm_reference(qq, kk, v, causal))


@STEP.check("causal_first_row_is_the_first_value")
def causal_first_row(c):
    """With the causal mask, query 0 sees key 0 only: its output is v[:, 0], for any scores."""
    q, k, v = _inputs(30, 3, 6, 4, scale=3.0)
    out = _forward(c, q, k, v, True)
    c.known("attention_forward(causal=True)[:, 0]", out[:, 0], v[:, 0])


@STEP.check("attention_forward_speed_against_numpy", time_limit=30)
def speed(c):
    """At N=8, T=256, d=32 the kernel matches the reference; its time beside NumPy's unfused
    composite is noted, a measurement and not a condition. (One key at a time, the kernel
    does scalar multiply-adds while NumPy's matmul runs BLAS: the blocked kernel of chapter
    11, section 5, is the one that beats NumPy.)"""
    attention_forward = c.get("attention_forward")
    c.true(_is_compiled(attention_forward),
           "attention_forward is not compiled by Numba (@njit): not timed")
    q, k, v = _inputs(40, 8, 256, 32)
    notes = []
    for causal in (False, True):
        out = _forward(c, q, k, v, causal)
        c.expect("attention_forward at N=8, T=256, d=32, causal=%s (every 16th row)" % causal,
                 out[:, ::16],
                 reference=lambda causal=causal: _tinyllm_reference(q, k, v, causal)[:, ::16])
        kernel = _median_time(lambda: attention_forward(q, k, v, causal))
        numpy = _median_time(lambda: _numpy_attention(q, k, v, causal))
        notes.append("%skernel %.1f ms, NumPy %.1f ms (kernel speed-up %.2fx)"
                     % ("causal: " if causal else "", kernel * 1e3, numpy * 1e3,
                        numpy / kernel))
    c.note("N=8, T=256, d=32: " + "; ".join(notes))


def _numpy_attention(q, k, v, causal):
    """The unfused composite, timed beside the kernel: scores, mask, softmax, @ v."""
    T, d = q.shape[1], q.shape[2]
    scores = np.matmul(q, np.ascontiguousarray(np.swapaxes(k, -1, -2))) / math.sqrt(d)
    if causal:
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.matmul(weights / weights.sum(axis=-1, keepdims=True), v)


def _median_time(function, runs=3):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
