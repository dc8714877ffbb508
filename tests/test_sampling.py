"""Decoding strategies (tinyllm.models.sampling): the next-token distribution of temperature,
top-k and top-p on hand-made logits, the repetition penalty, beam search on a hand-built model
where greedy decoding fails, seeds, streaming and the model steppers."""

import itertools
import math

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.data import ByteBPETokenizer, CharTokenizer
from tinyllm.models import GPT, GPTConfig, LSTMLanguageModel
from tinyllm.models import sampling
from tinyllm.models.sampling import (CachedStepper, ContextStepper, RecurrentStepper, TextStream,
                                     apply_repetition_penalty, beam_search, generate,
                                     sample_next_token, token_probabilities)

LOGITS = np.array([[1.0, 3.0, 2.0, 0.5, 2.5]])


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# ----- temperature, top-k, top-p --------------------------------------------------------------
def test_temperature_divides_the_logits():
    np.testing.assert_allclose(token_probabilities(LOGITS, temperature=2.0)[0],
                               softmax(LOGITS[0] / 2.0), rtol=1e-12)
    np.testing.assert_allclose(token_probabilities(LOGITS, temperature=1.0)[0],
                               softmax(LOGITS[0]), rtol=1e-12)


def test_temperature_towards_zero_becomes_greedy():
    greedy = token_probabilities(LOGITS, temperature=0.0)[0]
    assert greedy.tolist() == [0, 1, 0, 0, 0]
    cold = token_probabilities(LOGITS, temperature=0.01)[0]
    np.testing.assert_allclose(cold, greedy, atol=1e-20)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_keeps_exactly_the_k_largest(k):
    probs = token_probabilities(LOGITS, top_k=k)[0]
    largest = np.argsort(-LOGITS[0])[:k]
    assert set(np.flatnonzero(probs)) == set(largest)
    expected = np.zeros(5)
    expected[largest] = softmax(LOGITS[0][largest])
    np.testing.assert_allclose(probs, expected, rtol=1e-12)


def smallest_nucleus(probs, p):
    """Brute force: the smallest set of tokens (most probable first) whose mass is >= p."""
    order = np.argsort(-probs)
    for size in range(1, len(probs) + 1):
        if probs[order[:size]].sum() >= p:
            return set(order[:size].tolist())


@pytest.mark.parametrize("p", [0.3, 0.49, 0.6, 0.79, 0.81, 0.96, 1.0])
def test_top_p_keeps_the_smallest_nucleus(p):
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    kept = token_probabilities(np.log(probs)[None, :], top_p=p)[0]
    nucleus = smallest_nucleus(probs, p)
    assert set(np.flatnonzero(kept)) == nucleus
    members = sorted(nucleus)
    np.testing.assert_allclose(kept[members], probs[members] / probs[members].sum(), rtol=1e-9)


def test_samples_come_from_the_filtered_distribution():
    generator = np.random.default_rng(0)
    draws = np.array([sample_next_token(LOGITS, top_k=2, generator=generator)[0]
                      for _ in range(2000)])
    assert set(draws) == {1, 4}
    expected = softmax(np.array([3.0, 2.5]))[0]
    assert abs(np.mean(draws == 1) - expected) < 0.04        # ~4 standard deviations


# ----- repetition penalty -------------------------------------------------------------------
def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = np.array([[2.0, -1.0, 0.5, -3.0, 4.0]])
    out = apply_repetition_penalty(logits, [[0, 1, 1, 3]], 2.0)
    np.testing.assert_array_equal(out, [[1.0, -2.0, 0.5, -6.0, 4.0]])


def test_repetition_penalty_of_one_changes_nothing_and_is_per_row():
    logits = np.array([[2.0, -1.0], [2.0, -1.0]])
    np.testing.assert_array_equal(apply_repetition_penalty(logits, [[0], [1]], 1.0), logits)
    np.testing.assert_array_equal(apply_repetition_penalty(logits, [[0], [1]], 4.0),
                                  [[0.5, -1.0], [2.0, -4.0]])


def test_repetition_penalty_must_be_positive():
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        apply_repetition_penalty(LOGITS, [[0]], 0.0)


# ----- a hand-built model: where greedy decoding fails ------------------------------------
class Bigram(nn.Module):
    """p(next | previous) from a fixed table: forward(idx) -> (log-probabilities (B, T, V),
    None)."""

    def __init__(self, table):
        super().__init__()
        self.log_table = np.log(np.asarray(table, dtype=np.float64))

    def forward(self, idx, targets=None):
        return tinyllm.tensor(self.log_table[np.asarray(idx)]), None


# token 0 starts; after it A (1) is likeliest, but B (2) is almost surely followed by B again
TABLE = [[0.01, 0.50, 0.40, 0.09],
         [0.25, 0.25, 0.25, 0.25],
         [0.05, 0.05, 0.85, 0.05],
         [0.25, 0.25, 0.25, 0.25]]


def sequence_log_prob(tokens, start=0):
    logp, previous = 0.0, start
    for t in tokens:
        logp += math.log(TABLE[previous][t])
        previous = t
    return logp


