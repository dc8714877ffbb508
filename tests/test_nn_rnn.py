"""LSTMCell and LSTM: parameter names, shapes and initialisation as PyTorch's, forward values
against an independent NumPy LSTM, the hand-derived backward against the autograd reference
and central differences (float64, inputs and every parameter), batch-first/unbatched layouts,
dropout between layers, and the errors for bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
import tinyllm.nn as nn
from conftest import check_module_grad, ATOL, FAST, RTOL, check_grad, leaf, rng_for, seeds
from tinyllm.nn.rnn import lstm_cell, lstm_cell_reference


# ----- helpers --------------------------------------------------------------------------------
def flatten(outputs):
    """The tensors of a (possibly nested) tuple of outputs, such as output, (h_n, c_n)."""
    if isinstance(outputs, tinyllm.Tensor):
        return [outputs]
    return [t for item in outputs for t in flatten(item)]


def numpy_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step written gate by gate (rows k*H .. (k+1)*H of the weights: i, f, g, o)."""
    H = h.shape[-1]

    def gate(k, activation):
        rows = slice(k * H, (k + 1) * H)
        return activation(x @ w_ih[rows].T + b_ih[rows] + h @ w_hh[rows].T + b_hh[rows])

    i, f, g, o = (gate(0, numpy_sigmoid), gate(1, numpy_sigmoid), gate(2, np.tanh),
                  gate(3, numpy_sigmoid))
    c_next = f * c + i * g
    return o * np.tanh(c_next), c_next


def numpy_lstm(lstm, x, h0, c0):
    """A stacked, one-directional, sequence-first LSTM in NumPy with ``lstm``'s weights."""
    params = {name: p.data for name, p in lstm.named_parameters()}
    layer_input, h_n, c_n = x, [], []
    for layer in range(lstm.num_layers):
        h, c, outputs = h0[layer], c0[layer], []
        for t in range(x.shape[0]):
            h, c = numpy_lstm_step(layer_input[t], h, c,
                                   *(params["%s_l%d" % (n, layer)] for n in
                                     ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
            outputs.append(h)
        layer_input = np.stack(outputs)
        h_n.append(h)
        c_n.append(c)
    return layer_input, np.stack(h_n), np.stack(c_n)


# ----- LSTMCell -------------------------------------------------------------------------------
def test_lstm_cell_parameters_have_pytorch_names_shapes_and_init_range():
    tinyllm.manual_seed(0)
    cell = nn.LSTMCell(10, 16)
    shapes = {name: p.shape for name, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (64, 10), "weight_hh": (64, 16), "bias_ih": (64,),
                      "bias_hh": (64,)}
    bound = 1 / np.sqrt(16)
    values = np.concatenate([p.data.ravel() for p in cell.parameters()])
    assert np.all(np.abs(values) <= bound)
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
    assert abs(values.mean()) < 0.1 * bound
    assert [name for name, _ in nn.LSTMCell(3, 4, bias=False).named_parameters()] == \
        ["weight_ih", "weight_hh"]


def test_lstm_cell_forward_matches_numpy():
    rng = rng_for(0)
    cell = nn.LSTMCell(3, 5).double()
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    h_next, c_next = cell(leaf(x), (leaf(h), leaf(c)))
    expected_h, expected_c = numpy_lstm_step(x, h, c, *(p.data for p in cell.parameters()))
    np.testing.assert_allclose(h_next.data, expected_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c_next.data, expected_c, rtol=1e-12, atol=1e-12)


def test_lstm_cell_without_state_starts_from_zeros():
    cell = nn.LSTMCell(3, 4).double()
    x = leaf(rng_for(1).normal(size=(2, 3)))
    zeros = leaf(np.zeros((2, 4)))
    for a, b in zip(cell(x), cell(x, (zeros, zeros))):
        np.testing.assert_array_equal(a.data, b.data)


def test_lstm_cell_unbatched_equals_a_batch_of_one():
    rng = rng_for(2)
    cell = nn.LSTMCell(3, 4).double()
    x, h, c = rng.normal(size=3), rng.normal(size=4), rng.normal(size=4)
    single = cell(leaf(x), (leaf(h), leaf(c)))
    batch = cell(leaf(x[None]), (leaf(h[None]), leaf(c[None])))
    for a, b in zip(single, batch):
        assert a.shape == (4,)
        np.testing.assert_allclose(a.data, b.data[0], rtol=1e-14)


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_step_gradcheck_all_inputs(bias):
    rng = rng_for(3)
    B, I, H = 2, 3, 4
    args = [leaf(rng.normal(size=s)) for s in [(B, I), (B, H), (B, H), (4 * H, I), (4 * H, H)]]
    if bias:
        args += [leaf(rng.normal(size=4 * H)), leaf(rng.normal(size=4 * H))]
    check_grad(lambda *a: lstm_cell(*a), *args)


@FAST
@given(sizes=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)), seed=seeds,
       bias=st.booleans())
