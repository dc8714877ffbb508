"""Reference solution of exercise bleu (chapter 12)."""

import math
from collections import Counter


def ngram_counts(tokens, n):
    """How often each n-gram (a tuple of n tokens) occurs in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses, references, max_n=4):
    """Corpus BLEU (Papineni et al., 2002): BP * exp((1/N) sum_n log p_n), see the stub."""
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_length += len(hyp)
        # the reference length closest to the hypothesis length (the shorter one on a tie)
        ref_length += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = ngram_counts(hyp, n)
            max_ref_counts = Counter()
            for r in refs:
                max_ref_counts |= ngram_counts(r, n)              # elementwise maximum
            matches[n - 1] += sum(min(k, max_ref_counts[g]) for g, k in counts.items())
            totals[n - 1] += sum(counts.values())
    if hyp_length == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_length > ref_length else math.exp(1.0 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)
