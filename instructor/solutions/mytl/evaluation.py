"""Step evaluation (chapter 12): perplexity, bits per character, corpus BLEU.

A language model that gives the N held-out tokens the log-probabilities log p(x_i | x_<i) has
the mean negative log-likelihood (the cross-entropy, in nats)

    L = -(1/N) sum_i log p(x_i | x_<i),     perplexity = e^L,     bits per token = L / ln 2.

Bits per character divide the same information, N L / ln 2 bits, by the number of characters
instead of the number of tokens, so that models with different tokenizers can be compared.

BLEU (Papineni et al., 2002) scores hypotheses against references by their shared n-grams:
clipped n-gram counts pooled over the corpus, their geometric mean, and a brevity penalty.
All of it is plain Python and NumPy: no Tensors, no gradients.
"""

import math
from collections import Counter

import numpy as np


def mean_nll(logprobs, targets):
    """The mean negative log-likelihood of the targets: -(1/N) sum_i logprobs[i, targets[i]].

    logprobs: (N, V) log-probabilities (each row a log_softmax); targets: (N,) integers in
    [0, V). Returns a float (nats). Raises ValueError naming ``mean_nll`` and both shapes if
    they do not fit, and naming the target and V if a target is outside [0, V).
    """
    logprobs, targets = np.asarray(logprobs, dtype=np.float64), np.asarray(targets)
    if logprobs.ndim != 2 or targets.shape != logprobs.shape[:1]:
        raise ValueError("mean_nll: logprobs of shape %s and targets of shape %s do not fit "
                         "(expected (N, V) and (N,))" % (logprobs.shape, targets.shape))
    V = logprobs.shape[1]
    outside = (targets < 0) | (targets >= V)
    if np.any(outside):
        raise ValueError("mean_nll: target %d is outside [0, %d)"
                         % (targets[outside][0], V))
    return float(-logprobs[np.arange(len(targets)), targets].mean())


def perplexity(mean_nll):
    """e^L for the mean negative log-likelihood L in nats: 1 for a certain, right model,
    V for a uniform one over V tokens."""
    return float(math.exp(mean_nll))


def bits_per_char(mean_nll, tokens_per_char=1.0):
    """Bits per character: L (nats per token) times tokens per character, over ln 2.

    For a character-level model tokens_per_char is 1 and this is bits per token, log2 of the
    perplexity. For a tokenizer that cuts N_chars characters into N tokens, pass
    N / N_chars.
    """
    return float(mean_nll * tokens_per_char / math.log(2))


def _ngram_counts(tokens, n):
    """How often each n-gram (a tuple of n tokens) occurs in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses, references, max_n=4):
    """BLEU of a corpus of hypotheses (Papineni et al., 2002): a float in [0, 1].

    hypotheses: a list of token lists, e.g. [["the", "cat", "sat"], ...].
    references: for each hypothesis, a LIST of reference token lists (one or more correct
    answers), e.g. [[["the", "cat", "sat", "down"], ["a", "cat", "sat"]], ...].

    Modified (clipped) n-gram precision, pooled over the corpus, for n = 1 .. max_n:
        p_n = sum over hypotheses h, over the distinct n-grams g of h:
                  min(count of g in h, max over the references r of h of count of g in r)
              / the total number of n-grams in the hypotheses
    Brevity penalty, with c = the total hypothesis length and r = the sum over hypotheses of
    the reference length closest to the hypothesis' length (the shorter one on a tie):
        BP = 1 if c > r, else exp(1 - r / c)
    BLEU = BP * exp((1 / max_n) sum_n log p_n), and 0 when any p_n is 0 (or c = 0).
    Raises ValueError naming ``corpus_bleu`` if the two lists differ in length.
    """
    if len(hypotheses) != len(references):
        raise ValueError("corpus_bleu: %d hypotheses but %d lists of references"
                         % (len(hypotheses), len(references)))
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_length += len(hyp)
        closest = min(refs, key=lambda r: (abs(len(r) - len(hyp)), len(r)))   # shorter on a tie
        ref_length += len(closest)
        for n in range(1, max_n + 1):
            counts = _ngram_counts(hyp, n)
            max_ref_counts = Counter()
            for r in refs:
                max_ref_counts |= _ngram_counts(r, n)          # elementwise maximum
            matches[n - 1] += sum(min(k, max_ref_counts[g]) for g, k in counts.items())
            totals[n - 1] += sum(counts.values())
    if hyp_length == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_length > ref_length else math.exp(1.0 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)
