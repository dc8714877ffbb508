"""Parity of the sequence layers with PyTorch: LSTMCell, LSTM, MultiheadAttention and the
Transformer layers and stacks, in float64, with PyTorch's weights loaded through
``load_state_dict``. Outputs, attention weights and the gradients with respect to the inputs and
to every parameter (matched by name) must agree to a relative error under 1e-6."""

import numpy as np
import pytest

import tinyllm
import tinyllm.nn as nn

torch = pytest.importorskip("torch")

# PyTorch deprecates mixing a boolean key_padding_mask with a float attn_mask; tinyllm allows it.
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")

TOLERANCE = 1e-6


# ----- helpers --------------------------------------------------------------------------------
def pair(array):
    """The same float64 values as a tinyllm leaf and a torch leaf, both requiring grad."""
    return (tinyllm.tensor(array, requires_grad=True, dtype=np.float64),
            torch.tensor(array, dtype=torch.float64, requires_grad=True))


def copy_weights(ours, theirs):
    """Load the torch module's state_dict into ours (in float64)."""
    ours.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def assert_close(ours, theirs, what):
    a = ours.data if isinstance(ours, tinyllm.Tensor) else np.asarray(ours)
    b = theirs.detach().numpy() if torch.is_tensor(theirs) else np.asarray(theirs)
    assert a.shape == b.shape, "%s: shape %s, PyTorch's %s" % (what, a.shape, b.shape)
    error = tinyllm.rel_error(a, b)
    assert error < TOLERANCE, "%s: relative error %.3g against PyTorch" % (what, error)


def backward_both(our_outputs, their_outputs, seed=0):
    """Backpropagate L = sum_k sum(output_k * r_k) with the same random r_k on both sides."""
    rng = np.random.default_rng(seed)
    ours = theirs = 0
    for a, b in zip(our_outputs, their_outputs):
        assert_close(a, b, "output")
        r = rng.standard_normal(tuple(b.shape))
        ours = ours + (a * tinyllm.tensor(r, dtype=np.float64)).sum()
        theirs = theirs + (b * torch.tensor(r)).sum()
    ours.backward()
    theirs.backward()


def assert_grads_match(our_module, their_module, our_inputs=(), their_inputs=()):
    for i, (a, b) in enumerate(zip(our_inputs, their_inputs)):
        assert_close(a.grad, b.grad, "gradient of input %d" % i)
    theirs = dict(their_module.named_parameters())
    ours = dict(our_module.named_parameters())
    assert sorted(ours) == sorted(theirs)
    for name, param in ours.items():
        assert_close(param.grad, theirs[name].grad, "gradient of %s" % name)


def seeded(seed):
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


# ----- LSTM -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_lstm_cell_matches_torch(bias, with_state):
    rng = seeded(0)
    theirs = torch.nn.LSTMCell(3, 4, bias=bias).double()
    ours = nn.LSTMCell(3, 4, bias=bias)
    copy_weights(ours, theirs)
    x, tx = pair(rng.standard_normal((2, 3)))
    inputs = [(x, tx)]
    if with_state:
        inputs += [pair(rng.standard_normal((2, 4))), pair(rng.standard_normal((2, 4)))]
        our_out = ours(x, (inputs[1][0], inputs[2][0]))
        their_out = theirs(tx, (inputs[1][1], inputs[2][1]))
    else:
        our_out, their_out = ours(x), theirs(tx)
    backward_both(our_out, their_out)
    assert_grads_match(ours, theirs, [a for a, _ in inputs], [b for _, b in inputs])


