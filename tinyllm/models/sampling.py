"""Choosing the next token from a language model's logits: greedy, temperature, top-k, top-p.

A language model gives, for each sequence of a batch, one logit z_v per vocabulary entry v.
``sample_next_token`` turns them into one token id per sequence:

    temperature T:  p_v = softmax(z / T)_v.  T < 1 sharpens the distribution (towards the
                    argmax), T > 1 flattens it; T = 0 means greedy decoding (the argmax,
                    no randomness), the limit of T -> 0.
    top-k:          keep only the k largest logits (the others get probability 0).
    top-p (nucleus, Holtzman et al. 2019): sort the probabilities in decreasing order and keep
                    the smallest set of tokens whose total probability is >= p; renormalise.

The filters apply in that order (temperature, top-k, top-p), then one token is drawn from what
is left by inverse-CDF sampling: u ~ U(0, 1), token = the first v with cdf_v > u * cdf_last.
"""

import numpy as np

from tinyllm import random


def _softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def top_k_filter(logits, k):
    """Logits (B, V) with all but the k largest of each row set to -inf (ties at the k-th
    value are kept)."""
    k = min(int(k), logits.shape[-1])
    kth_largest = np.sort(logits, axis=-1)[:, -k][:, None]
    return np.where(logits < kth_largest, -np.inf, logits)


def top_p_filter(probs, p):
    """Probabilities (B, V) restricted to each row's nucleus: the smallest set of the most
    probable tokens whose probabilities sum to >= p, renormalised to sum to 1.

    In decreasing order of probability, a token is kept when the probability of the tokens
    before it is still below p; so the most probable token is always kept.
    """
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_probs, axis=-1) - sorted_probs      # mass of the better tokens
    keep_sorted = before < p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    kept = np.where(keep, probs, 0.0)
    return kept / np.sum(kept, axis=-1, keepdims=True)


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One token id per row of ``logits`` (B, V) (a NumPy array): returns int64 ids (B,).

    ``temperature=0`` is greedy decoding (argmax; top_k, top_p and the generator are then not
    used). Random numbers come from ``generator`` (a NumPy ``Generator``) or else from
    ``tinyllm.random.default_generator()``, so ``tinyllm.manual_seed`` makes sampling repeatable.
    """
    if temperature < 0:
        raise ValueError("sample_next_token: temperature must be >= 0 (0 = greedy), got %r"
                         % (temperature,))
    if top_k is not None and top_k < 1:
        raise ValueError("sample_next_token: top_k must be at least 1, got %r" % (top_k,))
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError("sample_next_token: top_p must lie in (0, 1], got %r" % (top_p,))
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    probs = _softmax(logits)
    if top_p is not None:
        probs = top_p_filter(probs, top_p)
    rng = random.default_generator() if generator is None else generator
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]
    return np.sum(cdf <= u, axis=-1).astype(np.int64)      # first index with cdf > u
