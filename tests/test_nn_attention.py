"""MultiheadAttention: PyTorch's parameter names, shapes and initialisation; forward values and
attention weights against an independent per-head NumPy loop; float64 gradient checks for the
inputs and every parameter with attn_mask, key_padding_mask and is_causal; the mask convention
(True = may NOT attend); padding and causality; layouts; and the errors for bad input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
import tinyllm.nn as nn
from conftest import check_module_grad, ATOL, FAST, RTOL, leaf, rng_for, seeds


# ----- helpers --------------------------------------------------------------------------------
def numpy_mha(mha, query, key, value, blocked=None):
    """Multi-head attention on sequence-first arrays (L, B, E), one batch entry and one head at
    a time, with ``mha``'s weights. ``blocked`` (B, L, S) is True where attention is not allowed.
    Returns the output (L, B, E) and the per-head weights (B, h, L, S)."""
    E, h = mha.embed_dim, mha.num_heads
    d = E // h
    W, b = mha.in_proj_weight.data, mha.in_proj_bias.data
    Q = query @ W[:E].T + b[:E]
    K = key @ W[E:2 * E].T + b[E:2 * E]
    V = value @ W[2 * E:].T + b[2 * E:]
    L, B, _ = query.shape
    S = key.shape[0]
    heads = np.zeros((L, B, E))
    weights = np.zeros((B, h, L, S))
    for n in range(B):
        for j in range(h):
            cols = slice(j * d, (j + 1) * d)
            scores = Q[:, n, cols] @ K[:, n, cols].T / math.sqrt(d)
            if blocked is not None:
                scores = np.where(blocked[n], -np.inf, scores)
            w = np.exp(scores - scores.max(axis=-1, keepdims=True))
            w /= w.sum(axis=-1, keepdims=True)
            heads[:, n, cols] = w @ V[:, n, cols]
            weights[n, j] = w
    return heads @ mha.out_proj.weight.data.T + mha.out_proj.bias.data, weights


def padding_mask(lengths, S):
    """(B, S) boolean, True at the padding positions beyond each sequence's length."""
    return np.arange(S)[None, :] >= np.asarray(lengths)[:, None]


def random_blocks(rng, shape):
    """A random boolean mask (True = blocked) that leaves key 0 open for every query."""
    mask = rng.random(shape) < 0.4
    mask[..., 0] = False
    return mask


# ----- parameters -----------------------------------------------------------------------------
def test_parameters_have_pytorch_names_shapes_and_init():
    tinyllm.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4)
    shapes = {name: p.shape for name, p in mha.named_parameters()}
    assert shapes == {"in_proj_weight": (48, 16), "in_proj_bias": (48,),
                      "out_proj.weight": (16, 16), "out_proj.bias": (16,)}
    bound = math.sqrt(6 / (16 + 48))                 # Xavier-uniform on (3E, E)
    w = mha.in_proj_weight.data
    assert np.all(np.abs(w) <= bound) and w.max() > 0.9 * bound and w.min() < -0.9 * bound
    np.testing.assert_array_equal(mha.in_proj_bias.data, 0)
    np.testing.assert_array_equal(mha.out_proj.bias.data, 0)
    assert np.all(np.abs(mha.out_proj.weight.data) <= 1 / math.sqrt(16))


def test_kdim_vdim_use_separate_projections_and_bias_false_drops_biases():
    mha = nn.MultiheadAttention(6, 2, kdim=4, vdim=5)
    shapes = {name: p.shape for name, p in mha.named_parameters()}
    assert shapes == {"q_proj_weight": (6, 6), "k_proj_weight": (6, 4), "v_proj_weight": (6, 5),
                      "in_proj_bias": (18,), "out_proj.weight": (6, 6), "out_proj.bias": (6,)}
    assert mha.in_proj_weight is None
    assert sorted(nn.MultiheadAttention(6, 2, bias=False).state_dict()) == \
        ["in_proj_weight", "out_proj.weight"]