def test_lstm_cell_fast_step_equals_the_autograd_reference(sizes, seed, bias):
    B, I, H = sizes
    rng = rng_for(seed)
    shapes = [(B, I), (B, H), (B, H), (4 * H, I), (4 * H, H)] + ([(4 * H,)] * 2 if bias else [])
    arrays = [rng.normal(size=s) for s in shapes]
    r_h, r_c = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    results = []
    for step in (lstm_cell, lstm_cell_reference):
        args = [leaf(a) for a in arrays]
        h, c = step(*args)
        ((h * leaf(r_h, False)).sum() + (c * leaf(r_c, False)).sum()).backward()
        results.append([h.data, c.data] + [a.grad for a in args])
    for fast, reference in zip(*results):
        np.testing.assert_allclose(fast, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_gradcheck_inputs_and_parameters(bias):
    rng = rng_for(4)
    cell = nn.LSTMCell(3, 4, bias=bias)
    x, h, c = leaf(rng.normal(size=(2, 3))), leaf(rng.normal(size=(2, 4))), \
        leaf(rng.normal(size=(2, 4)))
    check_module_grad(cell, lambda: cell(x, (h, c)), x, h, c)


def test_lstm_cell_unbatched_gradcheck():
    rng = rng_for(5)
    cell = nn.LSTMCell(3, 2)
    x = leaf(rng.normal(size=3))
    check_module_grad(cell, lambda: cell(x), x)


def test_lstm_cell_rejects_bad_shapes():
    cell = nn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"LSTMCell: expected input of shape \(B, 3\).*\(2, 5\)"):
        cell(tinyllm.randn(2, 5))
    with pytest.raises(ValueError, match=r"LSTMCell.*\(2, 3, 3\)"):
        cell(tinyllm.randn(2, 3, 3))
    with pytest.raises(ValueError, match=r"LSTMCell: expected h of shape \(2, 4\).*\(2, 5\)"):
        cell(tinyllm.randn(2, 3), (tinyllm.randn(2, 5), tinyllm.randn(2, 4)))


