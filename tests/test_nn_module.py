"""nn.Module and the containers: registration, walking the tree, tied weights, state_dict
round trips and strict-loading errors, train/eval, zero_grad, repr, and dtype conversion."""

import re
from collections import OrderedDict

import numpy as np
import pytest

import tinyllm
import tinyllm.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(tinyllm.ones(4))
        self.drop = nn.Dropout(0.5)
        self.note = "not a parameter"

    def forward(self, x):
        return self.drop(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        x = self.first(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


# ----- registration and walking the tree ------------------------------------------------------
def test_parameters_and_modules_are_registered_by_attribute():
    block = Block()
    assert list(block._parameters) == ["scale"]
    assert list(block._modules) == ["fc", "drop"]
    assert block.note == "not a parameter"


def test_named_parameters_in_registration_order_depth_first():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["first.scale", "first.fc.weight", "first.fc.bias", "layers.0.weight",
                     "layers.0.bias", "head.weight"]
    assert len(list(Net().parameters())) == 6


def test_named_modules_and_children_order():
    net = Net()
    assert [name for name, _ in net.named_modules()] == [
        "", "first", "first.fc", "first.drop", "layers", "layers.0", "layers.1", "head"]
    assert [name for name, _ in net.named_children()] == ["first", "layers", "head"]
    assert list(net.children()) == [net.first, net.layers, net.head]
    assert next(iter(net.modules())) is net


def test_tied_weights_are_listed_once_and_counted_once():
    net = Net()
    net.head = nn.Linear(4, 4, bias=False)
    net.head.weight = net.layers[0].weight
    names = [name for name, _ in net.named_parameters()]
    assert "layers.0.weight" in names and "head.weight" not in names
    assert net.num_parameters() == (12 + 4) + 4 + (16 + 4)     # fc, scale, layers.0
    assert "head.weight" in net.state_dict()           # saved under both names, as PyTorch


def test_assigning_a_plain_value_unregisters_a_parameter():
    block = Block()
    block.scale = None
    assert "scale" not in dict(block.named_parameters())


def test_setting_attributes_before_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_buffers_are_saved_unless_non_persistent():
    module = nn.Module()
    module.register_buffer("mask", tinyllm.tensor(np.tril(np.ones((2, 2), dtype=bool))))
    module.register_buffer("cache", tinyllm.zeros(3), persistent=False)
    assert [name for name, _ in module.named_buffers()] == ["mask", "cache"]
    assert list(module.state_dict()) == ["mask"]
    assert list(module.parameters()) == []


# ----- state_dict -----------------------------------------------------------------------------
def test_state_dict_round_trip_gives_the_same_outputs():
    tinyllm.manual_seed(0)
    source, target = Net().eval(), Net().eval()
    x = tinyllm.randn(5, 3)
    assert not np.allclose(source(x).data, target(x).data)
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(target(x).data, source(x).data)


def test_state_dict_holds_copies():
    net = Net()
    state = net.state_dict()
    state["head.weight"][...] = 7.0
    assert not np.any(net.head.weight.data == 7.0)
    assert isinstance(state, OrderedDict)


def test_load_state_dict_copies_values_into_the_existing_parameters():
    layer = nn.Linear(2, 3)
    weight = layer.weight
    layer.load_state_dict({"weight": np.ones((3, 2)), "bias": tinyllm.zeros(3)})
    assert layer.weight is weight
    np.testing.assert_array_equal(weight.data, 1.0)


def test_load_state_dict_strict_names_missing_and_unexpected_keys():
    layer = nn.Linear(2, 3)
    with pytest.raises(RuntimeError, match="missing keys: bias"):
        layer.load_state_dict({"weight": np.zeros((3, 2))})
    with pytest.raises(RuntimeError, match="unexpected keys: extra"):
        layer.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(3),
                               "extra": np.zeros(1)})


def test_load_state_dict_not_strict_reports_the_keys():
    layer = nn.Linear(2, 3)
    result = layer.load_state_dict({"weight": np.ones((3, 2)), "extra": 1.0}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(layer.weight.data, 1.0)


def test_load_state_dict_shape_mismatch_names_the_key_and_both_shapes():
    layer = nn.Linear(2, 3)
    before = layer.weight.data.copy()
    message = "weight: the checkpoint has shape (2, 3), the module has shape (3, 2)"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(3)}, strict=False)
    np.testing.assert_array_equal(layer.weight.data, before)     # nothing half-loaded


# ----- modes, gradients, dtype ----------------------------------------------------------------
def test_train_and_eval_reach_every_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_clears_or_zeroes_every_gradient():
    net = Net()
    net(tinyllm.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_double_converts_every_parameter():
    net = Net()
    assert net.double() is net
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net(tinyllm.randn(2, 3, dtype=np.float64)).dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_requires_grad_false_freezes_the_parameters():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_visits_every_module():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert sorted(seen) == sorted(["Net", "Block", "Linear", "Dropout", "ModuleList",
                                   "Linear", "ReLU", "Linear"])


def test_repr_shows_the_tree_and_the_parameter_count():
    text = repr(Net())
    assert text.startswith("Net(\n  (first): Block(\n    (fc): Linear(in_features=3, "
                           "out_features=4, bias=True)")
    assert "(layers): ModuleList(\n    (0): Linear(in_features=4, out_features=4, bias=True)" \
        in text
    assert "(head): Linear(in_features=4, out_features=2, bias=False)" in text
    assert text.endswith("# 48 parameters")
    assert Net().num_parameters() == (12 + 4) + 4 + (16 + 4) + 8


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)


# ----- containers -----------------------------------------------------------------------------
def test_sequential_applies_modules_in_order():
    tinyllm.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = tinyllm.randn(5, 3)
    expected = model[2](model[1](model[0](x)))
    np.testing.assert_array_equal(model(x).data, expected.data)
    assert len(model) == 3 and [n for n, _ in model.named_children()] == ["0", "1", "2"]
    assert isinstance(model[1:], nn.Sequential) and len(model[1:]) == 2


def test_sequential_from_an_ordered_dict_uses_its_names():
    model = nn.Sequential(OrderedDict([("embed", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [name for name, _ in model.named_parameters()] == ["embed.weight", "embed.bias"]
    model.append(nn.Linear(2, 1))
    assert list(model._modules) == ["embed", "act", "2"]


def test_module_list_registers_and_indexes():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.ReLU())
    layers.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in layers] == ["Tanh", "Linear", "Linear", "Linear", "ReLU"]
    assert [name for name, _ in layers.named_children()] == ["0", "1", "2", "3", "4"]
    replacement = nn.Linear(2, 2)
    layers[-1] = replacement
    assert layers[4] is replacement
    with pytest.raises(NotImplementedError, match="iterate"):
        layers(1)


def test_module_dict_registers_by_name():
    heads = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.Linear(2, 1)})
    heads["c"] = nn.Identity()
    assert list(heads.keys()) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert [name for name, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight",
                                                               "b.bias"]
    assert heads["a"].out_features == 3