# ----- forward values -------------------------------------------------------------------------
@FAST
@given(seed=seeds, L=st.integers(1, 4), S=st.integers(1, 4), B=st.integers(1, 2),
       heads=st.sampled_from([1, 2, 4]), masked=st.booleans())
def test_forward_and_weights_match_numpy(seed, L, S, B, heads, masked):
    rng = rng_for(seed)
    tinyllm.manual_seed(seed)
    mha = nn.MultiheadAttention(8, heads).double()
    with tinyllm.no_grad():
        mha.in_proj_bias.copy_(rng.normal(size=24))
    q, k, v = rng.normal(size=(L, B, 8)), rng.normal(size=(S, B, 8)), rng.normal(size=(S, B, 8))
    attn_mask = random_blocks(rng, (L, S)) if masked else None
    kpm = padding_mask(rng.integers(1, S + 1, size=B), S) if masked else None
    # key 0 stays open for every query (a query with no key left is tested on its own)
    blocked = attn_mask[None] | kpm[:, None, :] if masked else None
    out, weights = mha(leaf(q), leaf(k), leaf(v), attn_mask=attn_mask, key_padding_mask=kpm,
                       average_attn_weights=False)
    expected_out, expected_weights = numpy_mha(mha, q, k, v, blocked)
    np.testing.assert_allclose(out.data, expected_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.data, expected_weights, rtol=1e-10, atol=1e-12)
    averaged = mha(leaf(q), leaf(k), leaf(v), attn_mask=attn_mask, key_padding_mask=kpm)[1]
    np.testing.assert_allclose(averaged.data, expected_weights.mean(axis=1), rtol=1e-10,
                               atol=1e-12)


