"""The Transformer layers and stacks, and the positional encodings: PyTorch's submodule names,
float64 gradient checks (inputs and every parameter; post- and pre-norm; relu and gelu),
padding and causality, deep-copied stacks, the causal mask helper, sinusoidal tables against a
NumPy loop, and the errors for bad input."""

import math

import numpy as np
import pytest

import tinyllm
import tinyllm.nn as nn
from conftest import check_module_grad, ATOL, RTOL, check_grad, leaf, rng_for


# ----- helpers --------------------------------------------------------------------------------
def padding_mask(lengths, S):
    """(B, S) boolean, True at the padding positions beyond each sequence's length."""
    return np.arange(S)[None, :] >= np.asarray(lengths)[:, None]


def encoder_layer(**options):
    options = {"dim_feedforward": 6, "dropout": 0.0, "batch_first": True, **options}
    return nn.TransformerEncoderLayer(4, 2, **options)


def decoder_layer(**options):
    options = {"dim_feedforward": 6, "dropout": 0.0, "batch_first": True, **options}
    return nn.TransformerDecoderLayer(4, 2, **options)


# ----- encoder and decoder layers -------------------------------------------------------------
def test_encoder_layer_submodules_have_pytorch_names():
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    assert [name for name, _ in layer.named_children()] == [
        "self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"]
    assert {name: p.shape for name, p in layer.named_parameters()} == {
        "self_attn.in_proj_weight": (24, 8), "self_attn.in_proj_bias": (24,),
        "self_attn.out_proj.weight": (8, 8), "self_attn.out_proj.bias": (8,),
        "linear1.weight": (16, 8), "linear1.bias": (16,), "linear2.weight": (8, 16),
        "linear2.bias": (8,), "norm1.weight": (8,), "norm1.bias": (8,), "norm2.weight": (8,),
        "norm2.bias": (8,)}
    assert layer.dropout.p == 0.1 and layer.self_attn.dropout == 0.1


def test_decoder_layer_submodules_have_pytorch_names():
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, bias=False)
    assert [name for name, _ in layer.named_children()] == [
        "self_attn", "multihead_attn", "linear1", "dropout", "linear2", "norm1", "norm2",
        "norm3", "dropout1", "dropout2", "dropout3"]
    assert not any(name.endswith("bias") for name in layer.state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_gradcheck(norm_first, activation):
    rng = rng_for(0)
    layer = encoder_layer(norm_first=norm_first, activation=activation)
    x = leaf(rng.normal(size=(2, 3, 4)))
    mask = np.array([[False, True, False], [False, False, True], [False, False, False]])
    kpm = padding_mask([3, 2], 3)
    check_module_grad(layer, lambda: layer(x, src_mask=mask, src_key_padding_mask=kpm), x)


def test_encoder_layer_gradcheck_causal_in_eval_mode_with_dropout():
    rng = rng_for(1)
    layer = encoder_layer(dropout=0.5, batch_first=False).eval()
    x = leaf(rng.normal(size=(3, 2, 4)))
    check_module_grad(layer, lambda: layer(x, is_causal=True), x)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradcheck(norm_first):
    rng = rng_for(2)
    layer = decoder_layer(norm_first=norm_first, activation="gelu")
    tgt, memory = leaf(rng.normal(size=(2, 3, 4))), leaf(rng.normal(size=(2, 4, 4)))
    memory_kpm = padding_mask([4, 2], 4)
    check_module_grad(layer, lambda: layer(tgt, memory, tgt_is_causal=True,
                                           memory_key_padding_mask=memory_kpm), tgt, memory)


def test_post_norm_and_pre_norm_compose_the_sublayers_as_documented():
    rng = rng_for(3)
    x = leaf(rng.normal(size=(2, 3, 4)))
    for norm_first in (False, True):
        layer = encoder_layer(norm_first=norm_first).double()

        def attend(h):
            return layer.self_attn(h, h, h, need_weights=False)[0]

        def ffn(h):
            return layer.linear2(layer.linear1(h).relu())

        if norm_first:
            y = x + attend(layer.norm1(x))
            expected = y + ffn(layer.norm2(y))
        else:
            y = layer.norm1(x + attend(x))
            expected = layer.norm2(y + ffn(y))
        np.testing.assert_allclose(layer(x).data, expected.data, rtol=1e-13)


def test_encoder_layer_accepts_a_callable_activation():
    rng = rng_for(4)
    x = leaf(rng.normal(size=(2, 3, 4)))
    named = encoder_layer(activation="gelu").double()
    custom = encoder_layer(activation=lambda h: h.gelu()).double()
    custom.load_state_dict(named.state_dict())
    np.testing.assert_array_equal(named(x).data, custom(x).data)


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: unknown activation 'swish'"
                                         r"; use one of 'relu', 'gelu' or a callable"):
        nn.TransformerEncoderLayer(4, 2, activation="swish")
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer: unknown activation"):
        nn.TransformerDecoderLayer(4, 2, activation="tanh")


