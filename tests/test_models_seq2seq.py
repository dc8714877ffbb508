"""Seq2SeqTransformer (tinyllm.models.seq2seq): masks, loss, greedy decoding, beam search."""

import itertools

import numpy as np
import pytest

import tinyllm
from tinyllm.data import collate_seq2seq
from tinyllm.models import GPT, GPTConfig, Seq2SeqTransformer

from conftest import ATOL, RTOL

PAD, BOS, EOS = 0, 1, 2


def transformer(seed=0, **options):
    tinyllm.manual_seed(seed)
    sizes = dict(src_vocab_size=10, tgt_vocab_size=9, d_model=8, nhead=2, num_encoder_layers=2,
                 num_decoder_layers=2, dim_feedforward=16, dropout=0.0, max_len=10)
    sizes.update(options)
    return Seq2SeqTransformer(**sizes)


SOURCES = [[3, 4, 5, 6], [7, 8], [9, 3, 5]]
TARGETS = [[6, 5, 4, 3], [8, 7], [5, 3, 8]]


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_seq2seq_logits_and_loss_skipping_padding():
    model = transformer().double()
    batch = collate_seq2seq(SOURCES, TARGETS, PAD, BOS, EOS)
    logits, loss = model(batch.src, batch.tgt_in, batch.tgt_out)
    assert logits.shape == (3, 5, 9)
    logp = log_softmax(logits.data)
    real = batch.tgt_out != PAD
    picked = np.take_along_axis(logp, batch.tgt_out[..., None], axis=-1)[..., 0]
    assert loss.item() == pytest.approx(-picked[real].mean(), rel=1e-12)
    assert model(batch.src, batch.tgt_in)[1] is None


def test_seq2seq_source_padding_never_changes_the_output():
    model = transformer().double()
    tgt_in = np.array([[BOS, 6, 5]])
    alone = model(np.array([SOURCES[1]]), tgt_in)[0].data
    padded = model(np.array([SOURCES[1] + [PAD] * 3]), tgt_in)[0].data
    np.testing.assert_allclose(padded, alone, rtol=1e-10, atol=1e-12)


def test_seq2seq_target_padding_never_changes_the_real_positions():
    model = transformer().double()
    src = np.array([SOURCES[0]])
    alone = model(src, np.array([[BOS, 6, 5]]))[0].data
    padded = model(src, np.array([[BOS, 6, 5, PAD, PAD]]))[0].data
    np.testing.assert_allclose(padded[:, :3], alone, rtol=1e-10, atol=1e-12)


def test_seq2seq_decoder_is_causal_at_every_position():
    model = transformer().double()
    src = np.array([SOURCES[0]])
    tgt = np.array([[BOS, 3, 4, 5, 6, 7]])
    logits = model(src, tgt)[0].data
    for t in range(5):
        changed = tgt.copy()
        changed[0, t + 1:] = (tgt[0, t + 1:] + 1) % 9
        new_logits = model(src, changed)[0].data
        np.testing.assert_array_equal(new_logits[:, :t + 1], logits[:, :t + 1])
        assert not np.allclose(new_logits[:, t + 1], logits[:, t + 1])


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_seq2seq_gradcheck_whole_model(activation):
    model = transformer(num_encoder_layers=1, num_decoder_layers=1, activation=activation)
    batch = collate_seq2seq(SOURCES[1:], TARGETS[1:], PAD, BOS, EOS)
    assert tinyllm.gradcheck_module(
        model, lambda: model(batch.src, batch.tgt_in, batch.tgt_out)[1], atol=ATOL, rtol=RTOL,
        n_samples=5)


def trained_copy_model():
    """A model that has learnt (overfitted) the three reversals above."""
    model = transformer(d_model=16, dim_feedforward=32)
    batch = collate_seq2seq(SOURCES, TARGETS, PAD, BOS, EOS)
    optimizer = tinyllm.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(120):
        _, loss = model(batch.src, batch.tgt_in, batch.tgt_out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), loss.item()


def test_seq2seq_overfits_a_tiny_batch_and_decodes_it():
    model, loss = trained_copy_model()
    assert loss < 0.05
    batch = collate_seq2seq(SOURCES, TARGETS, PAD, BOS, EOS)
    decoded = model.greedy_decode(batch.src).data
    for row, target in zip(decoded, TARGETS):
        expected = [BOS] + target + [EOS]
        assert list(row[:len(expected)]) == expected
        assert np.all(row[len(expected):] == PAD)          # padded after its eos
    for src, target in zip(SOURCES, TARGETS):
        best = model.beam_search(np.array([src]), beam_size=3).data
        assert best.tolist() == [[BOS] + target + [EOS]]
        one_beam = model.beam_search(np.array([src]), beam_size=1).data
        assert one_beam.tolist() == [[BOS] + target + [EOS]]