def test_lstm_cell_unbatched_matches_torch():
    rng = seeded(1)
    theirs = torch.nn.LSTMCell(3, 4).double()
    ours = nn.LSTMCell(3, 4)
    copy_weights(ours, theirs)
    x, tx = pair(rng.standard_normal(3))
    h, th = pair(rng.standard_normal(4))
    c, tc = pair(rng.standard_normal(4))
    backward_both(ours(x, (h, c)), theirs(tx, (th, tc)))
    assert_grads_match(ours, theirs, [x, h, c], [tx, th, tc])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_two_layers_with_initial_state_matches_torch(batch_first, bidirectional):
    rng = seeded(2)
    D = 2 if bidirectional else 1
    theirs = torch.nn.LSTM(3, 4, num_layers=2, batch_first=batch_first,
                           bidirectional=bidirectional).double()
    ours = nn.LSTM(3, 4, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
    copy_weights(ours, theirs)
    x, tx = pair(rng.standard_normal((2, 5, 3) if batch_first else (5, 2, 3)))
    h0, th0 = pair(rng.standard_normal((2 * D, 2, 4)))
    c0, tc0 = pair(rng.standard_normal((2 * D, 2, 4)))
    out, (h_n, c_n) = ours(x, (h0, c0))
    t_out, (t_h_n, t_c_n) = theirs(tx, (th0, tc0))
    backward_both([out, h_n, c_n], [t_out, t_h_n, t_c_n])
    assert_grads_match(ours, theirs, [x, h0, c0], [tx, th0, tc0])


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_unbatched_without_state_matches_torch(bias):
    rng = seeded(3)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bias=bias).double()
    ours = nn.LSTM(3, 4, num_layers=2, bias=bias)
    copy_weights(ours, theirs)
    x, tx = pair(rng.standard_normal((4, 3)))
    out, (h_n, c_n) = ours(x)
    t_out, (t_h_n, t_c_n) = theirs(tx)
    backward_both([out, h_n, c_n], [t_out, t_h_n, t_c_n])
    assert_grads_match(ours, theirs, [x], [tx])


def test_lstm_dropout_in_eval_mode_matches_torch():
    rng = seeded(4)
    theirs = torch.nn.LSTM(3, 4, num_layers=3, dropout=0.5).double().eval()
    ours = nn.LSTM(3, 4, num_layers=3, dropout=0.5).eval()
    copy_weights(ours, theirs)
    x, tx = pair(rng.standard_normal((4, 2, 3)))
    backward_both([ours(x)[0]], [theirs(tx)[0]])
    assert_grads_match(ours, theirs, [x], [tx])


# ----- MultiheadAttention -------------------------------------------------------------------
def bool_mask(rng, shape):
    """A random boolean mask in MultiheadAttention's convention (True = blocked) that leaves
    every query at least one key (column 0 always open)."""
    mask = rng.random(shape) < 0.4
    mask[..., 0] = False
    return mask


def padding_mask(lengths, S):
    """(B, S) boolean, True at the padding positions beyond each sequence's length."""
    return np.arange(S)[None, :] >= np.asarray(lengths)[:, None]


def run_mha(ours, theirs, inputs, **options):
    """Call both modules on the same (query, key, value) and masks; compare everything."""
    our_args, their_args = zip(*inputs)
    masks = {}
    for name in ("attn_mask", "key_padding_mask"):
        if name in options:
            value = options.pop(name)
            masks[name] = (value, torch.from_numpy(np.asarray(value)))
    our_out = ours(*our_args, **{k: v[0] for k, v in masks.items()}, **options)
    their_out = theirs(*their_args, **{k: v[1] for k, v in masks.items()}, **options)
    our_list = [our_out[0]] + ([our_out[1]] if our_out[1] is not None else [])
    their_list = [their_out[0]] + ([their_out[1]] if their_out[1] is not None else [])
    assert len(our_list) == len(their_list)
    backward_both(our_list, their_list)
    unique = []
    for ours_input, theirs_input in inputs:
        if all(ours_input is not u for u, _ in unique):
            unique.append((ours_input, theirs_input))
    assert_grads_match(ours, theirs, [a for a, _ in unique], [b for _, b in unique])


def make_mha(seed, *args, **kwargs):
    rng = seeded(seed)
    theirs = torch.nn.MultiheadAttention(*args, **kwargs).double()
    ours = nn.MultiheadAttention(*args, **kwargs)
    copy_weights(ours, theirs)
    return rng, ours, theirs


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("average", [True, False])
def test_mha_self_attention_matches_torch(batch_first, average):
    rng, ours, theirs = make_mha(5, 8, 2, batch_first=batch_first)
    x = pair(rng.standard_normal((2, 4, 8) if batch_first else (4, 2, 8)))
    run_mha(ours, theirs, [x, x, x], average_attn_weights=average)


