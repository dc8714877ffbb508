"""Exercise top_p_filter (chapter 9, Language models and decoding).

Write the nucleus (top-p) filter used before sampling the next token. Check it with:

    python -m tinyllm.exercises check top_p_filter this_file.py
"""

import numpy as np


def top_p_filter(logits, p):
    """Logits (V,) with every token outside the nucleus set to -inf (a new array).

    The nucleus is the smallest set of the most probable tokens whose probabilities
    (softmax(logits)) sum to at least p, for 0 < p <= 1:

        sort the probabilities in decreasing order; a token is in the nucleus when the total
        probability of the tokens before it is still below p (so the most probable token is
        always kept). A token whose probability EQUALS that of the last token kept is kept
        too, so that the result does not depend on how a sort orders ties.
        p = 1 keeps every token (beware: the sums, rounded, may never reach exactly 1).

    Kept tokens keep their logits unchanged (sampling renormalises later). Example: logits
    log([0.5, 0.3, 0.15, 0.05]) with p = 0.7 keep tokens 0 and 1 (0.5 < 0.7 <= 0.8).
    """
    raise NotImplementedError