def test_greedy_decode_picks_the_argmax_at_every_step():
    model = transformer().eval()
    src = np.array([SOURCES[0], SOURCES[2] + [PAD]])
    out = model.greedy_decode(src, max_len=6).data
    assert out.shape[0] == 2 and out.shape[1] <= 7 and np.all(out[:, 0] == BOS)
    for t in range(1, out.shape[1]):
        logits = model(src, out[:, :t])[0].data[:, -1]
        done = np.any(out[:, :t] == EOS, axis=1)
        np.testing.assert_array_equal(out[~done, t], np.argmax(logits, axis=-1)[~done])
        assert np.all(out[done, t] == PAD)


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
def test_beam_search_with_one_beam_is_greedy(seed):
    model = transformer(seed=seed).eval()       # seed 0 stops at once, the others at max_len
    src = np.array([SOURCES[seed % 3]])
    np.testing.assert_array_equal(model.beam_search(src, beam_size=1, max_len=7).data,
                                  model.greedy_decode(src, max_len=7).data)


def sequence_score(model, src, tokens, length_penalty):
    """sum_t log p(tokens[t] | tokens[:t], src) / n ** length_penalty, by teacher forcing."""
    logp = log_softmax(model(src, np.array([[BOS] + tokens[:-1]]))[0].data[0])
    return logp[np.arange(len(tokens)), tokens].sum() / len(tokens) ** length_penalty


@pytest.mark.parametrize("seed, eos_shift", [(1, 1.0), (3, 0.0)])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_search_with_a_wide_beam_finds_the_best_sequence(seed, eos_shift, length_penalty):
    """With more beams than hypotheses nothing is pruned, so beam search must return the
    best of every possible output (all ending in eos within 3 tokens, or 3 tokens long).
    (For these models the best output depends on the length penalty and differs from the
    greedy one.)"""
    model = transformer(seed=seed, tgt_vocab_size=4).double().eval()
    model.output_projection.bias.data[EOS] -= eos_shift      # make eos less likely
    src = np.array([SOURCES[0]])
    candidates = []
    for n in (1, 2, 3):
        for body in itertools.product([0, 1, 3], repeat=n - 1):   # every token but eos
            candidates.append(list(body) + [EOS])
    candidates += [list(c) for c in itertools.product([0, 1, 3], repeat=3)]
    scores = [sequence_score(model, src, c, length_penalty) for c in candidates]
    best = candidates[int(np.argmax(scores))]
    found = model.beam_search(src, beam_size=64, max_len=3, length_penalty=length_penalty)
    assert found.data.tolist() == [[BOS] + best]


def test_beam_step_finishes_only_eos_extensions_ranked_within_the_beam():
    model = transformer(tgt_vocab_size=4)
    beams = [([BOS, 3], -1.0), ([BOS, 0], -1.5)]
    totals = np.array([[-9.0, -9.0, -1.1, -1.2],       # ranks: (0, eos) 0, (0, 3) 1,
                       [-9.0, -9.0, -1.6, -1.7]])      #        (1, eos) 2, (1, 3) 3
    finished = []
    next_beams = model._next_beams(beams, totals, 2, 1.0, finished)
    assert finished == [(-1.1 / 2, [BOS, 3, EOS])]     # the rank-2 eos is left out
    assert next_beams == [([BOS, 3, 3], -1.2), ([BOS, 0, 3], -1.7)]


def test_decoding_is_deterministic():
    model = transformer().eval()
    src = np.array([SOURCES[0]])
    np.testing.assert_array_equal(model.beam_search(src, beam_size=3).data,
                                  model.beam_search(src, beam_size=3).data)
    np.testing.assert_array_equal(model.greedy_decode(src).data, model.greedy_decode(src).data)


def test_beam_search_decodes_one_sentence_at_a_time():
    with pytest.raises(ValueError, match=r"src must have shape \(1, S\), got \(2, 2\)"):
        transformer().beam_search(np.array([[3, 4], [5, 6]]))


def test_decoding_rejects_max_len_beyond_the_positions():
    with pytest.raises(ValueError, match=r"max_len must lie in \[1, 10\]"):
        transformer().greedy_decode(np.array([[3, 4]]), max_len=11)


@pytest.mark.parametrize("src, tgt, error, message", [
    (np.array([3, 4]), np.array([[BOS]]), ValueError, r"src must be a \(B, T\) batch"),
    (np.array([[3, 10]]), np.array([[BOS]]), IndexError, "token id 10 in src"),
    (np.array([[3, 4]]), np.array([[BOS, 9]]), IndexError, "token id 9 in tgt_in"),
    (np.ones((1, 11), dtype=int), np.array([[BOS]]), ValueError,
     "sequence length 11 exceeds max_len 10")])
def test_seq2seq_rejects_bad_input(src, tgt, error, message):
    with pytest.raises(error, match="Seq2SeqTransformer: " + message):
        transformer()(src, tgt)


def test_seq2seq_rejects_the_state_dict_of_another_architecture():
    tinyllm.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=9, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(RuntimeError, match="missing keys: src_embedding.weight"):
        transformer().load_state_dict(gpt.state_dict())
