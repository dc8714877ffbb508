"""Measuring a model: loss, perplexity, bits per character / byte, and BLEU.

Language-model metrics
----------------------
The loss is the mean cross-entropy per predicted token, in nats:
L = -(1/N) sum_i ln p(x_i | x_<i). From it:

    perplexity       = exp(L)          the model is as unsure as a uniform choice among
                                       exp(L) tokens (a vocabulary-sized model starts near V)
    bits per token   = L / ln 2        the same number in bits
    bits per char    = N L / (ln 2 * number of characters of the predicted text)
    bits per byte    = N L / (ln 2 * number of UTF-8 bytes of the predicted text)

Bits per token depend on the tokenizer (a BPE token spans several characters), bits per
character and per byte do not: they compare models with different tokenizers on the same
text. For a character tokenizer bits per char = bits per token. (A compressor such as gzip
reaches about 2.5-3 bits per byte on English; a good character model well below 2.)

BLEU (Papineni et al., 2002)
----------------------------
Corpus BLEU-4 compares hypotheses with references through n-gram precisions, n = 1..4:

    p_n  = sum over sentences of the clipped n-gram matches / number of hypothesis n-grams
           (an n-gram counts at most as often as it occurs in the reference: "the the the"
           against "the cat" matches "the" once)
    BP   = 1 if c > r else exp(1 - r / c)     brevity penalty, c = hypothesis tokens in all,
                                              r = reference tokens in all (for several
                                              references per sentence, the length closest
                                              to the hypothesis's, the shorter on a tie)
    BLEU = 100 * BP * exp((1/4) sum_n ln p_n)

on a 0-100 scale, as sacrebleu reports it. With ``smooth="none"`` (Papineni's definition) a
p_n of 0 makes BLEU 0. ``smooth="exp"`` (sacrebleu's default) replaces the k-th zero
precision by 1 / (2^k * number of hypothesis n-grams), so one missing 4-gram does not zero the
score of a short corpus.
"""

import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from tinyllm.autograd import no_grad
from tinyllm.data import iterate_lm_batches
from tinyllm.nn.module import evaluating

LN2 = math.log(2.0)


def perplexity(loss):
    """exp(loss): the perplexity of a mean cross-entropy in nats."""
    return math.exp(loss)


def bits_per_token(loss):
    """loss / ln 2: a mean cross-entropy in nats, in bits."""
    return loss / LN2


def mean_loss(loss_fn, batches):
    """The mean loss per target over ``batches``, each weighted by its number of targets.

    loss_fn(batch) returns a batch's mean loss (a 0-d tensor); batches is a list of
    (batch, n_targets) pairs. Averaging the batch means, weighted, equals the mean over all
    targets even when the batches hold different numbers of them (a shorter last batch, or
    masked language modelling's varying count of masked tokens). Runs under ``no_grad``.
    """
    total, count = 0.0, 0
    with no_grad():
        for batch, n_targets in batches:
            total += float(loss_fn(batch).data) * n_targets
            count += n_targets
    if count == 0:
        raise ValueError("mean_loss: the batches hold no targets to score")
    return total / count


def evaluate_language_model(model, tokenizer, ids, batch_size, block_size, max_batches=None):
    """Loss, perplexity and bits per token / character / byte of a next-token model on
    ``ids`` (1-d token ids), read as consecutive windows of ``block_size`` tokens.

    The predicted text is ids[1 : 1 + K * block_size] for the K windows read (the first token
    of each window is read but not predicted, as in training). Returns a dict with ``loss``,
    ``perplexity``, ``bits_per_token``, ``bits_per_char``, ``bits_per_byte``, and the counts
    ``tokens``, ``chars``, ``bytes``.
    """
    batches = list(iterate_lm_batches(ids, batch_size, block_size, max_batches))
    with evaluating(model):
        loss = mean_loss(lambda batch: model(batch[0], batch[1])[1],
                         [(batch, batch[1].size) for batch in batches])
    targets = np.concatenate([y.ravel() for _, y in batches])
    return language_model_metrics(loss, tokenizer, targets)