def test_layers_reject_bad_input_shapes_naming_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: expected src of shape "
                                         r"\(B, T, 4\) or unbatched \(T, 4\), got \(2, 3, 5\)"):
        encoder_layer()(tinyllm.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer: expected memory of shape "
                                         r"\(B, T, 4\).*got \(4,\)"):
        decoder_layer()(tinyllm.randn(2, 3, 4), tinyllm.randn(4))
    with pytest.raises(ValueError, match="embed_dim=6 must be divisible by num_heads=4"):
        nn.TransformerEncoderLayer(6, 4)


def test_encoder_layer_unbatched_equals_a_batch_of_one():
    rng = rng_for(5)
    layer = encoder_layer().double()
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(layer(leaf(x)).data, layer(leaf(x[None])).data[0], rtol=1e-13)


# ----- stacks ---------------------------------------------------------------------------------
def test_encoder_stack_holds_independent_deep_copies():
    layer = encoder_layer()
    stack = nn.TransformerEncoder(layer, num_layers=3, norm=nn.LayerNorm(4))
    assert len(stack.layers) == 3
    assert stack.num_parameters() == 3 * layer.num_parameters() + 8
    first, second = stack.layers[0], stack.layers[1]
    assert first is not layer and first.linear1.weight is not second.linear1.weight
    np.testing.assert_array_equal(first.linear1.weight.data, layer.linear1.weight.data)
    with tinyllm.no_grad():
        first.linear1.weight.add_(1.0)
    assert not np.allclose(first.linear1.weight.data, second.linear1.weight.data)
    assert not np.allclose(first.linear1.weight.data, layer.linear1.weight.data)
    assert "layers.2.self_attn.in_proj_weight" in stack.state_dict()


def test_encoder_stack_applies_each_layer_then_the_norm():
    rng = rng_for(6)
    stack = nn.TransformerEncoder(encoder_layer(), 2, norm=nn.LayerNorm(4)).double()
    for layer in stack.layers:             # make the copies differ
        with tinyllm.no_grad():
            layer.linear2.weight.add_(rng.normal(size=layer.linear2.weight.shape))
    x = leaf(rng.normal(size=(2, 3, 4)))
    kpm = padding_mask([3, 2], 3)
    expected = x
    for layer in stack.layers:
        expected = layer(expected, src_key_padding_mask=kpm)
    expected = stack.norm(expected)
    np.testing.assert_array_equal(stack(x, src_key_padding_mask=kpm).data, expected.data)


def test_encoder_stack_gradcheck():
    rng = rng_for(7)
    stack = nn.TransformerEncoder(encoder_layer(norm_first=True), 2, norm=nn.LayerNorm(4))
    x = leaf(rng.normal(size=(2, 3, 4)))
    check_module_grad(stack, lambda: stack(x, src_key_padding_mask=padding_mask([3, 1], 3)), x)


def test_decoder_stack_gradcheck():
    rng = rng_for(8)
    stack = nn.TransformerDecoder(decoder_layer(), 2)
    tgt, memory = leaf(rng.normal(size=(1, 3, 4))), leaf(rng.normal(size=(1, 2, 4)))
    check_module_grad(stack, lambda: stack(tgt, memory, tgt_is_causal=True), tgt, memory)