def test_boolean_true_blocks_and_equals_a_float_minus_inf_mask():
    rng = rng_for(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = leaf(rng.normal(size=(2, 4, 8)))
    blocked = random_blocks(rng, (4, 4))
    out_bool, w_bool = mha(x, x, x, attn_mask=blocked)
    out_float, w_float = mha(x, x, x, attn_mask=np.where(blocked, -np.inf, 0.0))
    np.testing.assert_array_equal(out_bool.data, out_float.data)
    assert np.all(w_bool.data[:, blocked] == 0)
    assert np.all(w_bool.data[:, ~blocked] > 0)


def test_a_float_mask_is_added_to_the_scores():
    rng = rng_for(2)
    mha = nn.MultiheadAttention(4, 1).double()
    x = leaf(rng.normal(size=(3, 1, 4)))
    bias = rng.normal(size=(3, 3))
    plain = mha(x, x, x)[1].data[0]
    biased = mha(x, x, x, attn_mask=bias)[1].data[0]
    # softmax(s + bias) is proportional to softmax(s) * exp(bias), row by row
    expected = plain * np.exp(bias)
    np.testing.assert_allclose(biased, expected / expected.sum(-1, keepdims=True), rtol=1e-12)


def test_is_causal_equals_the_square_subsequent_mask():
    rng = rng_for(3)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = leaf(rng.normal(size=(2, 5, 8)))
    causal = mha(x, x, x, is_causal=True)
    with_mask = mha(x, x, x, attn_mask=nn.generate_square_subsequent_mask(5, dtype=np.float64))
    boolean = mha(x, x, x, attn_mask=np.triu(np.ones((5, 5), dtype=bool), 1))
    for other in (with_mask, boolean):
        np.testing.assert_array_equal(causal[0].data, other[0].data)
        np.testing.assert_array_equal(causal[1].data, other[1].data)
    assert np.all(np.triu(causal[1].data[0], 1) == 0)


def test_is_causal_outputs_ignore_later_positions():
    rng = rng_for(4)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = rng.normal(size=(2, 6, 8))
    changed = x.copy()
    changed[:, 3:] = rng.normal(size=(2, 3, 8))
    a = mha(leaf(x), leaf(x), leaf(x), is_causal=True)[0].data
    b = mha(leaf(changed), leaf(changed), leaf(changed), is_causal=True)[0].data
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-13, atol=1e-15)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_key_padding_mask_makes_outputs_independent_of_padded_inputs():
    rng = rng_for(5)
    mha = nn.MultiheadAttention(8, 2).double()
    lengths = [5, 3]
    x = rng.normal(size=(5, 2, 8))
    changed = x.copy()
    changed[3:, 1] = rng.normal(size=(2, 8))               # sequence 1's padding
    kpm = padding_mask(lengths, 5)
    a, wa = mha(leaf(x), leaf(x), leaf(x), key_padding_mask=kpm)
    b, wb = mha(leaf(changed), leaf(changed), leaf(changed), key_padding_mask=kpm)
    np.testing.assert_allclose(a.data[:3, 1], b.data[:3, 1], rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(a.data[:, 0], b.data[:, 0])
    assert np.all(wa.data[1, :, 3:] == 0)


def test_a_query_with_every_key_blocked_gets_zero_weights_not_nan():
    rng = rng_for(6)
    mha = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = leaf(rng.normal(size=(1, 3, 4)))
    blocked = np.zeros((3, 3), dtype=bool)
    blocked[1] = True
    out, weights = mha(x, x, x, attn_mask=blocked)
    assert np.all(np.isfinite(out.data))
    np.testing.assert_array_equal(weights.data[0, 1], 0)
    np.testing.assert_allclose(out.data[0, 1], mha.out_proj.bias.data)   # zero heads + b_o
    out.sum().backward()
    assert np.all(np.isfinite(x.grad))


def test_batch_first_and_unbatched_layouts_agree():
    rng = rng_for(7)
    seq_first = nn.MultiheadAttention(8, 2).double()
    batch_first = nn.MultiheadAttention(8, 2, batch_first=True).double()
    batch_first.load_state_dict(seq_first.state_dict())
    q, kv = rng.normal(size=(3, 2, 8)), rng.normal(size=(4, 2, 8))
    out, w = seq_first(leaf(q), leaf(kv), leaf(kv))
    out_bf, w_bf = batch_first(leaf(q.transpose(1, 0, 2)), leaf(kv.transpose(1, 0, 2)),
                               leaf(kv.transpose(1, 0, 2)))
    np.testing.assert_allclose(out_bf.data, out.data.transpose(1, 0, 2), rtol=1e-13)
    np.testing.assert_allclose(w_bf.data, w.data, rtol=1e-13)
    out_1, w_1 = seq_first(leaf(q[:, 1]), leaf(kv[:, 1]), leaf(kv[:, 1]))
    assert out_1.shape == (3, 8) and w_1.shape == (3, 4)
    np.testing.assert_allclose(out_1.data, out.data[:, 1], rtol=1e-13)
    np.testing.assert_allclose(w_1.data, w.data[1], rtol=1e-13)


def test_need_weights_false_returns_none_and_the_same_output():
    rng = rng_for(8)
    mha = nn.MultiheadAttention(8, 2).double()
    x = leaf(rng.normal(size=(3, 2, 8)))
    out, weights = mha(x, x, x, need_weights=False)
    assert weights is None
    np.testing.assert_array_equal(out.data, mha(x, x, x)[0].data)


def test_self_attention_on_one_tensor_equals_three_equal_copies():
    rng = rng_for(9)
    mha = nn.MultiheadAttention(8, 2).double()
    x = rng.normal(size=(3, 2, 8))
    one = leaf(x)
    a = mha(one, one, one)[0].data
    b = mha(leaf(x), leaf(x), leaf(x))[0].data
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_attention_dropout_in_training_mode_only():
    rng = rng_for(10)
    mha = nn.MultiheadAttention(8, 2, dropout=0.5).double()
    x = leaf(rng.normal(size=(4, 2, 8)))
    tinyllm.manual_seed(0)
    _, w_train = mha(x, x, x, average_attn_weights=False)
    dropped = w_train.data == 0
    assert dropped.any() and (~dropped).any()
    mha.eval()
    out_eval, w_eval = mha(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w_eval.data.sum(-1), 1, rtol=1e-13)
    np.testing.assert_allclose(w_train.data[~dropped], 2 * w_eval.data[~dropped], rtol=1e-13)


# ----- gradient checks ------------------------------------------------------------------------
@pytest.mark.parametrize("average", [True, False])
def test_gradcheck_self_attention_with_attn_mask_and_padding(average):
    rng = rng_for(11)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    x = leaf(rng.normal(size=(2, 3, 4)))
    attn_mask = random_blocks(rng, (3, 3))
    kpm = padding_mask([3, 2], 3)
    check_module_grad(mha, lambda: mha(x, x, x, attn_mask=attn_mask, key_padding_mask=kpm,
                                       average_attn_weights=average), x)


def test_gradcheck_causal_cross_attention_with_float_mask():
    rng = rng_for(12)
    mha = nn.MultiheadAttention(4, 2)
    q, k, v = (leaf(rng.normal(size=s)) for s in [(3, 2, 4), (4, 2, 4), (4, 2, 4)])
    float_mask = rng.normal(size=(2 * 2, 3, 4))
    check_module_grad(mha, lambda: mha(q, k, v, attn_mask=float_mask, is_causal=True), q, k, v)


def test_gradcheck_kdim_vdim_without_bias_unbatched():
    rng = rng_for(13)
    mha = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, bias=False)
    q, k, v = (leaf(rng.normal(size=s)) for s in [(3, 4), (2, 3), (2, 5)])
    check_module_grad(mha, lambda: mha(q, k, v, key_padding_mask=np.array([False, True])),
                      q, k, v)


