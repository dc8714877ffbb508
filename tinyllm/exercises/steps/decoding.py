"""Checks of step decoding (chapter 9): temperature, top-k, top-p, sampling, greedy, beam search.

The models decoded here are bigram tables written in the checks: ``next_logprobs(ids)`` looks
up the row of the last id. The chapter's toy model (A, B, C, where greedy decoding finds
AAA with probability 0.0648 and beam search BBB with 0.324) gives hand-derived answers.
"""

import itertools

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import SolutionError

STEP = Step(
    name="decoding", chapter=9, module="decoding",
    title="decoding: temperature, top-k, top-p, sampling, greedy and beam search",
    teaches="How temperature, top-k and nucleus filtering reshape the next-token distribution, "
            "how one uniform number picks a token by the inverse CDF, and why beam search, "
            "which ranks partial sequences by their total log-probability, can find likelier "
            "text than greedy decoding.",
    minutes=90,
    hints=(
        "Temperature divides the logits: softmax(z / tau). Top-k and top-p only set logits "
        "to -inf; they never renormalise (the softmax in sample_next does).",
        "top_k_filter: find the k-th largest value (sort in decreasing order, take index "
        "k - 1) and keep every logit >= it, so ties at the k-th value all survive.",
        "top_p_filter: sort the probabilities in decreasing order; 'before' = cumsum - the "
        "token's own probability is the mass of the better tokens. Keep a token while "
        "before < p: the token that crosses p is in the nucleus. Then keep every token whose "
        "probability is >= the smallest kept one (ties). Return early for p = 1.",
        "sample_next: cdf = np.cumsum(probs); the first index with cdf > u is "
        "int(np.argmax(cdf > u * cdf[-1])). Strictly greater: a token of probability 0 has "
        "the same cdf as the token before it and must never be drawn, even for u = 0.",
        "beam_search: candidates = [(ids + [v], score + logprobs[v]) for every hypothesis "
        "and every v]; sort them by (-score, ids) and keep the first beam_width. The score "
        "is the running total, never the last step's log-probability alone.",
    ))


# ----- toy models ------------------------------------------------------------------------------
# The chapter's model: tokens 0 = <start>, 1 = A, 2 = B, 3 = C; row r = P(next | last = r).
TOY_PROBS = np.array([[0.0, 0.5, 0.4, 0.1],
                      [0.0, 0.36, 0.30, 0.34],
                      [0.0, 0.05, 0.9, 0.05],
                      [0.0, 0.2, 0.3, 0.5]])


def _bigram(probs_or_logprobs, log=True):
    """next_logprobs(ids) of a bigram table (rows: the last id)."""
    with np.errstate(divide="ignore"):
        table = np.log(probs_or_logprobs) if log else np.asarray(probs_or_logprobs)

    def next_logprobs(ids):
        return table[ids[-1]].copy()
    return next_logprobs


def _random_table(seed, V):
    z = np.random.default_rng(seed).standard_normal((V, V)) * 1.5
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _unpack(result, what):
    if not (isinstance(result, tuple) and len(result) == 2):
        raise SolutionError("%s must return the pair (ids, score), got %r" % (what, result))
    ids, score = result
    return [int(t) for t in ids], float(score)


class _FixedRandom:
    """A stand-in for a NumPy Generator whose random() returns the same u; counts the calls."""

    def __init__(self, u):
        self.u, self.calls = u, 0

    def random(self):
        self.calls += 1
        return self.u


def _kept(logits, kept):
    logits = np.asarray(logits, dtype=np.float64)
    expected = np.full_like(logits, -np.inf)
    expected[list(kept)] = logits[list(kept)]
    return expected


# ----- temperature -----------------------------------------------------------------------------
@STEP.check("temperature_divides_the_logits")
def temperature(c):
    """apply_temperature(z, tau) = z / tau; tau <= 0 is a ValueError naming temperature."""
    apply_temperature = c.get("apply_temperature")
    z = np.array([2.0, -1.0, 0.5, 0.0])
    c.known("z / 0.5", apply_temperature(z, 0.5), np.array([4.0, -2.0, 1.0, 0.0]))
    c.known("z / 4", apply_temperature(z, 4.0), np.array([0.5, -0.25, 0.125, 0.0]))
    c.known("z / 1", apply_temperature(z, 1.0), z)
    for tau in (0.0, -1.0):
        c.raises("apply_temperature(z, %g)" % tau, lambda tau=tau: apply_temperature(z, tau),
                 (ValueError,), contains=("temperature",))


