"""GPT (tinyllm.models.gpt) and next-token sampling (tinyllm.models.sampling)."""

import copy

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.models import GPT, GPTConfig, LSTMLanguageModel
from tinyllm.models.sampling import sample_next_token, top_k_filter, top_p_filter

from conftest import ATOL, RTOL


# ----- helpers ------------------------------------------------------------------------------
TINY = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)


def tiny_gpt(seed=0, **changes):
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(**dict(TINY, **changes)))


def random_ids(seed, shape, vocab=11):
    return np.random.default_rng(seed).integers(0, vocab, size=shape)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# ----- structure ----------------------------------------------------------------------------
def test_gpt_parameter_names_are_nanogpts():
    model = tiny_gpt(n_layer=1, bias=False)
    assert list(model.state_dict()) == [
        "transformer.wte.weight", "transformer.wpe.weight",
        "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_proj.weight", "transformer.h.0.ln_2.weight",
        "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight",
        "transformer.ln_f.weight", "lm_head.weight"]


def test_gpt_initialisation_follows_nanogpt():
    model = tiny_gpt(n_embd=64, n_layer=8, n_head=4, vocab_size=200, block_size=32)
    state = model.state_dict()
    assert np.std(state["transformer.wte.weight"]) == pytest.approx(0.02, rel=0.1)
    assert np.std(state["transformer.h.0.mlp.c_fc.weight"]) == pytest.approx(0.02, rel=0.1)
    assert np.std(state["transformer.h.0.mlp.c_proj.weight"]) == pytest.approx(
        0.02 / np.sqrt(2 * 8), rel=0.1)
    assert np.all(state["transformer.h.3.attn.c_attn.bias"] == 0)
    assert np.all(state["transformer.h.3.ln_2.weight"] == 1)


def test_gpt_tied_weights_are_one_parameter_with_one_gradient():
    model = tiny_gpt().double()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert sum(p is model.lm_head.weight for p in model.parameters()) == 1
    untied = copy.deepcopy(model)
    untied.lm_head.weight = nn.Parameter(tinyllm.tensor(untied.lm_head.weight.data,
                                                        dtype=np.float64))
    idx, targets = random_ids(0, (2, 6)), random_ids(1, (2, 6))

    model(idx, targets)[1].backward()
    untied(idx, targets)[1].backward()
    # The shared matrix gets the sum of its gradients as embedding and as output layer.
    expected = untied.transformer.wte.weight.grad + untied.lm_head.weight.grad
    np.testing.assert_allclose(model.lm_head.weight.grad, expected, rtol=1e-12, atol=1e-15)


def test_gpt_num_parameters_counts_the_tied_matrix_once():
    model = tiny_gpt()
    total = sum(v.size for k, v in model.state_dict().items() if k != "lm_head.weight")
    assert model.num_parameters(non_embedding=False) == total
    assert model.num_parameters() == total - 6 * 8          # without wpe (block 6 x n_embd 8)


def test_gpt_configure_optimizers_decays_only_matrices():
    model = tiny_gpt()
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3,
                                           betas=(0.9, 0.95))
    decay, no_decay = optimizer.param_groups
    names = {id(p): name for name, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert sorted(names[id(p)].rsplit(".", 2)[-2] for p in decay["params"]) == sorted(
        ["wte", "wpe"] + ["c_attn", "c_proj", "c_fc", "c_proj"] * 2)
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert decay["lr"] == 1e-3 and decay["betas"] == (0.9, 0.95)


# ----- forward ------------------------------------------------------------------------------
def test_gpt_forward_shapes_with_and_without_targets():
    model = tiny_gpt()
    idx = random_ids(0, (3, 5))
    logits, loss = model(idx, random_ids(1, (3, 5)))
    assert logits.shape == (3, 5, 11) and loss.shape == ()
    last, none = model(idx)
    assert none is None and last.shape == (3, 1, 11)
    np.testing.assert_allclose(last.data[:, 0], logits.data[:, -1], rtol=1e-6, atol=1e-7)


def test_gpt_loss_is_mean_cross_entropy_skipping_targets_of_minus_one():
    model = tiny_gpt().double()
    idx, targets = random_ids(0, (2, 6)), random_ids(1, (2, 6))
    targets[1, 3:] = -1
    logits, loss = model(idx, targets)
    logp = log_softmax(logits.data)
    kept = targets != -1
    expected = -np.mean(np.take_along_axis(logp, np.where(kept, targets, 0)[..., None],
                                           axis=-1)[..., 0][kept])
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_gpt_is_causal_at_every_position():
    model = tiny_gpt().double()
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 11, size=(2, 6))
    targets = np.zeros_like(idx)
    logits = model(idx, targets)[0].data
    for t in range(5):
        changed = idx.copy()
        changed[:, t + 1:] = rng.integers(0, 11, size=(2, 5 - t))
        changed[:, t + 1] = (idx[:, t + 1] + 1) % 11           # surely different
        new_logits = model(changed, targets)[0].data
        np.testing.assert_array_equal(new_logits[:, :t + 1], logits[:, :t + 1])
        assert not np.allclose(new_logits[:, t + 1], logits[:, t + 1])


