"""LSTMLanguageModel and LSTMClassifier (tinyllm.models.lstm)."""

import numpy as np
import pytest

import tinyllm
from tinyllm.data import pad_sequences
from tinyllm.models import GPT, GPTConfig, LSTMClassifier, LSTMLanguageModel
from tinyllm.models.lstm import pack_to_front

from conftest import ATOL, RTOL


def lm(seed=0, **options):
    tinyllm.manual_seed(seed)
    sizes = dict(vocab_size=9, embedding_dim=6, hidden_size=5, num_layers=2)
    sizes.update(options)
    return LSTMLanguageModel(**sizes)


def classifier(seed=0, **options):
    tinyllm.manual_seed(seed)
    sizes = dict(vocab_size=10, embedding_dim=4, hidden_size=5)
    sizes.update(options)
    return LSTMClassifier(**sizes)


def ids(seed, shape, vocab=9, low=0):
    return np.random.default_rng(seed).integers(low, vocab, size=shape)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# ----- language model -----------------------------------------------------------------------
def test_lm_returns_logits_loss_and_state_of_the_documented_shapes():
    model = lm()
    logits, loss, (h, c) = model(ids(0, (3, 7)), ids(1, (3, 7)))
    assert logits.shape == (3, 7, 9) and loss.shape == ()
    assert h.shape == (2, 3, 5) and c.shape == (2, 3, 5)
    logits, loss, _ = model(ids(0, (3, 7)))
    assert loss is None


def test_lm_loss_is_mean_cross_entropy_skipping_minus_100():
    model = lm().double()
    x, y = ids(0, (2, 5)), ids(1, (2, 5))
    y[0, 1] = -100
    logits, loss, _ = model(x, y)
    logp = log_softmax(logits.data)
    kept = y != -100
    picked = np.take_along_axis(logp, np.where(kept, y, 0)[..., None], axis=-1)[..., 0]
    assert loss.item() == pytest.approx(-picked[kept].mean(), rel=1e-12)


def test_lm_carried_state_continues_the_sequence_exactly():
    model = lm().double()
    x = ids(0, (2, 8))
    whole, _, (h, c) = model(x)
    first, _, state = model(x[:, :5])
    second, _, (h2, c2) = model(x[:, 5:], state=model.detach_state(state))
    np.testing.assert_allclose(np.concatenate([first.data, second.data], axis=1), whole.data,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h2.data, h.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c2.data, c.data, rtol=1e-12, atol=1e-14)


def test_lm_detach_state_cuts_the_graph_but_keeps_the_values():
    model = lm()
    _, _, state = model(ids(0, (2, 3)))
    detached = LSTMLanguageModel.detach_state(state)
    assert all(s.requires_grad for s in state)
    assert not any(s.requires_grad for s in detached)
    for s, d in zip(state, detached):
        np.testing.assert_array_equal(s.data, d.data)


@pytest.mark.parametrize("tie", [False, True])
def test_lm_gradcheck_whole_model(tie):
    model = lm(embedding_dim=5, tie_weights=tie)
    x, y = ids(0, (2, 4)), ids(1, (2, 4))
    assert tinyllm.gradcheck_module(model, lambda: model(x, y)[1], atol=ATOL, rtol=RTOL,
                                    n_samples=10)


def test_lm_gradcheck_through_a_carried_state():
    model = lm(num_layers=1)
    x, y = ids(0, (2, 3)), ids(1, (2, 3))
    h0 = tinyllm.tensor(np.random.default_rng(2).normal(size=(1, 2, 5)), requires_grad=True)
    c0 = tinyllm.tensor(np.random.default_rng(3).normal(size=(1, 2, 5)), requires_grad=True)
    assert tinyllm.gradcheck_module(model, lambda: model(x, y, state=(h0, c0))[1], (h0, c0),
                                    atol=ATOL, rtol=RTOL, n_samples=10)


def test_lm_tied_weights_are_one_parameter():
    model = lm(embedding_dim=5, tie_weights=True)
    assert model.lm_head.weight is model.embedding.weight
    assert sum(p is model.embedding.weight for p in model.parameters()) == 1
    model(ids(0, (2, 3)), ids(1, (2, 3)))[1].backward()
    assert model.embedding.weight.grad.shape == (9, 5)


def test_lm_tying_needs_equal_embedding_and_hidden_sizes():
    with pytest.raises(ValueError, match="tie_weights needs embedding_dim == hidden_size"):
        lm(embedding_dim=6, hidden_size=5, tie_weights=True)


def test_lm_overfits_a_tiny_batch():
    model = lm(embedding_dim=16, hidden_size=32)
    x, y = ids(0, (2, 8)), ids(1, (2, 8))
    optimizer = tinyllm.optim.AdamW(model.parameters(), lr=2e-2, weight_decay=0.0)
    for _ in range(150):
        _, loss, _ = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_lm_generate_shape_and_repeatability():
    model = lm().eval()
    prompt = ids(0, (2, 3))
    tinyllm.manual_seed(1)
    a = model.generate(prompt, 5, top_k=4)
    tinyllm.manual_seed(1)
    b = model.generate(prompt, 5, top_k=4)
    assert a.shape == (2, 8) and a.dtype == np.int64
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.data[:, :3], prompt)