# ----- top-k -----------------------------------------------------------------------------------
@STEP.check("top_k_keeps_the_k_largest")
def top_k(c):
    """Top-k keeps the k largest logits unchanged, sets the rest to -inf; k >= V keeps all."""
    top_k_filter = c.get("top_k_filter")
    z = np.array([0.3, 2.0, -1.0, 1.5, 0.9])
    original = z.copy()
    for k, kept in ((1, [1]), (2, [1, 3]), (3, [1, 3, 4]), (5, range(5)), (9, range(5))):
        c.known("top_k_filter(%s, k=%d)" % (z.tolist(), k), top_k_filter(z, k), _kept(z, kept),
                atol=0.0, rtol=0.0)
    c.true(np.array_equal(z, original), "top_k_filter changed its input; return a new array")
    c.raises("top_k_filter(z, 0)", lambda: top_k_filter(z, 0), (ValueError,), contains=("k",))


@STEP.check("top_k_keeps_ties_at_the_kth_value")
def top_k_ties(c):
    """Every logit equal to the k-th largest survives, so ties can keep more than k."""
    top_k_filter = c.get("top_k_filter")
    z = np.array([1.0, 3.0, 1.0, 0.0, 1.0])
    c.known("top_k_filter(%s, k=2)" % z.tolist(), top_k_filter(z, 2), _kept(z, [0, 1, 2, 4]),
            atol=0.0, rtol=0.0)
    c.known("top_k_filter(%s, k=4)" % z.tolist(), top_k_filter(z, 4), _kept(z, [0, 1, 2, 4]),
            atol=0.0, rtol=0.0)


# ----- top-p -----------------------------------------------------------------------------------
PROBS = np.array([0.15, 0.5, 0.05, 0.3])      # sorted: 0.5 (1), 0.3 (3), 0.15 (0), 0.05 (2)


@STEP.check("top_p_keeps_the_smallest_nucleus")
def top_p_nucleus(c):
    """The nucleus of probs (0.15, 0.5, 0.05, 0.3) for p = 0.4, 0.7, 0.9, 0.97, by hand; and
    on random logits the same tokens as tinyllm.models.sampling.top_p_filter."""
    top_p_filter = c.get("top_p_filter")
    z = np.log(PROBS) + 1.5
    for p, kept in ((0.4, [1]), (0.7, [1, 3]), (0.9, [1, 3, 0]), (0.97, [0, 1, 2, 3])):
        c.known("top_p_filter(log %s, p=%g)" % (PROBS.tolist(), p), top_p_filter(z, p),
                _kept(z, kept), atol=0.0, rtol=0.0)
    logits = np.random.default_rng(1).standard_normal(12) * 1.5
    for p in (0.2, 0.5, 0.8, 0.95):
        c.expect("top_p_filter(random logits, p=%g)" % p, top_p_filter(logits, p),
                 reference=lambda p=p: _kept(logits, _tinyllm_nucleus(logits, p)),
                 atol=0.0, rtol=0.0)


def _tinyllm_nucleus(logits, p):
    from tinyllm.models import sampling
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return np.flatnonzero(sampling.top_p_filter(probs[None, :], p)[0] > 0)


@STEP.check("top_p_keeps_ties_with_the_last_token")
def top_p_ties(c):
    """A token as probable as the last one kept is kept too, whatever order a sort gives."""
    top_p_filter = c.get("top_p_filter")
    for z, p, kept in (([2.0, 1.0, 1.0, 0.0], 0.6, [0, 1, 2]),
                       ([1.0, 3.0, 3.0, 0.0], 1e-6, [1, 2]),
                       ([0.0, 1.0, 0.0, 1.0, 0.0], 0.3, [1, 3])):
        c.known("top_p_filter(%s, p=%g)" % (z, p), top_p_filter(np.array(z), p), _kept(z, kept),
                atol=0.0, rtol=0.0)