@pytest.mark.parametrize("kind", ["bool", "float", "per_head"])
def test_mha_attn_mask_and_key_padding_mask_match_torch(kind):
    rng, ours, theirs = make_mha(6, 8, 2, batch_first=True)
    x = pair(rng.standard_normal((2, 4, 8)))
    if kind == "bool":
        attn_mask = bool_mask(rng, (4, 4))
    elif kind == "float":
        attn_mask = rng.standard_normal((4, 4))
    else:
        attn_mask = bool_mask(rng, (2 * 2, 4, 4))
    run_mha(ours, theirs, [x, x, x], attn_mask=attn_mask,
            key_padding_mask=padding_mask([4, 2], 4), average_attn_weights=False)


def test_mha_is_causal_alone_matches_torch_with_the_causal_mask():
    rng, ours, theirs = make_mha(7, 8, 4, batch_first=True)
    x, tx = pair(rng.standard_normal((2, 4, 8)))
    out, weights = ours(x, x, x, is_causal=True)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    t_out, t_weights = theirs(tx, tx, tx, attn_mask=causal, is_causal=True)
    backward_both([out, weights], [t_out, t_weights])
    assert_grads_match(ours, theirs, [x], [tx])


def test_mha_is_causal_with_mask_and_padding_matches_torch():
    rng, ours, theirs = make_mha(8, 8, 2)
    x = pair(rng.standard_normal((4, 2, 8)))
    causal = nn.generate_square_subsequent_mask(4, dtype=np.float64).data
    run_mha(ours, theirs, [x, x, x], attn_mask=causal, is_causal=True,
            key_padding_mask=padding_mask([3, 4], 4))


@pytest.mark.parametrize("bias", [True, False])
def test_mha_cross_attention_matches_torch(bias):
    rng, ours, theirs = make_mha(9, 6, 3, bias=bias)
    q = pair(rng.standard_normal((3, 2, 6)))
    kv = pair(rng.standard_normal((5, 2, 6)))
    run_mha(ours, theirs, [q, kv, kv], key_padding_mask=padding_mask([5, 3], 5))


def test_mha_with_kdim_and_vdim_matches_torch():
    rng, ours, theirs = make_mha(10, 6, 2, kdim=4, vdim=5, batch_first=True)
    q = pair(rng.standard_normal((2, 3, 6)))
    k = pair(rng.standard_normal((2, 4, 4)))
    v = pair(rng.standard_normal((2, 4, 5)))
    run_mha(ours, theirs, [q, k, v], attn_mask=bool_mask(rng, (3, 4)))


def test_mha_unbatched_matches_torch():
    rng, ours, theirs = make_mha(11, 8, 2)
    x = pair(rng.standard_normal((4, 8)))
    run_mha(ours, theirs, [x, x, x], attn_mask=bool_mask(rng, (2, 4, 4)),
            key_padding_mask=np.array([False, False, True, False]),
            average_attn_weights=False)


def test_mha_need_weights_false_matches_torch():
    rng, ours, theirs = make_mha(12, 8, 2, batch_first=True)
    x = pair(rng.standard_normal((2, 3, 8)))
    run_mha(ours, theirs, [x, x, x], need_weights=False, attn_mask=bool_mask(rng, (3, 3)))


# ----- Transformer layers -------------------------------------------------------------------
def make_layers(seed, our_cls, their_cls, *args, **kwargs):
    rng = seeded(seed)
    theirs = their_cls(*args, **kwargs).double()
    ours = our_cls(*args, **kwargs)
    copy_weights(ours, theirs)
    return rng, ours, theirs


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    rng, ours, theirs = make_layers(13, nn.TransformerEncoderLayer,
                                    torch.nn.TransformerEncoderLayer, 8, 2,
                                    dim_feedforward=16, dropout=0.0, activation=activation,
                                    norm_first=norm_first, batch_first=True)
    x, tx = pair(rng.standard_normal((2, 4, 8)))
    mask = bool_mask(rng, (4, 4))
    kpm = padding_mask([4, 3], 4)
    out = ours(x, src_mask=mask, src_key_padding_mask=kpm)
    t_out = theirs(tx, src_mask=torch.from_numpy(mask),
                   src_key_padding_mask=torch.from_numpy(kpm))
    backward_both([out], [t_out])
    assert_grads_match(ours, theirs, [x], [tx])


