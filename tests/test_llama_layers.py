"""The modern decoder's blocks: RMSNorm, SiLU, rotary position embeddings (both layouts),
SwiGLU, repeat_kv and grouped-query attention. Float64 gradient checks, forward values against
NumPy written here, PyTorch parity (torch.nn.RMSNorm, F.silu, Hugging Face's rotate_half RoPE)
and the errors for bad input."""

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
import tinyllm.nn as nn
from conftest import check_grad, check_module_grad, leaf, rng_for


# ----- NumPy references -----------------------------------------------------------------------
def rms_norm_reference(x, w, eps):
    return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + eps) * w


def rope_reference(x, positions, theta, layout):
    """Each pair of features turned by angle m * theta^(-2i/D), pair by pair, with a loop."""
    D = x.shape[-1]
    y = np.empty_like(x)
    for t, m in enumerate(positions):
        for i in range(D // 2):
            angle = m * theta ** (-2.0 * i / D)
            a, b = (2 * i, 2 * i + 1) if layout == "interleaved" else (i, i + D // 2)
            xa, xb = x[..., t, a], x[..., t, b]
            y[..., t, a] = xa * np.cos(angle) - xb * np.sin(angle)
            y[..., t, b] = xa * np.sin(angle) + xb * np.cos(angle)
    return y


# ----- RMSNorm --------------------------------------------------------------------------------
def test_rms_norm_matches_numpy_and_starts_with_unit_weight():
    norm = nn.RMSNorm(6, eps=1e-5).double()
    np.testing.assert_array_equal(norm.weight.data, 1.0)
    norm.weight.data[...] = rng_for(0).normal(size=6)
    x = rng_for(1).normal(size=(2, 3, 6)) * 3 + 1
    np.testing.assert_allclose(norm(leaf(x)).data, rms_norm_reference(x, norm.weight.data, 1e-5),
                               rtol=1e-12)
    assert repr(norm) == "RMSNorm(6, eps=1e-05)"
    assert [n for n, _ in norm.named_parameters()] == ["weight"]


def test_rms_norm_gradcheck_input_and_weight():
    norm = nn.RMSNorm(5)
    norm.double()
    norm.weight.data[...] = rng_for(2).normal(size=5)
    x = leaf(rng_for(3).normal(size=(2, 3, 5)))
    check_module_grad(norm, lambda: norm(x), x)


def test_rms_norm_without_weight_gradcheck():
    check_grad(lambda x: F.rms_norm(x, 4), leaf(rng_for(4).normal(size=(3, 4))))


def test_rms_norm_rejects_a_mismatched_last_axis():
    with pytest.raises(ValueError, match=r"rms_norm: input of shape \(2, 3\) does not end with"):
        nn.RMSNorm(4)(tinyllm.randn(2, 3))
    with pytest.raises(ValueError, match="weight of shape"):
        F.rms_norm(tinyllm.randn(2, 4), 4, tinyllm.ones(3))


# ----- SiLU -----------------------------------------------------------------------------------
def test_silu_matches_numpy_and_gradcheck():
    x = rng_for(5).normal(size=(3, 4)) * 4
    np.testing.assert_allclose(nn.SiLU()(leaf(x)).data, x / (1 + np.exp(-x)), rtol=1e-12)
    check_grad(F.silu, leaf(x))
    assert np.isfinite(F.silu(tinyllm.tensor([-1000.0, 1000.0])).data).all()


# ----- rotary position embeddings ---------------------------------------------------------------
@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rotary_matches_the_pairwise_rotation(layout):
    x = rng_for(6).normal(size=(2, 3, 5, 8))
    y = F.rotary_embedding(leaf(x), offset=7, theta=100.0, layout=layout)
    np.testing.assert_allclose(y.data, rope_reference(x, range(7, 12), 100.0, layout),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rotary_gradcheck(layout):
    cos, sin = F.rope_cos_sin(6, np.arange(3, 7), 10.0, layout, np.float64)
    check_grad(lambda x: F.apply_rotary_emb(x, cos, sin, layout),
               leaf(rng_for(7).normal(size=(2, 2, 4, 6))))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rotary_dot_products_depend_only_on_the_distance(layout):
    rng = rng_for(8)
    q, k = rng.normal(size=(1, 1, 1, 8)), rng.normal(size=(1, 1, 1, 8))

    def score(m, n):
        qm = F.rotary_embedding(leaf(q), offset=m, layout=layout).data
        kn = F.rotary_embedding(leaf(k), offset=n, layout=layout).data
        return float(np.sum(qm * kn))

    assert score(5, 2) == pytest.approx(score(103, 100), rel=1e-10)
    assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)


def test_rotary_layouts_are_one_permutation_apart():
    """Interleaved RoPE equals half-split RoPE on features reordered evens first, then odds."""
    x = rng_for(9).normal(size=(1, 2, 4, 8))
    perm = np.concatenate([np.arange(0, 8, 2), np.arange(1, 8, 2)])
    half = F.rotary_embedding(leaf(x[..., perm]), offset=3, layout="half").data
    interleaved = F.rotary_embedding(leaf(x), offset=3, layout="interleaved").data
    np.testing.assert_allclose(interleaved[..., perm], half, rtol=1e-12)


def test_rotary_errors_name_the_problem():
    with pytest.raises(ValueError, match="layout must be 'half'"):
        F.rotary_embedding(tinyllm.randn(1, 1, 2, 4), layout="pairs")
    with pytest.raises(ValueError, match="head_dim must be even"):
        F.rope_frequencies(5)
    with pytest.raises(ValueError, match=r"cos of shape \(3, 4\) must be \(T, D\) = \(2, 4\)"):
        cos, sin = F.rope_cos_sin(4, np.arange(3))
        F.apply_rotary_emb(tinyllm.randn(1, 1, 2, 4), cos, sin)
    with pytest.raises(ValueError, match="exceed max_position_embeddings 8"):
        nn.RotaryEmbedding(4, 8)(6, 3)


# ----- SwiGLU and repeat_kv ---------------------------------------------------------------------
def test_llama_mlp_matches_numpy_and_gradcheck():
    tinyllm.manual_seed(0)
    mlp = nn.LlamaMLP(4, 6).double()
    x = rng_for(10).normal(size=(2, 3, 4))
    g, u, d = (mlp.gate_proj.weight.data, mlp.up_proj.weight.data, mlp.down_proj.weight.data)
    a = x @ g.T
    np.testing.assert_allclose(mlp(leaf(x)).data, (a / (1 + np.exp(-a)) * (x @ u.T)) @ d.T,
                               rtol=1e-10)
    assert [n for n, _ in mlp.named_parameters()] == ["gate_proj.weight", "up_proj.weight",
                                                     "down_proj.weight"]
    xt = leaf(x)
    check_module_grad(mlp, lambda: mlp(xt), xt)


def test_repeat_kv_repeats_each_head_in_a_row_and_gradcheck():
    x = rng_for(11).normal(size=(2, 3, 4, 5))
    np.testing.assert_array_equal(F.repeat_kv(leaf(x), 2).data, np.repeat(x, 2, axis=1))
    check_grad(lambda t: F.repeat_kv(t, 3), leaf(x))
    with pytest.raises(ValueError, match=r"repeat_kv: expected keys or values of shape"):
        F.repeat_kv(tinyllm.randn(2, 3, 4), 2)


# ----- grouped-query attention ------------------------------------------------------------------
def gqa_reference(attn, x, positions):
    """Grouped-query attention written with NumPy and a loop over the query heads."""
    B, T, _ = x.shape
    H, Hkv, D = attn.n_head, attn.n_kv_head, attn.head_dim
    q = (x @ attn.q_proj.weight.data.T).reshape(B, T, H, D).transpose(0, 2, 1, 3)
    k = (x @ attn.k_proj.weight.data.T).reshape(B, T, Hkv, D).transpose(0, 2, 1, 3)
    v = (x @ attn.v_proj.weight.data.T).reshape(B, T, Hkv, D).transpose(0, 2, 1, 3)
    q, k = rope_reference(q, positions, 10000.0, "half"), rope_reference(k, positions, 10000.0,
                                                                         "half")
    out = np.empty((B, H, T, D))
    for h in range(H):
        kv = h // (H // Hkv)
        s = q[:, h] @ k[:, kv].transpose(0, 2, 1) / np.sqrt(D)
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        w = np.exp(s - s.max(-1, keepdims=True))
        out[:, h] = (w / w.sum(-1, keepdims=True)) @ v[:, kv]
    return out.transpose(0, 2, 1, 3).reshape(B, T, H * D) @ attn.o_proj.weight.data.T


def test_grouped_query_attention_matches_numpy():
    tinyllm.manual_seed(1)
    attn = nn.GroupedQueryAttention(8, n_head=4, n_kv_head=2).double()
    x = rng_for(12).normal(size=(2, 5, 8))
    cos, sin = F.rope_cos_sin(2, np.arange(5), dtype=np.float64)
    np.testing.assert_allclose(attn(leaf(x), cos, sin).data, gqa_reference(attn, x, range(5)),
                               rtol=1e-9, atol=1e-12)
    assert attn.k_proj.weight.shape == (4, 8) and attn.q_proj.weight.shape == (8, 8)


def test_grouped_query_attention_gradcheck():
    tinyllm.manual_seed(2)
    attn = nn.GroupedQueryAttention(6, n_head=3, n_kv_head=1, head_dim=4)
    cos, sin = F.rope_cos_sin(4, np.arange(3), dtype=np.float64)
    x = leaf(rng_for(13).normal(size=(2, 3, 6)))
    check_module_grad(attn, lambda: attn(x, cos, sin), x)


def test_grouped_query_attention_rejects_heads_that_do_not_group():
    with pytest.raises(ValueError, match="n_head=4 must be a multiple of n_kv_head=3"):
        nn.GroupedQueryAttention(8, 4, 3)


# ----- PyTorch parity ---------------------------------------------------------------------------
def test_rms_norm_and_silu_match_pytorch():
    torch = pytest.importorskip("torch")
    x = rng_for(14).normal(size=(2, 3, 6))
    w = rng_for(15).normal(size=6)
    theirs = torch.nn.RMSNorm(6, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w))
    xt = torch.tensor(x, requires_grad=True)
    ours_norm = nn.RMSNorm(6).double()
    ours_norm.load_state_dict({"weight": w})
    xo = leaf(x)
    y = ours_norm(xo)
    ty = theirs(xt)
    upstream = rng_for(16).normal(size=x.shape)
    (y * tinyllm.tensor(upstream, dtype=np.float64)).sum().backward()
    (ty * torch.tensor(upstream)).sum().backward()
    assert tinyllm.rel_error(y.data, ty.detach().numpy()) < 1e-10
    assert tinyllm.rel_error(xo.grad, xt.grad.numpy()) < 1e-8
    assert tinyllm.rel_error(ours_norm.weight.grad, theirs.weight.grad.numpy()) < 1e-8
    s = torch.nn.functional.silu(torch.tensor(x)).numpy()
    assert tinyllm.rel_error(F.silu(leaf(x)).data, s) < 1e-12


def test_rotary_matches_hugging_face_rotate_half():
    """Hugging Face's Llama: q * cos + rotate_half(q) * sin, cos = cos(cat(freqs, freqs))."""
    torch = pytest.importorskip("torch")
    D, T = 8, 6
    x = rng_for(17).normal(size=(1, 2, T, D))
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    freqs = torch.outer(torch.arange(4, 4 + T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    xt = torch.tensor(x)
    x1, x2 = xt[..., :D // 2], xt[..., D // 2:]
    theirs = xt * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()
    ours = F.rotary_embedding(leaf(x), offset=4, layout="half")
    assert tinyllm.rel_error(ours.data, theirs.numpy()) < 1e-12
