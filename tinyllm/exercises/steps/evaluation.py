"""Checks of step evaluation (chapter 12): mean NLL, perplexity, bits per character, BLEU.

The BLEU checks use the worked examples of Papineni et al. (2002) and of chapter 12, whose
scores are derived by hand, and random corpora recorded from the reference solution and
cross-checked against ``tinyllm.training.evaluation.corpus_bleu`` (unsmoothed).
"""

import math

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="evaluation", chapter=12, module="evaluation",
    title="evaluation: perplexity, bits per character, corpus BLEU",
    teaches="How the mean negative log-likelihood becomes perplexity and bits per character "
            "(and why only the second compares tokenizers), and how corpus BLEU clips n-gram "
            "counts, pools them over the corpus and penalises short hypotheses.",
    minutes=60,
    hints=(
        "mean_nll: fancy indexing logprobs[np.arange(N), targets] picks one log-probability "
        "per row. perplexity and bits_per_char are one line each: math.exp, and a division "
        "by math.log(2) (the natural log of 2: bits = nats / ln 2).",
        "corpus_bleu: keep two lists over n = 1 .. max_n, the clipped matches and the total "
        "n-grams, and add every hypothesis' counts into them. Divide only at the end: the "
        "counts are pooled over the corpus, not averaged over sentences.",
        "Clipping: for each n-gram of the hypothesis, count it at most as often as the "
        "reference that has it most often. Counter's | operator takes the elementwise "
        "maximum of two Counters.",
        "Brevity penalty: for each hypothesis, take the reference whose length is closest to "
        "the hypothesis' (min over refs of the key (abs(len(r) - len(h)), len(r)) breaks ties "
        "towards the shorter), and add up those lengths into r.",
        "The whole score: p_n = matches[n] / totals[n]; if c == 0 or any matches[n] == 0, "
        "return 0.0; else BP = 1 if c > r else exp(1 - r / c) and BLEU = BP * "
        "exp(sum_n log(p_n) / max_n).",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


def _words(text):
    return text.lower().replace(".", "").split()


def _bleu(c, hypotheses, references, max_n=4):
    value = c.get("corpus_bleu")(hypotheses, references, max_n=max_n)
    c.true(isinstance(value, (float, np.floating)),
           "corpus_bleu should return a float, got %s" % type(value).__name__)
    return float(value)


# ----- mean NLL, perplexity, bits per character ------------------------------------------------
def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@STEP.check("mean_nll_is_the_mean_negative_logprob_of_the_targets")
def nll_values(c):
    """mean_nll = -(1/N) sum_i logprobs[i, targets[i]]; ln V for a uniform model."""
    mean_nll = c.get("mean_nll")
    r = _rng(0)
    logprobs = _log_softmax(r.standard_normal((7, 5)) * 2)
    targets = r.integers(0, 5, size=7)
    c.expect("mean_nll of random log-probabilities", mean_nll(logprobs, targets),
             reference=lambda: -np.mean([logprobs[i, t] for i, t in enumerate(targets)]))
    uniform = np.full((4, 96), -math.log(96))
    c.known("mean_nll of a uniform model over 96 tokens", mean_nll(uniform, np.arange(4)),
            math.log(96))


@STEP.check("mean_nll_rejects_targets_outside_the_vocabulary")
def nll_errors(c):
    """A target outside [0, V), or shapes that do not fit, is a ValueError saying which."""
    mean_nll = c.get("mean_nll")
    logprobs = np.full((3, 5), -math.log(5))
    c.raises("mean_nll with the target 5 for V = 5", lambda: mean_nll(logprobs, [0, 5, 1]),
             (ValueError,), contains=("5",))
    c.raises("mean_nll with the target -1", lambda: mean_nll(logprobs, [0, -1, 1]),
             (ValueError,), contains=("-1", "5"))
    c.raises("mean_nll of logprobs (3, 5) and targets (2,)", lambda: mean_nll(logprobs, [0, 1]),
             (ValueError,), contains=("mean_nll", "(3, 5)", "(2,)"))


@STEP.check("perplexity_is_e_to_the_mean_nll")
def perplexity_values(c):
    """perplexity(L) = e^L: V for a uniform model over V tokens, 1 for a certain one."""
    perplexity = c.get("perplexity")
    c.known("perplexity(ln 96)", perplexity(math.log(96)), 96.0)
    c.known("perplexity(0)", perplexity(0.0), 1.0)
    c.known("perplexity(2.5)", perplexity(2.5), 12.182493960703473)


@STEP.check("bits_per_char_is_the_nll_in_bits_per_character")
def bits_values(c):
    """bits_per_char(L, tokens_per_char) = L * tokens_per_char / ln 2 (log base 2)."""
    bits_per_char = c.get("bits_per_char")
    c.known("bits_per_char(ln 2)", bits_per_char(math.log(2)), 1.0)
    c.known("bits_per_char(ln 96): log2(96)", bits_per_char(math.log(96)), 6.584962500721156)
    # chapter 12's uniform BPE model: L = ln 512 per token, 3,101 tokens for 6,000 characters
    c.known("bits_per_char(ln 512, tokens_per_char=3101/6000)",
            bits_per_char(math.log(512), tokens_per_char=3101 / 6000), 9.0 * 3101 / 6000)


# ----- BLEU -------------------------------------------------------------------------------------
PAPINENI_REFERENCES = [
    _words("It is a guide to action that ensures that the military will forever heed Party "
           "commands."),
    _words("It is the guiding principle which guarantees the military forces always being under "
           "the command of the Party."),
    _words("It is the practical guide for the army always to heed the directions of the party.")]
PAPINENI_CANDIDATE = _words("It is a guide to action which ensures that the military always "
                            "obeys the commands of the party.")


@STEP.check("bleu_of_a_perfect_match_is_1")
def bleu_perfect(c):
    """A corpus identical to its references scores 1."""
    sentences = [_words("the cat sat on the mat"), _words("a dog ran in the park today")]
    c.known("BLEU of a corpus identical to its references",
            _bleu(c, sentences, [[s] for s in sentences]), 1.0)


@STEP.check("bleu_without_a_matching_4gram_is_0")
def bleu_no_4gram(c):
    """Unigrams to trigrams match but no 4-gram does: p_4 = 0, so BLEU = 0 (unsmoothed)."""
    hyp = _words("on the mat the cat sat")
    ref = _words("the cat sat on the mat")
    c.known("BLEU of 'on the mat the cat sat' against 'the cat sat on the mat'",
            _bleu(c, [hyp], [[ref]]), 0.0)


@STEP.check("bleu_clips_repeated_words")
def bleu_clipped(c):
    """Papineni's example: 'the' 7 times, at most twice in one reference: p_1 = 2/7."""
    hyp = ["the"] * 7
    refs = [_words("The cat is on the mat."), _words("There is a cat on the mat.")]
    c.known("BLEU-1 of 'the the the the the the the' (clipped p_1 = 2/7)",
            _bleu(c, [hyp], [refs], max_n=1), 2 / 7)


@STEP.check("bleu_of_papinenis_candidate_1")
def bleu_papineni(c):
    """Papineni et al.'s candidate 1 against its three references: p_1 = 17/18, p_2 = 10/17,
    c = 18 = the closest reference length, so BLEU-2 = sqrt(17/18 * 10/17)."""
    c.known("BLEU-2 of Papineni's candidate 1",
            _bleu(c, [PAPINENI_CANDIDATE], [PAPINENI_REFERENCES], max_n=2),
            math.sqrt(17 / 18 * 10 / 17))


@STEP.check("bleu_worked_example_of_chapter_12")
def bleu_worked_example(c):
    """'the the the cat sat on the mat' against 'the cat sat on the mat by the door':
    p = 7/8, 5/7, 4/6, 3/5, BP = e^(1 - 9/8), BLEU = e^(-1/8) / sqrt(2) = 0.62402."""
    hyp = _words("the the the cat sat on the mat")
    ref = _words("the cat sat on the mat by the door")
    c.known("BLEU of chapter 12's worked example", _bleu(c, [hyp], [[ref]]),
            math.exp(-1 / 8) / math.sqrt(2))


@STEP.check("bleu_brevity_penalty_uses_the_closest_reference")
def bleu_brevity(c):
    """A short hypothesis gets BP = e^(1 - r/c); r is the closest reference length, the
    shorter one on a tie."""
    ref = _words("one two three four five six seven eight nine ten")
    c.known("BLEU of the first 6 of 10 reference words (BP = exp(1 - 10/6))",
            _bleu(c, [ref[:6]], [[ref]]), math.exp(1 - 10 / 6))
    # references of 6 and 8 words, hypothesis of 7: a tie, r = 6, so c > r and BP = 1
    c.known("BLEU of 7 words against references of 6 and 8 words (r = 6, BP = 1)",
            _bleu(c, [ref[:7]], [[_words("a b c d e f"), ref[:8]]]), 1.0)
    # references of 4 and 10 words, hypothesis of 5 (the first 5 of the long one): r = 4
    c.known("BLEU of 5 words against references of 4 and 10 words (r = 4, BP = 1)",
            _bleu(c, [ref[:5]], [[_words("w x y z"), ref]]), 1.0)


@STEP.check("bleu_pools_counts_over_the_corpus")
def bleu_pooled(c):
    """Counts are summed over the corpus before dividing: p = 7/8, 4/6, 2/4, 1/2, although
    the second sentence alone (no matching trigram) would score 0."""
    hyps = [_words("a b c d"), _words("a b x d")]
    refs = [[_words("a b c d")], [_words("a b c d")]]
    c.known("corpus BLEU of two sentences (counts pooled)", _bleu(c, hyps, refs),
            (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25)


def _random_corpus(seed, sentences=6, vocabulary="abcd"):
    """Hypotheses with one or two references each: references drawn from a 4-word
    vocabulary (so that 4-grams match), hypotheses a reference with some words changed."""
    r = _rng(seed)
    hypotheses, references = [], []
    for _ in range(sentences):
        refs = [[str(w) for w in r.choice(list(vocabulary), size=r.integers(6, 12))]
                for _ in range(r.integers(1, 3))]
        hyp = [w if r.random() < 0.8 else str(r.choice(list(vocabulary))) for w in refs[0]]
        hypotheses.append(hyp[:len(hyp) - int(r.integers(0, 3))])
        references.append(refs)
    return hypotheses, references


def _tinyllm_bleu(hypotheses, references, max_n):
    from tinyllm.training import evaluation
    return evaluation.corpus_bleu(hypotheses, references, max_order=max_n,
                                  smooth="none").score / 100


@STEP.check("bleu_of_random_corpora")
def bleu_random(c):
    """BLEU-4 and BLEU-2 of random corpora with one or two references per sentence."""
    for seed, max_n in ((0, 4), (1, 4), (2, 2)):
        hyps, refs = _random_corpus(seed)
        c.expect("BLEU-%d of random corpus %d" % (max_n, seed), _bleu(c, hyps, refs, max_n),
                 reference=lambda hyps=hyps, refs=refs, max_n=max_n:
                 _tinyllm_bleu(hyps, refs, max_n))


@STEP.check("bleu_rejects_lists_of_different_lengths")
def bleu_errors(c):
    """Two hypotheses with one list of references: a ValueError naming corpus_bleu."""
    corpus_bleu = c.get("corpus_bleu")
    c.raises("corpus_bleu of 2 hypotheses and 1 list of references",
             lambda: corpus_bleu([["a"], ["b"]], [[["a"]]]), (ValueError,),
             contains=("corpus_bleu",))
