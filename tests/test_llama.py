"""The Llama model: Hugging Face's parameter names, forward values against transformers'
LlamaForCausalLM (random weights, nothing downloaded), both RoPE layouts, a float64 gradient
check of the whole model, training, tied embeddings and the errors for bad input."""

import numpy as np
import pytest

import tinyllm
from conftest import check_module_grad
from tinyllm.models import Llama, LlamaConfig

SMALL = dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=24)


def small_llama(seed=0, **changes):
    tinyllm.manual_seed(seed)
    return Llama(LlamaConfig(**dict(SMALL, **changes)))


def test_state_dict_keys_are_hugging_face_llama_for_causal_lm_ones():
    model = small_llama()
    layer = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
             "post_attention_layernorm"]
    expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    expected |= {"model.layers.%d.%s.weight" % (i, name) for i in range(2) for name in layer}
    state = model.state_dict()
    assert set(state) == expected
    assert state["model.layers.0.self_attn.k_proj.weight"].shape == (16, 32)   # 2 kv heads of 8
    assert state["model.layers.1.mlp.gate_proj.weight"].shape == (48, 32)


def test_config_fills_hugging_face_defaults_and_rejects_bad_sizes():
    c = LlamaConfig(hidden_size=64, num_attention_heads=4)
    assert c.num_key_value_heads == 4 and c.head_dim == 16 and c.block_size == 2048
    with pytest.raises(ValueError, match="num_key_value_heads=3"):
        LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="rope_layout"):
        LlamaConfig(rope_layout="pairs")


def test_tied_embeddings_share_one_parameter_and_load_without_lm_head():
    model = small_llama(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    state = {k: v.copy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    other = small_llama(seed=1, tie_word_embeddings=True)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.lm_head.weight.data, state["model.embed_tokens.weight"])


def test_forward_shapes_loss_and_errors():
    model = small_llama()
    idx = np.random.default_rng(0).integers(0, 40, (2, 7))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, 7, 40) and abs(loss.item() - np.log(40)) < 0.5
    last, none = model(idx)
    assert last.shape == (2, 1, 40) and none is None
    np.testing.assert_allclose(last.data[:, 0], logits.data[:, -1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings 24"):
        model(np.zeros((1, 25), dtype=np.int64))
    with pytest.raises(IndexError, match="outside the vocabulary"):
        model(np.array([[40]]))
    with pytest.raises(ValueError, match="targets of shape"):
        model(idx, idx[:, :3])


def test_whole_model_gradcheck():
    model = small_llama(vocab_size=7, hidden_size=8, intermediate_size=12, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=1)
    idx = np.array([[1, 4, 2, 6], [3, 0, 5, 1]])
    check_module_grad(model, lambda: model(idx, idx)[1])


def test_training_steps_lower_the_loss():
    model = small_llama()
    opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95))
    idx = np.tile(np.arange(12) % 5, (2, 1))
    losses = []
    for _ in range(30):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


# ----- parity with transformers' LlamaForCausalLM ----------------------------------------------
def hugging_face_llama(model, tie=False):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    c = model.config
    config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, num_key_value_heads=c.num_key_value_heads,
        max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
        rope_theta=c.rope_theta, tie_word_embeddings=tie, attn_implementation="eager")
    theirs = transformers.LlamaForCausalLM(config).double().eval()
    state = {k: torch.tensor(v, dtype=torch.float64) for k, v in model.state_dict().items()}
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return torch, theirs


def assert_logits_close(ours, theirs, tolerance):
    error = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
    assert error < tolerance, "logits differ by %.3g of their largest value" % error


@pytest.mark.parametrize("tie", [False, True])
def test_logits_and_loss_match_transformers_llama(tie):
    """Weights of size 0.2 (not 0.02) so that attention and positions shape the logits.
    transformers runs RMSNorm and the RoPE angles in float32 whatever the model's dtype, so
    the float64 models agree to float32 rounding; the interleaved layout, a different model,
    is far off (the comparison can fail)."""
    model = small_llama(rope_theta=500.0, tie_word_embeddings=tie, initializer_range=0.2)
    model.double()
    torch, theirs = hugging_face_llama(model, tie)
    idx = np.random.default_rng(1).integers(0, 40, (2, 9))
    out = theirs(torch.tensor(idx), labels=torch.tensor(idx))
    expected = out.logits.detach().numpy()
    logits, _ = model(idx, idx)
    assert_logits_close(logits.data, expected, 1e-5)
    other = small_llama(rope_theta=500.0, tie_word_embeddings=tie, rope_layout="interleaved")
    other.double().load_state_dict(model.state_dict())
    with pytest.raises(AssertionError):
        assert_logits_close(other(idx, idx)[0].data, expected, 1e-2)
    _, shifted = model(idx[:, :-1], idx[:, 1:])
    assert abs(shifted.item() - out.loss.item()) < 1e-6 * out.loss.item()   # float32 loss


def test_interleaved_layout_reads_meta_weights_permuted_into_hugging_face_layout():
    """Meta's checkpoints pair features (2i, 2i+1); Hugging Face's conversion script reorders the
    rows of q_proj and k_proj in each head (evens, then odds) for its half-split layout.
    The interleaved model on Meta's rows equals the half model on the permuted rows."""
    meta = small_llama(rope_layout="interleaved").double()
    half = small_llama(seed=5).double()
    D = meta.config.head_dim
    perm = np.concatenate([np.arange(0, D, 2), np.arange(1, D, 2)])
    state = {}
    for name, value in meta.state_dict().items():
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = value.reshape(-1, D, value.shape[1])
            value = heads[:, perm].reshape(value.shape)
        state[name] = value.copy()
    half.load_state_dict(state)
    idx = np.random.default_rng(2).integers(0, 40, (1, 10))
    np.testing.assert_allclose(meta(idx, idx)[0].data, half(idx, idx)[0].data, rtol=1e-10,
                               atol=1e-12)