# ----- errors ---------------------------------------------------------------------------------
def test_embed_dim_must_be_divisible_by_num_heads():
    with pytest.raises(ValueError, match="embed_dim=10 must be divisible by num_heads=4"):
        nn.MultiheadAttention(10, 4)


def test_bad_input_shapes_name_the_layer_and_the_shapes():
    mha = nn.MultiheadAttention(8, 2)
    x = tinyllm.randn(3, 2, 8)
    with pytest.raises(ValueError, match=r"MultiheadAttention: expected query of shape "
                                         r"\(L, B, E\).*got \(3, 2, 8, 1\)"):
        mha(tinyllm.randn(3, 2, 8, 1), x, x)
    with pytest.raises(ValueError, match=r"MultiheadAttention: query of shape \(3, 2, 6\) must "
                                         r"have 8 features"):
        bad = tinyllm.randn(3, 2, 6)
        mha(bad, bad, bad)
    with pytest.raises(ValueError, match=r"query of shape \(3, 2, 8\) and key of shape "
                                         r"\(2, 8\)"):
        mha(x, tinyllm.randn(2, 8), tinyllm.randn(2, 8))
    with pytest.raises(ValueError, match=r"key and value need the same length"):
        mha(x, tinyllm.randn(4, 2, 8), tinyllm.randn(5, 2, 8))
    with pytest.raises(ValueError, match=r"same batch size"):
        mha(x, tinyllm.randn(4, 3, 8), tinyllm.randn(4, 3, 8))


def test_bad_masks_are_rejected_with_their_expected_shapes():
    mha = nn.MultiheadAttention(8, 2)
    x = tinyllm.randn(3, 2, 8)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(3, 3\) or "
                                         r"\(B \* num_heads, L, S\) = \(4, 3, 3\), got \(2, 3\)"):
        mha(x, x, x, attn_mask=np.zeros((2, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, S\) = \(2, 3\)"):
        mha(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match=r"attn_mask must be boolean .* got dtype int64"):
        mha(x, x, x, attn_mask=np.zeros((3, 3), dtype=np.int64))