@STEP.check("top_p_one_keeps_every_token_and_tiny_p_the_argmax")
def top_p_edges(c):
    """p = 1 keeps all (even a token of probability 2e-22); p = 1e-9 keeps only the argmax;
    p outside (0, 1] is a ValueError naming p."""
    top_p_filter = c.get("top_p_filter")
    for z in ([0.0, -1.0, 2.0, 1.0], [0.0, -1.0, -50.0, 2.0]):
        c.known("top_p_filter(%s, p=1)" % z, top_p_filter(np.array(z), 1.0), np.array(z),
                atol=0.0, rtol=0.0)
    z = np.random.default_rng(0).standard_normal(10) * 2
    c.known("top_p_filter(random logits, p=1e-9)", top_p_filter(z, 1e-9),
            _kept(z, [int(np.argmax(z))]), atol=0.0, rtol=0.0)
    for p in (0.0, 1.5):
        c.raises("top_p_filter(z, %g)" % p, lambda p=p: top_p_filter(z, p), (ValueError,),
                 contains=("p",))


# ----- sampling --------------------------------------------------------------------------------
@STEP.check("sample_next_takes_the_first_index_whose_cdf_exceeds_u")
def sample_inverse_cdf(c):
    """With u fixed by hand: the first index i with cdf[i] > u, one rng.random() per call, and
    never a token of probability 0."""
    sample_next = c.get("sample_next")
    z = np.array([-np.inf, 0.0, -np.inf, 0.0])         # probs 0, 1/2, 0, 1/2
    for u, token in ((0.0, 1), (0.49, 1), (0.5, 3), (0.99, 3)):
        rng = _FixedRandom(u)
        got = sample_next(z, rng)
        c.equal("sample_next(%s) with u = %g" % (z.tolist(), u), int(got), token)
        c.true(rng.calls == 1, "sample_next called rng.random() %d times; it should draw one "
               "u per call" % rng.calls)
    uniform = np.zeros(4)                              # cdf 0.25, 0.5, 0.75, 1 exactly
    for u, token in ((0.0, 0), (0.25, 1), (0.74, 2), (0.75, 3)):
        c.equal("sample_next(zeros(4)) with u = %g" % u, int(sample_next(uniform,
                                                                      _FixedRandom(u))), token)


@STEP.check("sample_next_applies_temperature_then_top_k_then_top_p")
def sample_recorded(c):
    """200 draws with a seeded Generator, for three settings, equal the recorded draws."""
    sample_next = c.get("sample_next")
    logits = np.random.default_rng(5).standard_normal(8) * 2
    for seed, (tau, k, p) in enumerate(((1.0, None, None), (0.7, 5, 0.8), (1.5, None, 0.6),
                                        (0.5, 3, None))):
        rng = np.random.default_rng(100 + seed)
        draws = [int(sample_next(logits, rng, temperature=tau, top_k=k, top_p=p))
                 for _ in range(200)]
        c.expect("200 draws, temperature=%g, top_k=%s, top_p=%s" % (tau, k, p),
                 np.array(draws), reference=lambda seed=seed, tau=tau, k=k, p=p:
                 _tinyllm_draws(logits, 100 + seed, tau, k, p))


def _tinyllm_draws(logits, seed, tau, k, p):
    from tinyllm.models import sampling
    rng = np.random.default_rng(seed)
    return np.array([int(sampling.sample_next_token(logits[None, :], tau, k, p, generator=rng)[0])
                     for _ in range(200)])


# ----- greedy and beam search ------------------------------------------------------------------
@STEP.check("greedy_decode_appends_the_argmax")
def greedy(c):
    """On the toy model greedy decoding from <start> finds A A A, log-probability
    log(0.5 * 0.36 * 0.36) = log 0.0648; ties go to the lower id."""
    greedy_decode = c.get("greedy_decode")
    ids, score = _unpack(greedy_decode(_bigram(TOY_PROBS), [0], 3), "greedy_decode")
    c.equal("greedy ids on the toy model", ids, [0, 1, 1, 1])
    c.known("greedy score on the toy model", score, np.log(0.0648))
    ids, score = _unpack(greedy_decode(_bigram(TOY_PROBS), [0, 3], 2), "greedy_decode")
    c.equal("greedy ids after the prompt [<start>, C]", ids, [0, 3, 3, 3])
    c.known("greedy score after the prompt [<start>, C]", score, 2 * np.log(0.5))
    flat = np.full((3, 3), 1 / 3)
    ids, score = _unpack(greedy_decode(_bigram(flat), [2], 2), "greedy_decode")
    c.equal("greedy ids on a uniform model (ties)", ids, [2, 0, 0])


