"""Parity with PyTorch for the basic layers, the activations and scaled dot-product attention:
float64, weights copied through a converted ``state_dict``, relative error under 1e-6 for
outputs and for the gradients of inputs and parameters."""

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
import tinyllm.nn as nn
from conftest import rng_for

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOLERANCE = 1e-6


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, "%s: shape %s vs %s" % (what, ours.shape, theirs.shape)
    error = tinyllm.rel_error(ours, theirs)
    assert error < TOLERANCE, "%s: relative error %.3g" % (what, error)


def converted(torch_module):
    """A PyTorch state_dict as NumPy arrays, the form tinyllm's load_state_dict takes."""
    return {k: v.numpy() for k, v in torch_module.state_dict().items()}


def as_tinyllm(x):
    """A tinyllm tensor for an array: float64 data requiring grad, or integer ids."""
    if x.dtype.kind == "f":
        return tinyllm.tensor(x, requires_grad=True, dtype=np.float64)
    return tinyllm.tensor(x)


def check_module(ours, theirs, *inputs):
    """Copy theirs' weights into ours, run both on the same float64 inputs (arrays; float ones
    get gradients), backpropagate the same upstream gradient, compare everything."""
    theirs = theirs.double()
    ours.double()
    ours.load_state_dict(converted(theirs))
    mine = [as_tinyllm(x) for x in inputs]
    ref = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    out, ref_out = ours(*mine), theirs(*ref)
    assert_close(out.data, ref_out, "output")
    upstream = rng_for(0).normal(size=out.shape)
    out.backward(upstream)
    ref_out.backward(torch.tensor(upstream))
    for i, (x, r) in enumerate(zip(mine, ref)):
        if x.requires_grad:
            assert_close(x.grad, r.grad, "input %d gradient" % i)
    ref_params = dict(theirs.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names == list(ref_params)
    for name, p in ours.named_parameters():
        if p.requires_grad:
            assert_close(p.grad, ref_params[name].grad, name + " gradient")


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    torch.manual_seed(0)
    check_module(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias),
                 rng_for(1).normal(size=(2, 4, 5)))


def test_embedding_with_padding_idx():
    torch.manual_seed(1)
    ids = np.array([[0, 3, 3, 6], [2, 0, 1, 6]])
    check_module(nn.Embedding(7, 4, padding_idx=3), torch.nn.Embedding(7, 4, padding_idx=3), ids)


@pytest.mark.parametrize("shape", [(6,), (3, 6)])
def test_layer_norm(shape):
    torch.manual_seed(2)
    theirs = torch.nn.LayerNorm(shape)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    check_module(nn.LayerNorm(shape), theirs, rng_for(3).normal(size=(2,) + shape) * 4 + 1)


def test_layer_norm_without_bias():
    check_module(nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False),
                 rng_for(4).normal(size=(3, 5)))


def test_dropout_p_zero_and_eval_mode_are_the_identity():
    x = rng_for(5).normal(size=(3, 4))
    check_module(nn.Dropout(0.0), torch.nn.Dropout(0.0), x)
    check_module(nn.Dropout(0.7).eval(), torch.nn.Dropout(0.7).eval(), x)


ACTIVATIONS = [
    (nn.ReLU, torch.nn.ReLU, {}),
    (nn.GELU, torch.nn.GELU, {}),
    (nn.GELU, torch.nn.GELU, {"approximate": "tanh"}),
    (nn.Tanh, torch.nn.Tanh, {}),
    (nn.Sigmoid, torch.nn.Sigmoid, {}),
    (nn.Softmax, torch.nn.Softmax, {"dim": 1}),
    (nn.LogSoftmax, torch.nn.LogSoftmax, {"dim": -1}),
]


@pytest.mark.parametrize("ours, theirs, options", ACTIVATIONS,
                         ids=["%s%s" % (a.__name__, c) for a, _, c in ACTIVATIONS])
def test_activation(ours, theirs, options):
    x = rng_for(6).normal(size=(3, 4, 5)) * 2
    check_module(ours(**options), theirs(**options), x)


def sdpa_case(seed, mask_kind):
    rng = rng_for(seed)
    q, k, v = (rng.normal(size=(2, 2, 3, 4)), rng.normal(size=(2, 2, 5, 4)),
               rng.normal(size=(2, 2, 5, 3)))
    if mask_kind == "bool":
        mask = rng.random((2, 1, 3, 5)) < 0.6
        mask[..., 0] = True
        mask[1, 0, 2] = False                   # one query that may attend to nothing
    elif mask_kind == "float":
        mask = rng.normal(size=(3, 5))
        mask[0, 1] = -np.inf
    else:
        mask = None
    return q, k, v, mask


@pytest.mark.parametrize("mask_kind, is_causal, scale", [
    (None, False, None), ("bool", False, None), ("float", False, None), (None, True, None),
    (None, False, 0.3)])
def test_scaled_dot_product_attention(mask_kind, is_causal, scale):
    q, k, v, mask = sdpa_case(7, mask_kind)
    mine = [as_tinyllm(a) for a in (q, k, v)]
    ref = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*mine, attn_mask=mask, is_causal=is_causal,
                                         scale=scale)
    ref_mask = None if mask is None else torch.tensor(mask)
    ref_out = TF.scaled_dot_product_attention(*ref, attn_mask=ref_mask, is_causal=is_causal,
                                              scale=scale)
    assert_close(out.data, ref_out, "output")
    upstream = rng_for(8).normal(size=out.shape)
    out.backward(upstream)
    ref_out.backward(torch.tensor(upstream))
    for name, x, r in zip("qkv", mine, ref):
        assert_close(x.grad, r.grad, name + " gradient")


def test_state_dict_of_a_small_torch_model_loads_and_matches():
    torch.manual_seed(3)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.LayerNorm(8),
                                 torch.nn.Dropout(0.1), torch.nn.Linear(8, 2)).double().eval()
    ours = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Dropout(0.1),
                         nn.Linear(8, 2)).double().eval()
    ours.load_state_dict(converted(theirs))
    x = rng_for(9).normal(size=(5, 4))
    assert_close(ours(as_tinyllm(x)).data, theirs(torch.tensor(x)), "output")
