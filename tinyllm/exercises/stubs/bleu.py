"""Exercise bleu (chapter 12, Evaluation and deployment).

Write corpus-level BLEU with clipped n-gram counts and the brevity penalty. Check it with:

    python -m tinyllm.exercises check bleu this_file.py
"""

import math
from collections import Counter


def corpus_bleu(hypotheses, references, max_n=4):
    """BLEU of a corpus of hypotheses (Papineni et al., 2002). Returns a float in [0, 1].

    hypotheses: a list of token lists, e.g. [["the", "cat", "sat"], ...].
    references: a list with, for each hypothesis, a LIST of reference token lists (one or more
    correct translations), e.g. [[["the", "cat", "sat", "down"], ["a", "cat", "sat"]], ...].

    Modified (clipped) n-gram precision, summed over the whole corpus, n = 1 .. max_n:
        p_n = sum over hypotheses, over each n-gram g of the hypothesis (with its count):
                  min(count of g in the hypothesis, max over references of count of g)
              / the total number of n-grams in the hypotheses
    Brevity penalty, with c = total hypothesis length and r = the sum over hypotheses of the
    reference length closest to the hypothesis' length (the shorter one on a tie):
        BP = 1 if c > r, else exp(1 - r / c)
    BLEU = BP * exp((1 / max_n) sum_n log p_n), and 0 when any p_n is 0 (or c = 0).
    """
    raise NotImplementedError
