"""Reference solution of exercise top_p_filter (chapter 9)."""

import numpy as np


def top_p_filter(logits, p):
    """Logits (V,) with every token outside the nucleus set to -inf (see the stub)."""
    logits = np.asarray(logits, dtype=np.float64)
    if p >= 1.0:
        return logits.copy()             # the whole distribution, whatever the rounding
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    sorted_probs = np.sort(probs)[::-1]
    before = np.cumsum(sorted_probs) - sorted_probs       # mass of the more probable tokens
    smallest_kept = sorted_probs[before < p].min()        # the last token the nucleus needs
    return np.where(probs >= smallest_kept, logits, -np.inf)   # ties with it are kept too
