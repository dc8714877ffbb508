"""MLMEncoder (tinyllm.models.mlm): a BERT-style masked-language-model encoder."""

import numpy as np
import pytest

import tinyllm
from tinyllm.data import mask_tokens, pad_sequences
from tinyllm.models import GPT, GPTConfig, MLMEncoder

from conftest import ATOL, RTOL

PAD, MASK, VOCAB = 0, 1, 12


def encoder(seed=0, **options):
    tinyllm.manual_seed(seed)
    sizes = dict(vocab_size=VOCAB, max_len=8, d_model=8, nhead=2, num_layers=2,
                 dim_feedforward=16, dropout=0.0, pad_id=PAD)
    sizes.update(options)
    return MLMEncoder(**sizes)


SENTENCES = [[4, 5, 6, 7, 3], [8, 9], [10, 11, 3, 5, 6, 4, 7]]


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_mlm_logits_shape_and_loss_over_the_labelled_positions():
    model = encoder().double()
    ids, _ = pad_sequences(SENTENCES, padding="post")
    labels = np.full(ids.shape, -100)
    labels[0, 1], labels[2, 4], labels[1, 0] = 5, 4, 8
    logits, loss = model(ids, labels)
    assert logits.shape == (3, 7, VOCAB)
    logp = log_softmax(logits.data)
    expected = -np.mean([logp[0, 1, 5], logp[2, 4, 4], logp[1, 0, 8]])
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert model(ids)[1] is None


def test_mlm_decoder_is_tied_to_the_token_embedding():
    model = encoder()
    assert model.head.decoder.weight is model.token_embedding.weight
    assert sum(p is model.token_embedding.weight for p in model.parameters()) == 1
    assert model.head.decoder.bias.shape == (VOCAB,)


@pytest.mark.parametrize("extra", [1, 3])
def test_mlm_padding_never_changes_the_states_of_real_tokens(extra):
    model = encoder().double()
    for sentence in SENTENCES[:2]:
        alone = model.encode(np.array([sentence])).data[0]
        padded = np.array([sentence + [PAD] * extra])
        np.testing.assert_allclose(model.encode(padded).data[0, :len(sentence)], alone,
                                   rtol=1e-10, atol=1e-12)
        logits_alone = model(np.array([sentence]))[0].data[0]
        np.testing.assert_allclose(model(padded)[0].data[0, :len(sentence)], logits_alone,
                                   rtol=1e-10, atol=1e-12)


def test_mlm_explicit_padding_mask_makes_the_padding_ids_irrelevant():
    model = encoder().double()
    ids, real = pad_sequences(SENTENCES, padding="post")
    noisy = np.where(real, ids, np.random.default_rng(0).integers(2, VOCAB, ids.shape))
    a = model.encode(ids).data
    b = model.encode(noisy, padding_mask=~real).data
    np.testing.assert_allclose(b[real], a[real], rtol=1e-10, atol=1e-12)


def test_mlm_without_a_mask_padding_is_attended_to():
    model = encoder(pad_id=None).double()      # with pad_id None nothing is masked by default
    sentence = SENTENCES[1]
    alone = model.encode(np.array([sentence])).data[0]
    padded = model.encode(np.array([sentence + [PAD, PAD]])).data[0, :2]
    assert not np.allclose(padded, alone)


def test_mlm_gradcheck_whole_model():
    model = encoder(num_layers=1)
    ids, _ = pad_sequences(SENTENCES[:2], padding="post")
    labels = np.full(ids.shape, -100)
    labels[0, [0, 3]] = [4, 7]
    labels[1, 1] = 9
    assert tinyllm.gradcheck_module(model, lambda: model(ids, labels)[1], atol=ATOL, rtol=RTOL,
                                    n_samples=6)


def test_mlm_overfits_a_masked_batch():
    model = encoder(d_model=16, dim_feedforward=32)
    ids, _ = pad_sequences(SENTENCES, padding="post")
    inputs, labels = mask_tokens(ids, MASK, VOCAB, mlm_probability=0.4, special_ids=(PAD,),
                                 generator=np.random.default_rng(0))
    assert np.all(labels[ids == PAD] == -100) and np.any(labels != -100)
    optimizer = tinyllm.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(100):
        _, loss = model(inputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_mlm_dropout_acts_in_training_mode_only():
    model = encoder(dropout=0.5)
    ids = np.array([SENTENCES[0]])
    assert not np.allclose(model(ids)[0].data, model(ids)[0].data)
    model.eval()
    np.testing.assert_array_equal(model(ids)[0].data, model(ids)[0].data)


def test_mlm_rejects_a_sequence_longer_than_max_len():
    with pytest.raises(ValueError, match="MLMEncoder: sequence length 9 exceeds max_len 8"):
        encoder()(np.ones((1, 9), dtype=np.int64))


def test_mlm_rejects_ids_of_the_wrong_rank():
    with pytest.raises(ValueError, match=r"MLMEncoder: ids must be a \(B, T\) batch"):
        encoder()(np.ones(4, dtype=np.int64))


def test_mlm_rejects_ids_outside_the_vocabulary():
    with pytest.raises(IndexError, match=r"token id 12 in ids is outside the vocabulary \[0, 12\)"):
        encoder()(np.array([[3, 12]]))


def test_mlm_rejects_a_padding_mask_of_another_shape():
    with pytest.raises(ValueError, match="padding_mask must be a boolean array"):
        encoder()(np.array([[3, 4]]), padding_mask=np.zeros((1, 3), dtype=bool))


def test_mlm_rejects_labels_of_another_shape():
    with pytest.raises(ValueError, match="labels of shape"):
        encoder()(np.array([[3, 4]]), np.array([[3, 4, 5]]))


def test_mlm_rejects_the_state_dict_of_another_architecture():
    tinyllm.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(RuntimeError, match="missing keys: token_embedding.weight"):
        encoder().load_state_dict(gpt.state_dict())
