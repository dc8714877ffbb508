"""The training path on the kernels: a GPT gives the same loss and gradients on every CPU
backend, a float32 step stays in float32, ``F.scaled_dot_product_attention``'s fused route
equals its composite route, the optimizers' one-pass update equals the NumPy update, and the
small kernels of the path (embedding backward, float32 erf and exp) equal their references."""

import math

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
from conftest import check_grad, leaf, rng_for
from tinyllm import nn
from tinyllm.kernels import embedding_backward, gelu
from tinyllm.kernels import special
from tinyllm.kernels.backend import use_backend
from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.ops.attention import FusedAttention

CPU_BACKENDS = ["numpy", "numba", "auto"]


def tiny_gpt(seed=0):
    tinyllm.manual_seed(seed)
    config = GPTConfig(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16,
                       dropout=0.0, bias=True)
    return GPT(config)


def gpt_batch(seed=1, B=3, T=8, V=13):
    rng = rng_for(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def loss_and_grads(model, backend_name):
    idx, targets = gpt_batch()
    for p in model.parameters():
        p.grad = None
    with use_backend(backend_name):
        _, loss = model(idx, targets)
        loss.backward()
    return loss, {name: p.grad for name, p in model.named_parameters()}


# ----- (a) the same GPT on every backend --------------------------------------------------------
@pytest.mark.parametrize("backend_name", ["numba", "auto"])
def test_gpt_loss_and_gradients_are_the_same_on_every_backend(backend_name):
    model = tiny_gpt()
    ref_loss, ref_grads = loss_and_grads(model, "numpy")
    loss, grads = loss_and_grads(model, backend_name)
    np.testing.assert_allclose(loss.data, ref_loss.data, rtol=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        scale = np.abs(ref_grads[name]).max()
        np.testing.assert_allclose(grad, ref_grads[name], rtol=1e-3, atol=1e-4 * scale,
                                   err_msg=name)


# ----- (b) float32 stays float32 ----------------------------------------------------------------
def graph_dtypes(loss):
    """The dtype of every output of every op in the graph that produced ``loss``."""
    dtypes, stack, seen = {}, [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for _, dtype in node.output_meta:
            dtypes.setdefault(np.dtype(dtype), set()).add(node.name())
        stack.extend(edge[0] for edge in node.edges if type(edge) is tuple)
    return dtypes


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_a_float32_gpt_step_computes_every_intermediate_in_float32(backend_name):
    model = tiny_gpt()
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    idx, targets = gpt_batch()
    with use_backend(backend_name):
        _, loss = model(idx, targets)
        dtypes = graph_dtypes(loss)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    assert set(dtypes) == {np.dtype(np.float32)}, dtypes      # names the ops of other dtypes
    for name, p in model.named_parameters():
        assert p.grad.dtype == np.float32, name
        assert p.dtype == np.float32, name
    for state in optimizer.state.values():
        assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == np.float32


# ----- (c) scaled_dot_product_attention: fused route == composite route -------------------------
def sdpa_both_routes(shapes, seed, **options):
    """Outputs and input gradients of F.scaled_dot_product_attention on the composite route
    ("numpy") and on the fused route ("numba"), in float64."""
    rng = rng_for(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    grad_out = None
    results = []
    for backend_name in ("numpy", "numba"):
        q, k, v = (leaf(a) for a in arrays)
        with use_backend(backend_name):
            out = F.scaled_dot_product_attention(q, k, v, **options)
            if grad_out is None:
                grad_out = rng.standard_normal(out.shape)
            (out * tinyllm.tensor(grad_out, dtype=np.float64)).sum().backward()
        results.append((out, q.grad, k.grad, v.grad))
    return results


def padding_mask(B, S, seed):
    hidden = rng_for(seed).random((B, S)) < 0.3
    hidden[0, :] = True                                    # batch entry 0 sees no key at all
    return ~hidden[:, None, None, :]                       # True = may attend, (B, 1, 1, S)


@pytest.mark.parametrize("case", [
    dict(shapes=[(2, 3, 7, 5)] * 3, options=dict(is_causal=True)),
    dict(shapes=[(2, 3, 7, 5)] * 3, options=dict()),
    dict(shapes=[(2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 4)], options=dict(is_causal=True)),
    dict(shapes=[(2, 3, 9, 5), (2, 3, 6, 5), (2, 3, 6, 4)], options=dict(is_causal=True)),
    dict(shapes=[(2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 4)],
         options=dict(attn_mask=padding_mask(2, 9, 3))),
    dict(shapes=[(2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 5)],
         options=dict(attn_mask=padding_mask(1, 9, 4)[0, 0, 0], scale=0.3)),
], ids=["causal", "no-mask", "causal-L<S", "causal-L>S", "padding-(B,1,1,S)", "padding-(S,)"])
def test_fused_attention_route_equals_the_composite_route(case):
    (ref, *ref_grads), (out, *grads) = sdpa_both_routes(case["shapes"], 5, **case["options"])
    assert out.grad_fn.function is FusedAttention                 # the fused route ran
    assert ref.grad_fn.function is not FusedAttention
    np.testing.assert_allclose(out.data, ref.data, rtol=1e-10, atol=1e-12)
    for name, g, ref_g in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(g, ref_g, rtol=1e-9, atol=1e-11, err_msg=name)


def test_fused_attention_route_takes_three_dimensional_inputs():
    (ref, *ref_grads), (out, *grads) = sdpa_both_routes([(4, 6, 5)] * 3, 6, is_causal=True)
    np.testing.assert_allclose(out.data, ref.data, rtol=1e-10, atol=1e-12)
    for g, ref_g in zip(grads, ref_grads):
        np.testing.assert_allclose(g, ref_g, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("options", [dict(is_causal=True),
                                     dict(attn_mask=padding_mask(2, 4, 7))])
def test_fused_attention_route_passes_the_float64_gradient_check(options):
    rng = rng_for(8)
    q, k, v = (leaf(rng.standard_normal((2, 2, 4, 3))) for _ in range(3))
    with use_backend("numba"):
        assert F.scaled_dot_product_attention(q, k, v, **options).grad_fn.function \
            is FusedAttention
        check_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, **options), q, k, v)


def test_attention_masks_the_fused_kernels_do_not_cover_take_the_composite_route():
    rng = rng_for(9)
    q, k, v = (leaf(rng.standard_normal((2, 2, 4, 3))) for _ in range(3))
    per_query = rng.random((4, 4)) < 0.7                      # varies along L: not padding
    float_mask = rng.standard_normal((4, 4))
    with use_backend("numba"):
        for mask in (per_query, float_mask):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            assert out.grad_fn.function is not FusedAttention
            with use_backend("numpy"):
                ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            np.testing.assert_allclose(out.data, ref.data, rtol=1e-12)


# ----- (d) the optimizers' one-pass update == the NumPy update ----------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps: tinyllm.optim.Adam(ps, lr=1e-2),
    lambda ps: tinyllm.optim.Adam(ps, lr=1e-2, weight_decay=0.1, maximize=True),
    lambda ps: tinyllm.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
    lambda ps: tinyllm.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, amsgrad=True),
], ids=["adam", "adam-l2-maximize", "adamw", "adamw-amsgrad"])
def test_fused_adam_update_equals_the_numpy_update(make, dtype):
    rng = rng_for(10)
    start = [rng.standard_normal((5, 7)), rng.standard_normal(7)]
    grads = [[rng.standard_normal(a.shape) for a in start] for _ in range(4)]
    finals = []
    for backend_name in ("numpy", "numba"):
        params = [tinyllm.tensor(a, requires_grad=True, dtype=dtype) for a in start]
        optimizer = make(params)
        with use_backend(backend_name):
            for step_grads in grads:
                for p, g in zip(params, step_grads):
                    p.grad = g.astype(dtype)
                optimizer.step()
        assert all(p._version >= len(grads) for p in params)     # in-place updates counted
        finals.append([p.data for p in params])
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for got, ref in zip(*reversed(finals)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol)