@STEP.check("beam_search_beats_greedy_on_the_toy_model")
def beam_toy(c):
    """Beam width 2 keeps B alive after step 1 and finds B B B, log(0.4 * 0.9 * 0.9) =
    log 0.324; width 1 is greedy."""
    beam_search = c.get("beam_search")
    ids, score = _unpack(beam_search(_bigram(TOY_PROBS), [0], 2, 3), "beam_search")
    c.equal("beam_width=2 ids on the toy model", ids, [0, 2, 2, 2])
    c.known("beam_width=2 score on the toy model", score, np.log(0.324))
    ids, score = _unpack(beam_search(_bigram(TOY_PROBS), [0], 1, 3), "beam_search")
    c.equal("beam_width=1 ids (greedy)", ids, [0, 1, 1, 1])
    c.known("beam_width=1 score (greedy)", score, np.log(0.0648))
    ids, score = _unpack(beam_search(_bigram(TOY_PROBS), [0], 2, 0), "beam_search")
    c.equal("steps=0 returns the prompt", ids, [0])
    c.known("steps=0 score", score, 0.0)
    c.raises("beam_search with beam_width=0", lambda: beam_search(_bigram(TOY_PROBS), [0], 0, 3),
             (ValueError,), contains=("beam_width",))


@STEP.check("beam_search_breaks_ties_by_lower_ids")
def beam_ties(c):
    """On a uniform model every sequence ties: the lexicographically smallest one wins."""
    beam_search = c.get("beam_search")
    flat = np.full((3, 3), 1 / 3)
    ids, score = _unpack(beam_search(_bigram(flat), [2], 2, 3), "beam_search")
    c.equal("beam_width=2 ids on a uniform model", ids, [2, 0, 0, 0])
    c.known("beam_width=2 score on a uniform model", score, 3 * np.log(1 / 3))
    probs = np.array([[0.2, 0.4, 0.4], [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    ids, score = _unpack(beam_search(_bigram(probs), [0], 3, 2), "beam_search")
    c.equal("beam_width=3 ids, (1, 0) and (2, 1) tied at 0.2", ids, [0, 1, 0])
    c.known("beam_width=3 score", score, np.log(0.2))


@STEP.check("beam_search_ranks_by_total_log_probability")
def beam_random(c):
    """On random bigram tables (V = 5) the result equals an independent beam search; a beam
    of V^(steps-1) hypotheses finds the best of all V^steps continuations."""
    beam_search = c.get("beam_search")
    for seed, width, steps in ((0, 2, 4), (1, 3, 5), (2, 25, 3)):
        table = _random_table(seed, 5)
        ids, score = _unpack(beam_search(_bigram(table, log=False), [seed], width, steps),
                             "beam_search")
        label = "table %d, beam_width=%d, steps=%d" % (seed, width, steps)
        c.expect(label + ": ids", np.array(ids),
                 reference=lambda t=table, s=seed, w=width, n=steps: _beam(t, s, w, n)[0])
        c.expect(label + ": score", score,
                 reference=lambda t=table, s=seed, w=width, n=steps: _beam(t, s, w, n)[1])
    table = _random_table(2, 5)
    best = max(itertools.product(range(5), repeat=3),
               key=lambda seq: _total(table, [2] + list(seq)))
    c.true(ids == [2] + list(best), "a beam of 25 should find the best continuation %s, got %s"
           % ([2] + list(best), ids))


def _total(table, ids):
    return sum(table[a, b] for a, b in zip(ids, ids[1:]))


def _beam(table, start, width, steps):
    """An independent beam search on arrays: scores (beam, V) ranked by np.lexsort."""
    beams, scores = np.array([[start]]), np.array([0.0])
    V = table.shape[0]
    for _ in range(steps):
        total = (scores[:, None] + table[beams[:, -1]]).ravel()          # (beam * V,)
        seqs = np.concatenate([np.repeat(beams, V, axis=0),
                               np.tile(np.arange(V), len(beams))[:, None]], axis=1)
        keys = [seqs[:, j] for j in reversed(range(seqs.shape[1]))] + [-total]
        order = np.lexsort(keys)[:width]
        beams, scores = seqs[order], total[order]
    return beams[0], scores[0]
