"""The basic layers (Linear, Embedding, LayerNorm, Dropout, activations) and nn.init:
float64 gradient checks with respect to inputs and parameters, forward values against NumPy,
initialisation statistics, and the errors for bad input."""

import math

import numpy as np
import pytest

import tinyllm
import tinyllm.nn as nn
from conftest import check_module_grad, ATOL, RTOL, check_grad, leaf, nonzero, rng_for
from tinyllm.nn import init


# ----- Linear ---------------------------------------------------------------------------------
def test_linear_parameter_shapes_and_repr():
    layer = nn.Linear(3, 4)
    assert layer.weight.shape == (4, 3) and layer.bias.shape == (4,)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert repr(layer) == "Linear(in_features=3, out_features=4, bias=True)"
    assert nn.Linear(3, 4, bias=False).bias is None
    assert [n for n, _ in nn.Linear(3, 4, bias=False).named_parameters()] == ["weight"]


def test_linear_forward_matches_numpy():
    layer = nn.Linear(3, 4).double()
    x = rng_for(0).normal(size=(2, 5, 3))
    np.testing.assert_allclose(layer(leaf(x)).data, x @ layer.weight.data.T + layer.bias.data,
                               rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck_inputs_and_parameters(bias):
    tinyllm.manual_seed(0)
    layer, x = nn.Linear(3, 4, bias=bias), leaf(rng_for(1).normal(size=(2, 3)))
    check_module_grad(layer, lambda: layer(x), x)


def test_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    tinyllm.manual_seed(0)
    layer = nn.Linear(50, 400)
    bound = 1 / math.sqrt(50)
    w, b = layer.weight.data, layer.bias.data
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.98 * bound
    assert abs(w.var() - bound ** 2 / 3) < 0.05 * bound ** 2 / 3     # U(-b, b): var b^2/3
    assert abs(w.mean()) < 0.02 * bound


def test_linear_dtype_argument_and_default_dtype():
    assert nn.Linear(2, 3).weight.dtype == np.float32
    assert nn.Linear(2, 3, dtype=np.float64).weight.dtype == np.float64


def test_linear_wrong_input_size_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(4, 3\)"):
        nn.Linear(3, 4)(tinyllm.randn(2, 5))


def test_identity_returns_its_input():
    x = tinyllm.randn(2, 3)
    assert nn.Identity(54, unused=1)(x) is x


# ----- Embedding ------------------------------------------------------------------------------
def test_embedding_forward_and_shapes():
    emb = nn.Embedding(10, 4)
    ids = np.array([[1, 2, 9], [0, 0, 3]])
    out = emb(tinyllm.tensor(ids))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    assert repr(emb) == "Embedding(10, 4)"


def test_embedding_init_is_standard_normal():
    tinyllm.manual_seed(0)
    w = nn.Embedding(1000, 50).weight.data
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01


def test_embedding_gradcheck():
    tinyllm.manual_seed(1)
    emb, ids = nn.Embedding(6, 3), tinyllm.tensor([[0, 5, 5], [2, 1, 0]])
    check_module_grad(emb, lambda: emb(ids))


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    emb = nn.Embedding(6, 3, padding_idx=-1)
    assert emb.padding_idx == 5
    np.testing.assert_array_equal(emb.weight.data[5], 0.0)
    emb(tinyllm.tensor([5, 1, 5, 2])).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[5], 0.0)
    np.testing.assert_array_equal(emb.weight.grad[1], 1.0)
    assert "padding_idx=5" in repr(emb)


def test_embedding_out_of_range_ids_raise():
    with pytest.raises(IndexError, match="id 10 .* size 10"):
        nn.Embedding(10, 4)(tinyllm.tensor([3, 10]))


def test_embedding_from_pretrained_copies_and_freezes():
    table = rng_for(2).normal(size=(4, 3))
    emb = nn.Embedding.from_pretrained(table)
    np.testing.assert_array_equal(emb(tinyllm.tensor([2])).data[0], table[2])
    assert emb.weight.dtype == np.float64 and not emb.weight.requires_grad
    table[2] = 0.0
    assert not np.all(emb.weight.data[2] == 0.0)
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_embedding_rejects_a_bad_padding_idx():
    with pytest.raises(ValueError, match="padding_idx 6"):
        nn.Embedding(6, 2, padding_idx=6)


# ----- LayerNorm ------------------------------------------------------------------------------
def test_layer_norm_parameters_and_forward():
    norm = nn.LayerNorm(4).double()
    np.testing.assert_array_equal(norm.weight.data, 1.0)
    np.testing.assert_array_equal(norm.bias.data, 0.0)
    x = rng_for(3).normal(size=(2, 3, 4)) * 5 + 2
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(norm(leaf(x)).data, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-10)
    assert repr(norm) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"


@pytest.mark.parametrize("shape", [(5,), (3, 5)])
def test_layer_norm_gradcheck_inputs_gamma_and_beta(shape):
    norm = nn.LayerNorm(shape)
    norm.double()
    norm.weight.data[...] = rng_for(4).normal(size=shape)
    norm.bias.data[...] = rng_for(5).normal(size=shape)
    x = leaf(rng_for(6).normal(size=(2,) + shape))
    check_module_grad(norm, lambda: norm(x), x)