# ----- the small kernels of the path --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_kernel_adds_the_rows_of_repeated_ids(dtype):
    rng = rng_for(11)
    ids = rng.integers(0, 6, 40)
    ids[:5] = 3                                            # repeated on purpose
    grad = rng.standard_normal((40, 4)).astype(dtype)
    expected = np.zeros((9, 4))
    for i, row in zip(ids, grad):
        expected[i] += row
    for kernel in (embedding_backward.embedding_backward_reference, embedding_backward.embedding_backward_numba):
        got = kernel(ids, grad, 9)
        assert got.dtype == dtype and got.shape == (9, 4)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_embedding_gradient_check_on_the_numba_backend():
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    weight = leaf(rng_for(12).standard_normal((5, 3)))
    with use_backend("numba"):
        check_grad(lambda w: F.embedding(ids, w), weight)


def test_erf_float32_is_within_1e7_of_math_erf():
    x = np.linspace(-6, 6, 200_001).astype(np.float32)
    got = np.array([special.erf_float32(v) for v in x[::50]], dtype=np.float32)
    exact = np.array([math.erf(v) for v in x[::50].astype(np.float64)])
    assert np.abs(got - exact).max() < 1e-7


def test_exp_float32_is_within_2_ulp_of_exp_and_exact_at_the_ends():
    x = np.linspace(-87, 88, 100_001).astype(np.float32)
    got = np.array([special.exp_float32(v) for v in x], dtype=np.float32)
    exact = np.exp(x.astype(np.float64))
    assert (np.abs(got - exact) / exact).max() < 2 * 2.0 ** -24
    specials = np.array([-np.inf, -200, 0, 200, np.inf], dtype=np.float32)
    assert [special.exp_float32(v) for v in specials] == [0, 0, 1, np.inf, np.inf]
    assert np.isnan(special.exp_float32(np.float32(np.nan)))


def test_exp2_float32_is_within_2_ulp_of_exp2_and_exact_at_the_ends():
    x = np.linspace(-125.49, 127.99, 100_001).astype(np.float32)
    got = np.array([special.exp2_float32(v) for v in x], dtype=np.float32)
    exact = np.exp2(x.astype(np.float64))
    assert (np.abs(got - exact) / exact).max() < 2 * 2.0 ** -24
    assert np.isfinite(got).all()                   # 2^127.99 is a float32: no early overflow
    specials = np.array([-np.inf, -200, -125.6, 0, 1, 128, 200, np.inf], dtype=np.float32)
    assert [special.exp2_float32(v) for v in specials] == [0, 0, 0, 1, 2, np.inf, np.inf,
                                                          np.inf]
    assert np.isnan(special.exp2_float32(np.float32(np.nan)))


def test_float32_gelu_kernel_matches_the_exact_gelu():
    x = np.linspace(-8, 8, 10_001).astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    slope = np.array([0.5 * (1 + math.erf(v / math.sqrt(2)))
                      + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
                      for v in x.astype(np.float64)])
    np.testing.assert_allclose(gelu.gelu_forward_numba(x), exact, rtol=1e-6, atol=5e-7)
    np.testing.assert_allclose(gelu.gelu_backward_numba(np.ones_like(x), x), slope,
                               rtol=1e-6, atol=5e-7)