def test_lm_generate_greedy_matches_rereading_the_whole_sequence():
    model = lm().eval()
    out = model.generate(ids(0, (2, 2)), 6, temperature=0).data
    for t in range(2, 8):
        logits = model(out[:, :t])[0].data[:, -1]
        np.testing.assert_array_equal(out[:, t], np.argmax(logits, axis=-1))


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros(5, dtype=np.int64), ValueError, r"idx must be a \(B, T\) batch"),
    (np.array([[1, 9]]), IndexError, "token id 9 in idx is outside the vocabulary"),
    (np.array([[0.5, 1.0]]), TypeError, "idx must hold integer token ids")])
def test_lm_rejects_bad_input(bad, error, message):
    with pytest.raises(error, match="LSTMLanguageModel: " + message):
        lm()(bad)


def test_lm_rejects_the_state_dict_of_another_architecture():
    tinyllm.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=1, n_embd=4))
    with pytest.raises(RuntimeError, match="missing keys: embedding.weight"):
        lm().load_state_dict(gpt.state_dict())


# ----- classifier ---------------------------------------------------------------------------
REVIEWS = [[3, 5, 2, 8], [7], [4, 4, 9, 1, 6, 2], [2, 3]]


def test_pack_to_front_moves_real_tokens_first_and_trims():
    x = np.array([[0, 0, 5, 7], [5, 7, 0, 0], [0, 3, 0, 4]])
    mask = x != 0
    packed, lengths = pack_to_front(x, mask, fill=0)
    np.testing.assert_array_equal(packed, [[5, 7], [5, 7], [3, 4]])
    np.testing.assert_array_equal(lengths, [2, 2, 2])


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_classifier_padding_never_changes_the_output(padding):
    model = classifier().double()
    padded, mask = pad_sequences(REVIEWS, maxlen=9, padding=padding)
    logits, _ = model(padded)
    alone = [model(np.array([r]))[0].data[0] for r in REVIEWS]    # no padding at all
    np.testing.assert_allclose(logits.data, alone, rtol=1e-12, atol=1e-14)
    # Whatever ids sit at the padding, the mask says they are not part of the text.
    noisy = np.where(mask, padded, np.random.default_rng(0).integers(1, 10, padded.shape))
    np.testing.assert_allclose(model(noisy, mask=mask)[0].data, alone, rtol=1e-12, atol=1e-14)


def test_classifier_reads_the_lstm_state_after_the_last_real_token():
    model = classifier().double()
    padded, _ = pad_sequences(REVIEWS, padding="pre")
    logits, _ = model(padded)
    for row, review in zip(logits.data, REVIEWS):
        _, (h_n, _) = model.lstm(model.embedding(np.array([review])))    # the unpadded text
        expected = h_n.data[0, 0] @ model.classifier.weight.data.T + model.classifier.bias.data
        np.testing.assert_allclose(row, expected[0], rtol=1e-12)


def test_classifier_binary_loss_is_bce_with_logits():
    model = classifier().double()
    padded, _ = pad_sequences(REVIEWS, padding="post")
    labels = np.array([1, 0, 1, 1])
    logits, loss = model(padded, labels)
    assert logits.shape == (4,)
    x = logits.data
    expected = np.mean(np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x))))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    proba = model.predict_proba(padded)
    np.testing.assert_allclose(proba.data, 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_classifier_with_several_classes_uses_cross_entropy():
    model = classifier(num_classes=3).double()
    padded, _ = pad_sequences(REVIEWS, padding="pre")
    labels = np.array([2, 0, 1, 2])
    logits, loss = model(padded, labels)
    assert logits.shape == (4, 3)
    expected = -np.mean(log_softmax(logits.data)[np.arange(4), labels])
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(model.predict_proba(padded).data.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("num_classes, labels", [(1, [1.0, 0.0, 0.0, 1.0]), (3, [2, 0, 1, 1])])
def test_classifier_gradcheck_whole_model(num_classes, labels):
    model = classifier(num_classes=num_classes, embedding_dim=3, hidden_size=4)
    padded, _ = pad_sequences(REVIEWS, padding="pre")
    assert tinyllm.gradcheck_module(model, lambda: model(padded, np.array(labels))[1],
                                    atol=ATOL, rtol=RTOL, n_samples=10)


def test_classifier_padding_embedding_gets_no_gradient():
    model = classifier()
    padded, _ = pad_sequences(REVIEWS, padding="post")
    model(padded, np.array([1, 0, 1, 0]))[1].backward()
    np.testing.assert_array_equal(model.embedding.weight.grad[0], 0.0)


def test_classifier_overfits_a_tiny_batch():
    model = classifier(embedding_dim=8, hidden_size=16)
    padded, _ = pad_sequences(REVIEWS, padding="pre")
    labels = np.array([1, 0, 0, 1])
    optimizer = tinyllm.optim.AdamW(model.parameters(), lr=5e-2, weight_decay=0.0)
    for _ in range(100):
        _, loss = model(padded, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01


def test_classifier_rejects_a_row_of_padding_only():
    with pytest.raises(ValueError, match="sequence 1 of the batch has no real tokens"):
        classifier()(np.array([[1, 2], [0, 0]]))


def test_classifier_rejects_a_mask_of_another_shape():
    with pytest.raises(ValueError, match="mask must be a boolean array of the ids' shape"):
        classifier()(np.array([[1, 2]]), mask=np.ones((1, 3), dtype=bool))


def test_classifier_rejects_labels_of_another_shape():
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(1,\)"):
        classifier()(np.array([[1, 2]]), np.array([[1.0]]))


def test_classifier_rejects_ids_outside_the_vocabulary():
    with pytest.raises(IndexError, match="LSTMClassifier: token id 12 in ids"):
        classifier()(np.array([[1, 12]]))