def test_layer_norm_options_without_affine_or_bias():
    assert list(nn.LayerNorm(3, elementwise_affine=False).parameters()) == []
    names = [n for n, _ in nn.LayerNorm(3, bias=False).named_parameters()]
    assert names == ["weight"]
    check_grad(nn.LayerNorm(3, elementwise_affine=False), leaf(rng_for(7).normal(size=(2, 3))))


# ----- Dropout --------------------------------------------------------------------------------
def test_dropout_statistics_in_training_mode():
    tinyllm.manual_seed(0)
    p = 0.2
    y = nn.Dropout(p)(tinyllm.ones(300, 400, dtype=np.float64)).data
    assert abs(np.mean(y == 0) - p) < 0.01
    assert abs(y.mean() - 1.0) < 0.02


def test_dropout_is_the_identity_in_eval_mode():
    layer = nn.Dropout(0.5).eval()
    x = tinyllm.randn(4, 5)
    np.testing.assert_array_equal(layer(x).data, x.data)
    layer.train()
    assert np.any(layer(x).data != x.data)


def test_dropout_rejects_a_bad_probability():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.Dropout(1.2)


# ----- activation layers ----------------------------------------------------------------------
ACTIVATION_LAYERS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                        * (x + 0.044715 * x ** 3)))),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Softmax(dim=0), lambda x: np.exp(x) / np.exp(x).sum(0)),
    (nn.LogSoftmax(dim=-1), lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
]


@pytest.mark.parametrize("layer, reference", ACTIVATION_LAYERS,
                         ids=[repr(layer) for layer, _ in ACTIVATION_LAYERS])
def test_activation_layer_matches_numpy_and_gradcheck(layer, reference):
    x = nonzero(rng_for(8), (3, 4))
    np.testing.assert_allclose(layer(leaf(x)).data, reference(x), rtol=1e-10, atol=1e-14)
    check_grad(layer, leaf(x))
    assert list(layer.parameters()) == []


def test_gelu_layer_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


# ----- nn.init --------------------------------------------------------------------------------
def fresh(*shape):
    return nn.Parameter(tinyllm.zeros(*shape, dtype=np.float64))


def test_init_works_in_place_on_parameters_under_no_grad():
    w = fresh(3, 4)
    assert init.ones_(w) is w
    np.testing.assert_array_equal(w.data, 1.0)
    init.zeros_(w)
    np.testing.assert_array_equal(w.data, 0.0)
    init.constant_(w, 2.5)
    np.testing.assert_array_equal(w.data, 2.5)
    assert w.requires_grad and w.is_leaf


def test_init_uniform_and_normal_statistics():
    w = init.uniform_(fresh(200, 200), -2.0, 3.0, generator=np.random.default_rng(0))
    assert w.data.min() >= -2.0 and w.data.max() < 3.0
    assert abs(w.data.mean() - 0.5) < 0.05
    init.normal_(w, 1.0, 0.5, generator=np.random.default_rng(0))
    assert abs(w.data.mean() - 1.0) < 0.01 and abs(w.data.std() - 0.5) < 0.01


def test_init_trunc_normal_stays_inside_the_bounds():
    w = init.trunc_normal_(fresh(100, 100), std=1.0, a=-0.5, b=1.0,
                           generator=np.random.default_rng(1))
    assert w.data.min() >= -0.5 and w.data.max() <= 1.0
    assert w.data.std() > 0.3


def test_init_draws_from_the_global_generator():
    tinyllm.manual_seed(5)
    first = init.normal_(fresh(3)).data.copy()
    tinyllm.manual_seed(5)
    np.testing.assert_array_equal(init.normal_(fresh(3)).data, first)


def test_fan_in_and_fan_out():
    assert init.fan_in_and_fan_out(fresh(4, 3)) == (3, 4)
    assert init.fan_in_and_fan_out(fresh(8, 2, 3, 3)) == (18, 72)
    with pytest.raises(ValueError, match="at least 2 axes"):
        init.fan_in_and_fan_out(fresh(5))


def test_calculate_gain_values():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_xavier_bounds_and_std():
    w = init.xavier_uniform_(fresh(300, 100), gain=2.0, generator=np.random.default_rng(2))
    bound = 2.0 * math.sqrt(6 / 400)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.98 * bound
    init.xavier_normal_(w, generator=np.random.default_rng(3))
    assert abs(w.data.std() - math.sqrt(2 / 400)) < 0.02 * math.sqrt(2 / 400)


@pytest.mark.parametrize("mode, fan", [("fan_in", 100), ("fan_out", 300)])
def test_kaiming_bounds_and_std(mode, fan):
    w = init.kaiming_uniform_(fresh(300, 100), mode=mode, nonlinearity="relu",
                              generator=np.random.default_rng(4))
    bound = math.sqrt(2) * math.sqrt(3 / fan)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.98 * bound
    init.kaiming_normal_(w, mode=mode, nonlinearity="relu", generator=np.random.default_rng(5))
    std = math.sqrt(2 / fan)
    assert abs(w.data.std() - std) < 0.02 * std


def test_kaiming_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform_(fresh(3, 3), mode="fan_avg")