def test_encoder_layer_in_eval_mode_without_bias_matches_torch():
    rng, ours, theirs = make_layers(14, nn.TransformerEncoderLayer,
                                    torch.nn.TransformerEncoderLayer, 8, 4,
                                    dim_feedforward=12, dropout=0.3, bias=False)
    ours.eval()
    theirs.eval()
    x, tx = pair(rng.standard_normal((3, 2, 8)))
    backward_both([ours(x)], [theirs(tx)])
    assert_grads_match(ours, theirs, [x], [tx])


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_matches_torch(norm_first, activation):
    rng, ours, theirs = make_layers(15, nn.TransformerDecoderLayer,
                                    torch.nn.TransformerDecoderLayer, 8, 2,
                                    dim_feedforward=16, dropout=0.0, activation=activation,
                                    norm_first=norm_first)
    tgt, t_tgt = pair(rng.standard_normal((4, 2, 8)))
    memory, t_memory = pair(rng.standard_normal((5, 2, 8)))
    tgt_mask = nn.generate_square_subsequent_mask(4, dtype=np.float64)
    memory_kpm = padding_mask([5, 3], 5)
    tgt_kpm = padding_mask([4, 2], 4)
    out = ours(tgt, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_kpm,
               memory_key_padding_mask=memory_kpm, tgt_is_causal=True)
    t_out = theirs(t_tgt, t_memory, tgt_mask=torch.from_numpy(tgt_mask.data),
                   tgt_key_padding_mask=torch.from_numpy(tgt_kpm),
                   memory_key_padding_mask=torch.from_numpy(memory_kpm), tgt_is_causal=True)
    backward_both([out], [t_out])
    assert_grads_match(ours, theirs, [tgt, memory], [t_tgt, t_memory])


def test_decoder_layer_memory_mask_matches_torch():
    rng, ours, theirs = make_layers(16, nn.TransformerDecoderLayer,
                                    torch.nn.TransformerDecoderLayer, 6, 3,
                                    dim_feedforward=10, dropout=0.0, batch_first=True)
    tgt, t_tgt = pair(rng.standard_normal((2, 3, 6)))
    memory, t_memory = pair(rng.standard_normal((2, 4, 6)))
    memory_mask = bool_mask(rng, (3, 4))
    out = ours(tgt, memory, memory_mask=memory_mask)
    t_out = theirs(t_tgt, t_memory, memory_mask=torch.from_numpy(memory_mask))
    backward_both([out], [t_out])
    assert_grads_match(ours, theirs, [tgt, memory], [t_tgt, t_memory])


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_stacks_match_torch(norm_first):
    rng = seeded(17)
    options = dict(dim_feedforward=12, dropout=0.0, norm_first=norm_first, batch_first=True)
    their_encoder = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, 2, **options), 2, norm=torch.nn.LayerNorm(8),
        enable_nested_tensor=False).double()
    their_decoder = torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(8, 2, **options), 2,
        norm=torch.nn.LayerNorm(8)).double()
    # torch's copies start equal; make the layers differ so that loading is really tested
    with torch.no_grad():
        for p in list(their_encoder.parameters()) + list(their_decoder.parameters()):
            p.add_(0.1 * torch.randn_like(p))
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, **options), 2,
                                    norm=nn.LayerNorm(8))
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, **options), 2,
                                    norm=nn.LayerNorm(8))
    copy_weights(encoder, their_encoder)
    copy_weights(decoder, their_decoder)

    src, t_src = pair(rng.standard_normal((2, 5, 8)))
    tgt, t_tgt = pair(rng.standard_normal((2, 4, 8)))
    src_kpm = padding_mask([5, 3], 5)
    causal = nn.generate_square_subsequent_mask(4, dtype=np.float64)
    memory = encoder(src, src_key_padding_mask=src_kpm)
    out = decoder(tgt, memory, tgt_mask=causal, memory_key_padding_mask=src_kpm,
                  tgt_is_causal=True)
    t_memory = their_encoder(t_src, src_key_padding_mask=torch.from_numpy(src_kpm))
    t_out = their_decoder(t_tgt, t_memory, tgt_mask=torch.from_numpy(causal.data),
                          memory_key_padding_mask=torch.from_numpy(src_kpm),
                          tgt_is_causal=True)
    backward_both([out], [t_out])
    assert_grads_match(encoder, their_encoder, [src], [t_src])
    assert_grads_match(decoder, their_decoder, [tgt], [t_tgt])