def test_beam_search_finds_the_sequence_greedy_misses():
    model = Bigram(TABLE)
    best = max(itertools.product(range(4), repeat=2), key=sequence_log_prob)
    greedy = sampling.greedy(model, [0], 2)
    beam = beam_search(model, [0], 2, beam_size=2)
    assert tuple(beam) == best == (2, 2)
    assert greedy[0] == 1 and sequence_log_prob(greedy) < sequence_log_prob(beam)


def test_beam_search_of_width_one_is_greedy():
    model = Bigram(TABLE)
    assert beam_search(model, [0], 4, beam_size=1) == sampling.greedy(model, [0], 4)


def test_beam_search_matches_brute_force_on_three_steps():
    model = Bigram(TABLE)
    best = max(itertools.product(range(4), repeat=3), key=sequence_log_prob)
    assert tuple(beam_search(model, [0], 3, beam_size=4 ** 2)) == best


def test_beam_search_stops_at_eos_and_returns_the_best_finished_sequence():
    # eos = 3. From 0, A (1) is likeliest, but B (2) is followed by eos with p = 0.85
    table = [[0.01, 0.50, 0.40, 0.09],
             [0.25, 0.25, 0.25, 0.25],
             [0.05, 0.05, 0.05, 0.85],
             [0.25, 0.25, 0.25, 0.25]]
    model = Bigram(table)
    for length_penalty in (0.0, 1.0):
        assert beam_search(model, [0], 6, beam_size=3, eos_id=3,
                           length_penalty=length_penalty) == [2, 3]
    assert sampling.greedy(model, [0], 2)[0] == 1


def test_greedy_equals_temperature_zero_and_cold_sampling():
    model = Bigram([[0.1, 0.4, 0.3, 0.2], [0.4, 0.1, 0.2, 0.3], [0.2, 0.3, 0.1, 0.4],
                    [0.1, 0.2, 0.45, 0.25]])            # no ties: the argmax is unique
    greedy = sampling.greedy(model, [0], 6)
    assert generate(model, [0], 6, temperature=0.0) == greedy
    assert generate(model, [0], 6, temperature=1e-3, seed=5) == greedy


# ----- seeds and streaming ------------------------------------------------------------------
def tiny_gpt(vocab_size=11, block_size=8, seed=0):
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=1, n_head=2,
                         n_embd=16))


def test_the_same_seed_gives_the_same_sample():
    model = tiny_gpt()
    first = generate(model, [1, 2], 12, temperature=1.5, seed=7)
    assert generate(model, [1, 2], 12, temperature=1.5, seed=7) == first
    others = [generate(model, [1, 2], 12, temperature=1.5, seed=s) for s in range(8, 12)]
    assert any(o != first for o in others)


def test_streaming_reports_every_token_in_order():
    model = tiny_gpt()
    seen = []
    new = generate(model, [3], 10, seed=0, on_token=seen.append)
    assert seen == new and len(new) == 10


def test_a_prompt_longer_than_the_context_is_cropped():
    model = tiny_gpt(block_size=4)
    stepper = sampling.stepper_for(model)
    assert isinstance(stepper, CachedStepper) and stepper.block_size == 4
    new = generate(model, list(range(10)), 3, temperature=0.0)    # GPT itself refuses T > 4
    assert len(new) == 3
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(np.arange(10)[None, :])


def test_sampling_leaves_the_model_in_training_mode():
    model = tiny_gpt()
    model.train()
    generate(model, [1], 2, seed=0)
    assert model.training


def test_lstm_stepper_carries_the_state_like_a_full_recompute():
    tinyllm.manual_seed(0)
    model = LSTMLanguageModel(vocab_size=9, embedding_dim=8, hidden_size=8, num_layers=2).eval()
    recurrent, full = RecurrentStepper(model), ContextStepper(model)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(recurrent.start(prompt), full.start(prompt), rtol=1e-5,
                               atol=1e-6)
    for step in ([7, 8], [0, 1]):
        np.testing.assert_allclose(recurrent.advance(np.array(step)),
                                   full.advance(np.array(step)), rtol=1e-5, atol=1e-6)
    rows = np.array([1, 1])                            # beam search keeps row 1 twice
    recurrent.reorder(rows)
    full.reorder(rows)
    np.testing.assert_allclose(recurrent.advance(np.array([2, 3])),
                               full.advance(np.array([2, 3])), rtol=1e-5, atol=1e-6)


def test_text_stream_holds_back_incomplete_utf8_characters():
    tokenizer = ByteBPETokenizer().train("plain ascii text", 260)
    text = "a日本b"
    ids = tokenizer.encode(text)
    stream = TextStream(tokenizer)
    pieces = [stream.feed(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)
    assert pieces.count("") >= 4            # the first two bytes of each CJK character wait


def test_text_stream_of_a_character_tokenizer():
    tokenizer = CharTokenizer.from_text("hello")
    stream = TextStream(tokenizer)
    assert [stream.feed(i) for i in tokenizer.encode("hole")] == list("hole")


def test_generate_rejects_an_empty_prompt():
    with pytest.raises(ValueError, match="non-empty"):
        generate(tiny_gpt(), [], 3)