# ----- LSTM -----------------------------------------------------------------------------------
def test_lstm_parameter_names_and_shapes_follow_pytorch():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    shapes = {name: p.shape for name, p in lstm.named_parameters()}
    expected = {}
    for layer, size in ((0, 3), (1, 8)):
        for suffix in ("", "_reverse"):
            expected["weight_ih_l%d%s" % (layer, suffix)] = (16, size)
            expected["weight_hh_l%d%s" % (layer, suffix)] = (16, 4)
            expected["bias_ih_l%d%s" % (layer, suffix)] = (16,)
            expected["bias_hh_l%d%s" % (layer, suffix)] = (16,)
    assert shapes == expected
    assert list(nn.LSTM(3, 4, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("with_state", [True, False])
def test_lstm_forward_matches_numpy(with_state):
    rng = rng_for(6)
    lstm = nn.LSTM(3, 4, num_layers=2).double()
    x = rng.normal(size=(5, 2, 3))
    h0 = rng.normal(size=(2, 2, 4)) if with_state else np.zeros((2, 2, 4))
    c0 = rng.normal(size=(2, 2, 4)) if with_state else np.zeros((2, 2, 4))
    hx = (leaf(h0), leaf(c0)) if with_state else None
    output, (h_n, c_n) = lstm(leaf(x), hx)
    for ours, expected in zip((output, h_n, c_n), numpy_lstm(lstm, x, h0, c0)):
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours.data, expected, rtol=1e-12, atol=1e-12)


def test_lstm_batch_first_is_the_transposed_layout():
    rng = rng_for(7)
    seq_first = nn.LSTM(3, 4, num_layers=2).double()
    batch_first = nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    batch_first.load_state_dict(seq_first.state_dict())
    x = rng.normal(size=(5, 2, 3))
    out_a, (h_a, c_a) = seq_first(leaf(x))
    out_b, (h_b, c_b) = batch_first(leaf(x.transpose(1, 0, 2)))
    np.testing.assert_allclose(out_b.data, out_a.data.transpose(1, 0, 2), rtol=1e-14)
    np.testing.assert_allclose(h_b.data, h_a.data, rtol=1e-14)     # h_n is never batch-first
    np.testing.assert_allclose(c_b.data, c_a.data, rtol=1e-14)


def test_lstm_unbatched_equals_a_batch_of_one():
    rng = rng_for(8)
    lstm = nn.LSTM(3, 4, num_layers=2).double()
    x, h0, c0 = rng.normal(size=(5, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    out, (h_n, c_n) = lstm(leaf(x), (leaf(h0), leaf(c0)))
    out1, (h1, c1) = lstm(leaf(x[:, None]), (leaf(h0[:, None]), leaf(c0[:, None])))
    assert out.shape == (5, 4) and h_n.shape == (2, 4)
    np.testing.assert_allclose(out.data, out1.data[:, 0], rtol=1e-14)
    np.testing.assert_allclose(h_n.data, h1.data[:, 0], rtol=1e-14)
    np.testing.assert_allclose(c_n.data, c1.data[:, 0], rtol=1e-14)


def test_lstm_bidirectional_reverse_half_reads_the_sequence_backwards():
    rng = rng_for(9)
    lstm = nn.LSTM(3, 4, bidirectional=True).double()
    forward_only = nn.LSTM(3, 4).double()
    forward_only.load_state_dict({k.replace("_reverse", ""): v
                                  for k, v in lstm.state_dict().items() if "_reverse" in k})
    x = rng.normal(size=(5, 2, 3))
    out, (h_n, _) = lstm(leaf(x))
    reverse_out, (reverse_h, _) = forward_only(leaf(x[::-1].copy()))
    assert out.shape == (5, 2, 8) and h_n.shape == (2, 2, 4)
    np.testing.assert_allclose(out.data[:, :, 4:], reverse_out.data[::-1], rtol=1e-12)
    np.testing.assert_allclose(h_n.data[1], reverse_h.data[0], rtol=1e-12)


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_gradcheck_two_layers_with_initial_state(batch_first):
    rng = rng_for(10)
    lstm = nn.LSTM(2, 3, num_layers=2, batch_first=batch_first)
    B, T = 2, 3
    x = leaf(rng.normal(size=(B, T, 2) if batch_first else (T, B, 2)))
    h0 = leaf(rng.normal(size=(2, B, 3)))
    c0 = leaf(rng.normal(size=(2, B, 3)))
    check_module_grad(lstm, lambda: lstm(x, (h0, c0)), x, h0, c0)


def test_lstm_bidirectional_gradcheck():
    rng = rng_for(11)
    lstm = nn.LSTM(2, 2, num_layers=2, bidirectional=True, batch_first=True)
    x = leaf(rng.normal(size=(2, 3, 2)))
    check_module_grad(lstm, lambda: lstm(x), x)


def test_lstm_outputs_at_step_t_ignore_later_steps():
    """Causality, so right-padding never changes the outputs at the real positions."""
    rng = rng_for(12)
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    x = rng.normal(size=(2, 6, 3))
    changed = x.copy()
    changed[:, 4:] = rng.normal(size=(2, 2, 3))
    a, b = lstm(leaf(x))[0], lstm(leaf(changed))[0]
    np.testing.assert_array_equal(a.data[:, :4], b.data[:, :4])
    assert not np.allclose(a.data[:, 4:], b.data[:, 4:])


def test_lstm_dropout_acts_between_layers_in_training_mode_only():
    rng = rng_for(13)
    x = leaf(rng.normal(size=(4, 2, 3)))
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5).double()
    plain = nn.LSTM(3, 4, num_layers=2).double()
    plain.load_state_dict(lstm.state_dict())
    expected = plain(x)[0].data
    tinyllm.manual_seed(0)
    assert not np.allclose(lstm(x)[0].data, expected)
    lstm.eval()
    np.testing.assert_array_equal(lstm(x)[0].data, expected)


def test_lstm_dropout_never_touches_the_last_layers_output():
    rng = rng_for(14)
    x = leaf(rng.normal(size=(4, 2, 3)))
    lstm = nn.LSTM(3, 4, num_layers=1, dropout=0.9).double()
    train_out = lstm(x)[0].data
    np.testing.assert_array_equal(train_out, lstm.eval()(x)[0].data)


def test_lstm_rejects_bad_input_and_state_shapes():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM: expected input of shape \(T, B, 3\).*"
                                         r"got \(5, 2, 7\)"):
        lstm(tinyllm.randn(5, 2, 7))
    with pytest.raises(ValueError, match=r"LSTM: expected input .*got \(5,\)"):
        lstm(tinyllm.randn(5))
    with pytest.raises(ValueError, match=r"LSTM: expected h_0 of shape \(2, 2, 4\).*"
                                         r"got \(1, 2, 4\)"):
        lstm(tinyllm.randn(5, 2, 3), (tinyllm.randn(1, 2, 4), tinyllm.randn(2, 2, 4)))
    with pytest.raises(ValueError, match=r"LSTM: expected c_0 of shape \(2, 4\)"):
        lstm(tinyllm.randn(5, 3), (tinyllm.randn(2, 4), tinyllm.randn(2, 2, 4)))
    with pytest.raises(ValueError, match=r"LSTM: expected input of shape \(B, T, 3\)"):
        nn.LSTM(3, 4, batch_first=True)(tinyllm.randn(2, 5, 4))


def test_lstm_rejects_unsupported_options():
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="num_layers"):
        nn.LSTM(3, 4, num_layers=0)


def test_lstm_repr_names_its_options():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert repr(nn.LSTMCell(3, 4)) == "LSTMCell(3, 4)"