def test_encoder_outputs_at_real_positions_ignore_padding():
    rng = rng_for(9)
    stack = nn.TransformerEncoder(encoder_layer(), 2).double()
    x = rng.normal(size=(2, 5, 4))
    changed = x.copy()
    changed[1, 3:] = rng.normal(size=(2, 4))
    kpm = padding_mask([5, 3], 5)
    a = stack(leaf(x), src_key_padding_mask=kpm).data
    b = stack(leaf(changed), src_key_padding_mask=kpm).data
    np.testing.assert_allclose(a[1, :3], b[1, :3], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(a[0], b[0])


def test_decoder_outputs_at_step_t_ignore_later_targets():
    rng = rng_for(10)
    stack = nn.TransformerDecoder(decoder_layer(norm_first=True), 2).double()
    memory = leaf(rng.normal(size=(2, 4, 4)))
    tgt = rng.normal(size=(2, 5, 4))
    changed = tgt.copy()
    changed[:, 2:] = rng.normal(size=(2, 3, 4))
    a = stack(leaf(tgt), memory, tgt_is_causal=True).data
    b = stack(leaf(changed), memory, tgt_is_causal=True).data
    np.testing.assert_allclose(a[:, :2], b[:, :2], rtol=1e-12, atol=1e-14)
    assert not np.allclose(a[:, 2:], b[:, 2:])


def test_generate_square_subsequent_mask():
    mask = nn.generate_square_subsequent_mask(4)
    expected = np.where(np.arange(4)[None, :] > np.arange(4)[:, None], -np.inf, 0.0)
    np.testing.assert_array_equal(mask.data, expected)
    assert mask.dtype == tinyllm.get_default_dtype()
    assert nn.generate_square_subsequent_mask(2, dtype=np.float64).dtype == np.float64


# ----- positional encodings -------------------------------------------------------------------
@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_table_matches_the_formula(d_model):
    encoding = nn.SinusoidalPositionalEncoding(d_model, max_len=12).double()
    expected = np.zeros((12, d_model))
    for pos in range(12):
        for i in range(d_model):
            angle = pos / 10000 ** ((i - i % 2) / d_model)
            expected[pos, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(encoding.pe.data, expected, rtol=1e-12, atol=1e-14)


def test_sinusoidal_encoding_adds_the_table_for_the_input_length():
    rng = rng_for(11)
    encoding = nn.SinusoidalPositionalEncoding(4, max_len=10).double()
    x = rng.normal(size=(2, 6, 4))
    np.testing.assert_array_equal(encoding(leaf(x)).data, x + encoding.pe.data[:6])
    np.testing.assert_array_equal(encoding(leaf(x[0])).data, x[0] + encoding.pe.data[:6])
    check_grad(encoding, leaf(x))
    assert "pe" not in encoding.state_dict()          # a non-persistent buffer
    assert len(list(encoding.parameters())) == 0


def test_learned_positional_embedding_adds_one_trained_row_per_position():
    rng = rng_for(12)
    tinyllm.manual_seed(0)
    embedding = nn.LearnedPositionalEmbedding(50, 40)
    assert embedding.weight.shape == (50, 40)
    assert abs(embedding.weight.data.std() - 1) < 0.05          # N(0, 1), as nn.Embedding
    x = leaf(rng.normal(size=(2, 3, 40)))
    embedding.double()
    np.testing.assert_array_equal(embedding(x).data, x.data + embedding.weight.data[:3])
    small = nn.LearnedPositionalEmbedding(5, 2)
    x_small = leaf(rng.normal(size=(2, 3, 2)))
    check_module_grad(small, lambda: small(x_small), x_small)
    np.testing.assert_array_equal(small.weight.grad[3:], 0)     # positions never used
    assert list(small.state_dict()) == ["weight"]


@pytest.mark.parametrize("cls, args", [(nn.SinusoidalPositionalEncoding, (4, 5)),
                                       (nn.LearnedPositionalEmbedding, (5, 4))])
def test_positional_encodings_reject_long_sequences_and_wrong_sizes(cls, args):
    layer = cls(*args)
    with pytest.raises(ValueError, match=r"%s: the sequence has length 6 but max_len is 5"
                       % cls.__name__):
        layer(tinyllm.randn(2, 6, 4))
    with pytest.raises(ValueError, match=r"%s: expected input of shape \(B, T, 4\) or "
                                         r"\(T, 4\), got \(2, 3, 3\)" % cls.__name__):
        layer(tinyllm.randn(2, 3, 3))