def language_model_metrics(loss, tokenizer, target_ids):
    """The metrics of the module docstring for a mean loss over the tokens ``target_ids``."""
    n_tokens = len(target_ids)
    if hasattr(tokenizer, "decode_bytes"):           # byte-level BPE: exact byte counts
        data = tokenizer.decode_bytes(target_ids)
        text = data.decode("utf-8", errors="replace")
        n_bytes = len(data)
    else:
        text = tokenizer.decode(target_ids)
        n_bytes = len(text.encode("utf-8"))
    total_bits = loss * n_tokens / LN2
    return {"loss": loss, "perplexity": perplexity(loss), "bits_per_token": bits_per_token(loss),
            "bits_per_char": total_bits / len(text), "bits_per_byte": total_bits / n_bytes,
            "tokens": n_tokens, "chars": len(text), "bytes": n_bytes}


# ----- BLEU ---------------------------------------------------------------------------------
class BLEUScore(NamedTuple):
    """score: BLEU on 0-100; precisions: p_1..p_4 in percent; the rest as in the docstring."""
    score: float
    precisions: list
    brevity_penalty: float
    hyp_len: int
    ref_len: int

    def __str__(self):
        return "BLEU = %.2f %s (BP = %.3f, hyp_len = %d, ref_len = %d)" % (
            self.score, "/".join("%.1f" % p for p in self.precisions), self.brevity_penalty,
            self.hyp_len, self.ref_len)


def ngram_counts(tokens, n):
    """Counter of the n-grams (tuples) of a token list."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _tokens(sentence):
    return sentence.split() if isinstance(sentence, str) else list(sentence)


def _reference_list(hypothesis, refs):
    """The references of one hypothesis as a list: a single reference is wrapped."""
    if isinstance(hypothesis, str):
        return [refs] if isinstance(refs, str) else list(refs)
    # token lists: a single reference is a list of tokens, several are a list of lists
    return list(refs) if refs and isinstance(refs[0], (list, tuple)) else [refs]


def corpus_bleu(hypotheses, references, max_order=4, smooth="exp"):
    """Corpus BLEU (see the module docstring) of ``hypotheses`` against ``references``.

    hypotheses: a list of sentences, each a string (split on whitespace) or a list of tokens
    (e.g. ``list("12345")`` for character-level BLEU). references[i]: the reference of
    hypothesis i, in the same form, or a list of several references.

        corpus_bleu(["the cat sat"], ["the cat sat down"])                 # strings
        corpus_bleu([list("123")], [[list("123"), list("124")]])           # two references
    smooth: "exp" (sacrebleu's default) or "none" (Papineni's).
    """
    if smooth not in ("exp", "none"):
        raise ValueError("corpus_bleu: smooth must be 'exp' or 'none', got %r" % (smooth,))
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError("corpus_bleu: %d hypotheses but %d references"
                         % (len(hypotheses), len(references)))
    matches, totals = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for hypothesis, refs in zip(hypotheses, references):
        hyp = _tokens(hypothesis)
        refs = [_tokens(r) for r in _reference_list(hypothesis, refs)]
        hyp_len += len(hyp)
        # the reference length closest to the hypothesis's; the shorter one on a tie
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_order + 1):
            counts = ngram_counts(hyp, n)
            best = Counter()                          # max count of each n-gram over references
            for r in refs:
                best |= ngram_counts(r, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    precisions = _precisions(matches, totals, smooth)
    if hyp_len == 0:
        brevity_penalty = 0.0
    else:
        brevity_penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    if min(precisions) <= 0:
        score = 0.0
    else:
        score = brevity_penalty * math.exp(sum(math.log(p / 100) for p in precisions)
                                           / max_order) * 100
    return BLEUScore(score, precisions, brevity_penalty, hyp_len, ref_len)


def _precisions(matches, totals, smooth):
    """p_n in percent; zero matches stay 0 or are smoothed (see the module docstring)."""
    precisions, zeros = [], 0
    for match, total in zip(matches, totals):
        if total == 0:
            precisions.append(0.0)                    # no n-grams at all: BLEU is 0
        elif match > 0:
            precisions.append(100.0 * match / total)
        elif smooth == "exp":
            zeros += 1
            precisions.append(100.0 / (2 ** zeros * total))
        else:
            precisions.append(0.0)
    return precisions