def test_gpt_gradcheck_whole_model():
    model = tiny_gpt()
    idx, targets = random_ids(0, (2, 6)), random_ids(1, (2, 6))
    targets[0, 0] = -1
    assert tinyllm.gradcheck_module(model, lambda: model(idx, targets)[1], atol=ATOL,
                                    rtol=RTOL, n_samples=20)


def test_gpt_gradcheck_whole_model_without_biases():
    model = tiny_gpt(bias=False, n_layer=1)
    idx, targets = random_ids(2, (2, 4)), random_ids(3, (2, 4))
    assert tinyllm.gradcheck_module(model, lambda: model(idx, targets)[1], atol=ATOL,
                                    rtol=RTOL, n_samples=10)


def test_gpt_dropout_acts_in_training_mode_only():
    model = tiny_gpt(dropout=0.5)
    idx, targets = random_ids(0, (2, 6)), random_ids(1, (2, 6))
    first, second = model(idx, targets)[0].data, model(idx, targets)[0].data
    assert not np.allclose(first, second)
    model.eval()
    np.testing.assert_array_equal(model(idx, targets)[0].data, model(idx, targets)[0].data)


def test_gpt_overfits_a_tiny_batch():
    model = tiny_gpt(block_size=8, n_embd=16)
    idx, targets = random_ids(0, (2, 8)), random_ids(1, (2, 8))
    optimizer = model.configure_optimizers(weight_decay=0.0, learning_rate=1e-2,
                                           betas=(0.9, 0.99))
    for _ in range(150):
        logits, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


# ----- generation ---------------------------------------------------------------------------
def test_gpt_generate_shape_dtype_and_prompt():
    model = tiny_gpt().eval()
    prompt = random_ids(0, (2, 3))
    out = model.generate(prompt, 9)           # longer than block_size: the context is cropped
    assert out.shape == (2, 12) and out.dtype == np.int64
    np.testing.assert_array_equal(out.data[:, :3], prompt)
    assert out.data.min() >= 0 and out.data.max() < 11


def test_gpt_generate_is_repeatable_with_a_seed_or_a_generator():
    model = tiny_gpt().eval()
    prompt = random_ids(0, (3, 2))
    tinyllm.manual_seed(5)
    a = model.generate(prompt, 6, top_k=5).data
    tinyllm.manual_seed(5)
    b = model.generate(prompt, 6, top_k=5).data
    c = model.generate(prompt, 6, top_k=5, generator=np.random.default_rng(7)).data
    d = model.generate(prompt, 6, top_k=5, generator=np.random.default_rng(7)).data
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, d)


def test_gpt_generate_with_temperature_zero_is_greedy():
    model = tiny_gpt().eval()
    idx = random_ids(0, (2, 2))
    out = model.generate(idx, 7, temperature=0).data
    for step in range(7):           # each new token is the argmax given the (cropped) context
        context = out[:, max(0, 2 + step - 6):2 + step]
        logits = model(context)[0].data[:, -1]
        np.testing.assert_array_equal(out[:, 2 + step], np.argmax(logits, axis=-1))
    np.testing.assert_array_equal(model.generate(idx, 7, top_k=1).data, out)
    np.testing.assert_array_equal(model.generate(idx, 7, top_p=1e-9).data, out)


def test_gpt_generate_checks_its_prompt():
    model = tiny_gpt()
    with pytest.raises(IndexError, match="token id 11"):
        model.generate([[1, 11]], 2)
    with pytest.raises(ValueError, match="temperature"):
        model.generate([[1, 2]], 2, temperature=-1.0)


