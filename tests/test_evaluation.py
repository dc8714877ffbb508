"""Metrics (tinyllm.training.evaluation): perplexity and bits from the loss, bits per character
and per byte on a model whose answer is known, weighted mean losses, and corpus BLEU on hand
examples."""

import math

import numpy as np
import pytest

import tinyllm
from tinyllm.data import ByteBPETokenizer, CharTokenizer
from tinyllm.models import GPT, GPTConfig
from tinyllm.training.evaluation import (bits_per_token, corpus_bleu, evaluate_language_model,
                                         mean_loss, ngram_counts, perplexity)

TEXT = "the quick brown fox jumps over the lazy dog; " * 20 + "naïve café ☃ "


def uniform_gpt(vocab_size, block_size=8):
    """A GPT whose logits are all zero (the tied embedding / output matrix is zero): it gives
    every token probability 1/V, so its loss is exactly ln V."""
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=1, n_head=1,
                          n_embd=8))
    model.lm_head.weight.data[...] = 0.0
    return model


def test_perplexity_is_exp_of_the_loss_and_bits_divide_by_ln2():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(65)) == pytest.approx(65.0, rel=1e-12)
    assert bits_per_token(math.log(2)) == pytest.approx(1.0, rel=1e-12)
    assert bits_per_token(2.5) == pytest.approx(2.5 / math.log(2), rel=1e-12)


def test_a_uniform_model_scores_log_v_with_a_character_tokenizer():
    tokenizer = CharTokenizer.from_text(TEXT)
    V = tokenizer.vocab_size
    ids = np.array(tokenizer.encode(TEXT))
    metrics = evaluate_language_model(uniform_gpt(V), tokenizer, ids, batch_size=4, block_size=8)
    assert metrics["loss"] == pytest.approx(math.log(V), rel=1e-6)
    assert metrics["perplexity"] == pytest.approx(V, rel=1e-5)
    assert metrics["bits_per_char"] == pytest.approx(math.log2(V), rel=1e-6)
    assert metrics["bits_per_char"] == pytest.approx(metrics["bits_per_token"], rel=1e-12)
    windows = (len(ids) - 1) // 8
    assert metrics["tokens"] == metrics["chars"] == windows * 8
    predicted = tokenizer.decode(ids[1:1 + windows * 8])
    assert metrics["bytes"] == len(predicted.encode("utf-8"))
    assert metrics["bits_per_byte"] == pytest.approx(
        windows * 8 * math.log2(V) / metrics["bytes"], rel=1e-6)


def test_bits_per_byte_and_char_of_a_bpe_model_count_the_text_not_the_tokens():
    tokenizer = ByteBPETokenizer().train(TEXT, 300)
    V = tokenizer.vocab_size
    ids = np.array(tokenizer.encode(TEXT))
    metrics = evaluate_language_model(uniform_gpt(V), tokenizer, ids, batch_size=4, block_size=8)
    n = metrics["tokens"]
    predicted = tokenizer.decode_bytes(ids[1:1 + n])
    assert metrics["bytes"] == len(predicted)
    total_bits = n * math.log2(V)
    assert metrics["bits_per_byte"] == pytest.approx(total_bits / len(predicted), rel=1e-6)
    assert metrics["bits_per_char"] == pytest.approx(
        total_bits / len(predicted.decode("utf-8", errors="replace")), rel=1e-6)
    assert metrics["bits_per_byte"] < metrics["bits_per_token"]     # a token spans bytes


def test_max_batches_limits_the_windows_read():
    tokenizer = CharTokenizer.from_text(TEXT)
    ids = np.array(tokenizer.encode(TEXT))
    metrics = evaluate_language_model(uniform_gpt(tokenizer.vocab_size), tokenizer, ids,
                                      batch_size=4, block_size=8, max_batches=2)
    assert metrics["tokens"] == 2 * 4 * 8


def test_mean_loss_weights_each_batch_by_its_targets():
    losses = {"a": 1.0, "b": 4.0}
    value = mean_loss(lambda name: tinyllm.tensor(losses[name]), [("a", 3), ("b", 1)])
    assert value == pytest.approx((1.0 * 3 + 4.0 * 1) / 4)
    with pytest.raises(ValueError, match="no targets"):
        mean_loss(lambda name: tinyllm.tensor(0.0), [])


# ----- BLEU -----------------------------------------------------------------------------------
def test_ngram_counts():
    assert ngram_counts("a b a b".split(), 2) == {("a", "b"): 2, ("b", "a"): 1}


def test_bleu_of_an_exact_match_is_100():
    score = corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert score.score == pytest.approx(100.0)
    assert score.brevity_penalty == 1.0


def test_bleu_hand_example_with_and_without_smoothing():
    # hypothesis: the cat sat on the mat     reference: the cat is on the mat
    # 1-grams 5/6 (the x2, cat, on, mat), 2-grams 3/5 (the cat, on the, the mat),
    # 3-grams 1/4 (on the mat), 4-grams 0/3; lengths 6 and 6, so BP = 1
    hyp, ref = ["the cat sat on the mat"], ["the cat is on the mat"]
    papineni = corpus_bleu(hyp, ref, smooth="none")
    assert papineni.precisions == pytest.approx([500 / 6, 60.0, 25.0, 0.0])
    assert papineni.score == 0.0
    # sacrebleu's "exp" smoothing: the first zero precision becomes 1 / (2 * 3)
    smoothed = corpus_bleu(hyp, ref)
    expected = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert smoothed.score == pytest.approx(expected, rel=1e-12)


def test_bleu_brevity_penalty():
    # every n-gram of "the cat sat on" is in the reference: precisions 100, BP = exp(1 - 6/4)
    score = corpus_bleu(["the cat sat on"], ["the cat sat on the mat"])
    assert score.precisions == pytest.approx([100.0] * 4)
    assert score.brevity_penalty == pytest.approx(math.exp(1 - 6 / 4))
    assert score.score == pytest.approx(100 * math.exp(1 - 6 / 4))
    longer = corpus_bleu(["the cat sat on the mat today"], ["the cat sat on the mat"])
    assert longer.brevity_penalty == 1.0


def test_bleu_clips_repeated_ngrams_papinenis_example():
    # Papineni et al.'s example: "the" x7 against two references; "the" counts at most twice
    score = corpus_bleu(["the the the the the the the"],
                        [["the cat is on the mat", "there is a cat on the mat"]])
    assert score.precisions[0] == pytest.approx(100 * 2 / 7)


def test_bleu_picks_the_closest_reference_length():
    score = corpus_bleu([list("abcd")], [[list("abcdefgh"), list("abc"), list("abcde")]])
    assert score.ref_len == 3            # |4 - 3| = |4 - 5| = 1: the shorter one on a tie
    assert score.hyp_len == 4


def test_corpus_bleu_pools_counts_over_sentences():
    hyps = [list("12345"), list("9876")]
    refs = [list("12345"), list("9875")]
    # pooled: 1-grams (5 + 3) / 9, 2-grams (4 + 2) / 7, 3-grams (3 + 1) / 5, 4-grams (2 + 0) / 3
    expected = 100 * ((8 / 9) * (6 / 7) * (4 / 5) * (2 / 3)) ** 0.25
    assert corpus_bleu(hyps, refs).score == pytest.approx(expected, rel=1e-12)


def test_bleu_of_empty_hypotheses_is_zero_and_lengths_must_match():
    assert corpus_bleu([[]], [list("abc")]).score == 0.0
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
