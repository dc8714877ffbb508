"""Step decoding (chapter 9): from a language model's next-token scores to text.

Everything here works on one vector of logits z (V,) (or log-probabilities), in NumPy:

    temperature:  z / tau                   tau < 1 sharpens, tau > 1 flattens
    top-k:        keep the k largest logits, the others become -inf
    top-p:        keep the smallest set of the most probable tokens whose mass reaches p
    sampling:     one draw from softmax(filtered z) by the inverse CDF
    greedy:       append the argmax, step after step
    beam search:  keep the beam_width best partial sequences by total log-probability

A model is given to greedy_decode and beam_search as a function ``next_logprobs(ids)`` that
takes the list of ids so far and returns the log-probabilities (V,) of the next token.
"""

import numpy as np


def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


# ----- reshaping the distribution --------------------------------------------------------------
def apply_temperature(logits, temperature):
    """z / tau for logits z (V,) and a temperature tau > 0 (a new float64 array).

    Raises ValueError naming ``temperature`` and its value if tau <= 0 (greedy decoding, the
    limit tau -> 0, is ``greedy_decode``).
    """
    if temperature <= 0:
        raise ValueError("apply_temperature: temperature must be > 0, got %r" % (temperature,))
    return np.asarray(logits, dtype=np.float64) / temperature


def top_k_filter(logits, k):
    """Logits (V,) with every logit below the k-th largest set to -inf (a new array).

    Logits equal to the k-th largest are all kept (ties), so more than k may survive; k >= V
    keeps everything. Raises ValueError naming ``k`` if k < 1.
    """
    if k < 1:
        raise ValueError("top_k_filter: k must be at least 1, got %r" % (k,))
    logits = np.asarray(logits, dtype=np.float64)
    k = min(int(k), logits.size)
    kth_largest = np.sort(logits)[::-1][k - 1]
    return np.where(logits >= kth_largest, logits, -np.inf)


def top_p_filter(logits, p):
    """Logits (V,) with every token outside the nucleus set to -inf (a new array).

    The nucleus: sort the probabilities softmax(z) in decreasing order; a token is kept when
    the mass of the tokens before it is still below p, so the most probable token is always
    kept and the kept mass is >= p. Tokens tied with the last one kept are kept too; p = 1
    keeps every token. Raises ValueError naming ``p`` unless 0 < p <= 1.
    """
    if not 0 < p <= 1:
        raise ValueError("top_p_filter: p must lie in (0, 1], got %r" % (p,))
    logits = np.asarray(logits, dtype=np.float64)
    if p >= 1.0:
        return logits.copy()             # the whole distribution, whatever the rounding
    probs = _softmax(logits)
    order = np.argsort(-probs, kind="stable")
    sorted_probs = probs[order]
    before = np.cumsum(sorted_probs) - sorted_probs       # mass of the more probable tokens
    smallest_kept = sorted_probs[before < p].min()        # the last token the nucleus needs
    return np.where(probs >= smallest_kept, logits, -np.inf)   # ties with it are kept too


# ----- choosing the next token -----------------------------------------------------------------
def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """One token id (an int) drawn from softmax of the filtered logits (V,).

    Temperature first, then top-k, then top-p, then probs = softmax, cdf = cumsum(probs).
    ``rng.random()`` is called exactly once, for u in [0, 1), and the token is the first
    index i with cdf[i] > u * cdf[-1] (cdf[-1] is 1 up to rounding). A token of probability
    0 is never drawn, not even for u = 0.
    """
    z = apply_temperature(logits, temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    cdf = np.cumsum(_softmax(z))
    u = rng.random()
    return int(np.argmax(cdf > u * cdf[-1]))


def greedy_decode(next_logprobs, prompt, steps):
    """Append the most probable next token ``steps`` times.

    ``next_logprobs(ids)`` -> log-probabilities (V,) of the token after the list ``ids``.
    Returns (ids, score): ids = the prompt followed by the ``steps`` chosen tokens (a list of
    ints), score = the sum of the chosen tokens' log-probabilities (a float). Ties go to the
    lower token id.
    """
    ids = [int(t) for t in prompt]
    score = 0.0
    for _ in range(steps):
        logprobs = np.asarray(next_logprobs(list(ids)), dtype=np.float64)
        best = int(np.argmax(logprobs))
        ids.append(best)
        score += float(logprobs[best])
    return ids, score


def beam_search(next_logprobs, prompt, beam_width, steps):
    """The best of the sequences found by a beam of ``beam_width`` hypotheses.

    Start from the prompt with score 0. At each of the ``steps`` steps extend every
    hypothesis by every token; a candidate's score is its hypothesis's score plus the token's
    log-probability (the total log-probability of the generated tokens). Keep the beam_width
    best candidates. Ties are broken in favour of the lexicographically smaller id sequence
    (so the lower token id wins). Returns (ids, score) of the best hypothesis after the last
    step, as greedy_decode does; beam_width = 1 is greedy decoding. Raises ValueError naming
    ``beam_width`` if it is below 1.
    """
    if beam_width < 1:
        raise ValueError("beam_search: beam_width must be at least 1, got %r" % (beam_width,))
    beam = [([int(t) for t in prompt], 0.0)]
    for _ in range(steps):
        candidates = []
        for ids, score in beam:
            logprobs = np.asarray(next_logprobs(list(ids)), dtype=np.float64)
            for token, logprob in enumerate(logprobs):
                candidates.append((ids + [token], score + float(logprob)))
        candidates.sort(key=lambda item: (-item[1], item[0]))
        beam = candidates[:beam_width]
    return beam[0]