# ----- sampling -----------------------------------------------------------------------------
def test_top_k_filter_keeps_the_k_largest_logits():
    logits = np.array([[0.5, 3.0, -1.0, 2.0], [1.0, 0.0, 4.0, 4.5]])
    out = top_k_filter(logits, 2)
    np.testing.assert_array_equal(np.isfinite(out), [[False, True, False, True],
                                                     [False, False, True, True]])
    np.testing.assert_array_equal(out[np.isfinite(out)], [3.0, 2.0, 4.0, 4.5])


@pytest.mark.parametrize("p, kept", [(0.3, [1]), (0.5, [1]), (0.6, [1, 0]), (0.75, [1, 0]),
                                     (0.8, [1, 0, 3]), (0.95, [1, 0, 3, 2]), (1.0, [1, 0, 3, 2])])
def test_top_p_filter_keeps_the_smallest_set_reaching_p(p, kept):
    # Most probable first: tokens 1, 0, 3, 2 with cumulative probabilities 0.5, 0.75, 0.9, 1.
    probs = np.array([[0.25, 0.5, 0.1, 0.15]])
    out = top_p_filter(probs, p)
    expected = np.zeros(4)
    expected[kept] = probs[0, kept] / probs[0, kept].sum()
    np.testing.assert_allclose(out[0], expected, rtol=1e-12)


def test_sampling_draws_only_from_the_kept_tokens_in_proportion():
    logits = np.log(np.array([[0.25, 0.5, 0.1, 0.15]] * 20000))
    ids = sample_next_token(logits, top_p=0.6, generator=np.random.default_rng(0))
    assert set(np.unique(ids)) == {0, 1}
    assert np.mean(ids == 1) == pytest.approx(0.5 / 0.75, abs=0.02)
    ids = sample_next_token(logits, temperature=1.0, generator=np.random.default_rng(1))
    np.testing.assert_allclose(np.bincount(ids, minlength=4) / 20000, [0.25, 0.5, 0.1, 0.15],
                               atol=0.02)


def test_sampling_rejects_bad_options():
    logits = np.zeros((1, 3))
    with pytest.raises(ValueError, match="top_k"):
        sample_next_token(logits, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        sample_next_token(logits, top_p=1.5)


# ----- bad input ----------------------------------------------------------------------------
def test_gpt_rejects_a_sequence_longer_than_block_size():
    model = tiny_gpt(block_size=64, n_layer=1)
    with pytest.raises(ValueError, match="sequence length 80 exceeds block_size 64"):
        model(np.zeros((1, 80), dtype=np.int64))


@pytest.mark.parametrize("idx", [np.zeros(4, dtype=np.int64), np.zeros((1, 2, 3), dtype=int)])
def test_gpt_rejects_input_that_is_not_a_batch_of_sequences(idx):
    with pytest.raises(ValueError, match=r"GPT: idx must be a \(B, T\) batch"):
        tiny_gpt()(idx)


def test_gpt_rejects_float_token_ids():
    with pytest.raises(TypeError, match="integer token ids"):
        tiny_gpt()(np.zeros((1, 3)))


@pytest.mark.parametrize("bad", [11, -1])
def test_gpt_rejects_token_ids_outside_the_vocabulary(bad):
    with pytest.raises(IndexError, match=r"token id %d in idx is outside the vocabulary \[0, "
                                         r"11\)" % bad):
        tiny_gpt()(np.array([[1, 2, bad]]))


def test_gpt_rejects_targets_of_another_shape():
    with pytest.raises(ValueError, match="targets of shape"):
        tiny_gpt()(np.ones((2, 3), dtype=int), np.ones((2, 4), dtype=int))


def test_gpt_rejects_the_state_dict_of_another_architecture():
    tinyllm.manual_seed(0)
    lstm = LSTMLanguageModel(vocab_size=11, embedding_dim=8, hidden_size=8)
    with pytest.raises(RuntimeError, match="missing keys: transformer.wte.weight.*\n.*"
                                       "unexpected keys: embedding.weight"):
        tiny_gpt().load_state_dict(lstm.state_dict())


def test_gpt_rejects_the_state_dict_of_a_gpt_of_other_sizes():
    bigger = tiny_gpt(n_embd=12).state_dict()
    with pytest.raises(RuntimeError, match=r"transformer.wte.weight: the checkpoint has shape "
                                       r"\(11, 12\), the module has shape \(11, 8\)"):
        tiny_gpt().load_state_dict(bigger)
