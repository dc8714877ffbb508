"""Checks of step lstm (chapter 7): LSTMCell, LSTM over a sequence, and one step's backward by
hand.

The forward is compared with a step written below in NumPy (when recording) and with a case
small enough to compute by hand; the composed cell's gradients, and the hand-derived
``lstm_cell_backward``, with central differences in float64.
"""

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import NUMERICAL_ATOL, NUMERICAL_RTOL, TYPICAL_NUMERICAL_ERROR
from tinyllm.exercises.grading import SolutionError

STEP = Step(
    name="lstm", chapter=7, module="lstm",
    title="the LSTM: a gated cell, a sequence, and one step's backward by hand",
    teaches="How the four gates of an LSTM step decide what the cell state forgets, writes "
            "and shows, how a sequence is the same cell applied step after step, and how the "
            "chain rule runs back through one step (the tanh' factor on the path c' -> h').",
    needs=("autograd", "elementwise", "tensor_ops", "mlp"),
    minutes=120,
    hints=(
        "LSTMCell.forward: one affine map gives a (B, 4H); slice it into four (B, H) blocks "
        "a[:, 0:H], a[:, H:2*H], ... in the order i, f, g, o. Which gate uses tanh?",
        "The new cell state uses the OLD one: c' = f * c + i * g. The new hidden state uses "
        "the NEW cell state: h' = o * tanh(c').",
        "LSTM.forward: loop over t, feed x[:, t] (B, I) and the previous state to the cell, "
        "keep every h, and stack them with tensor_ops.stack(..., axis=1). Do not detach the "
        "state between steps: the gradient must flow back through time.",
        "lstm_cell_backward: recompute the forward (i, f, g, o, tanh(c')). c' reaches the loss "
        "twice: directly (dc_next) and through h' = o * tanh(c'). Then go back through "
        "c' = f * c + i * g, then through each gate's non-linearity, then through the affine "
        "map (dx = da W_ih, dW_ih = da^T x, dbias = sum of da over the batch).",
        "The formulas: dc_total = dc_next + dh_next * o * (1 - tanh(c')^2); "
        "da = [dc_total * g * i(1-i) | dc_total * c * f(1-f) | dc_total * i * (1-g^2) | "
        "dh_next * tanh(c') * o(1-o)]; dx = da W_ih, dh = da W_hh, dc = dc_total * f, "
        "dW_ih = da^T x, dW_hh = da^T h, dbias = da summed over the batch.",
    ))


# ----- the step in NumPy (for recording and for central differences) --------------------------
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _step_numpy(x, h, c, W_ih, W_hh, b):
    """(h', c') of one LSTM step, gates in the order i, f, g, o; b = b_ih + b_hh."""
    a_i, a_f, a_g, a_o = np.split(x @ W_ih.T + h @ W_hh.T + b, 4, axis=1)
    c_next = _sigmoid(a_f) * c + _sigmoid(a_i) * np.tanh(a_g)
    return _sigmoid(a_o) * np.tanh(c_next), c_next


def _sequence_numpy(x, h, c, W_ih, W_hh, b):
    outputs = []
    for t in range(x.shape[1]):
        h, c = _step_numpy(x[:, t], h, c, W_ih, W_hh, b)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def _params(seed, I, H, scale=0.6):
    r = np.random.default_rng(seed)
    return [r.standard_normal((4 * H, I)) * scale, r.standard_normal((4 * H, H)) * scale,
            r.standard_normal(4 * H) * 0.3, r.standard_normal(4 * H) * 0.3]


def _cell(c, I, H, params):
    """A student LSTMCell holding the given (weight_ih, weight_hh, bias_ih, bias_hh)."""
    cell = c.get("LSTMCell")(I, H, rng=np.random.default_rng(0))
    _set(c, cell, params)
    return cell


def _set(c, cell, params):
    for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), params):
        setattr(cell, name, value if hasattr(value, "data") else c.tensor(value,
                                                                         requires_grad=True))


def _pair(result, what):
    if not (isinstance(result, tuple) and len(result) == 2):
        raise SolutionError("%s must return a pair, got %s" % (what, type(result).__name__))
    return result


# ----- LSTMCell -------------------------------------------------------------------------------
@STEP.check("cell_parameters_have_pytorch_names_shapes_and_init")
def cell_parameters(c):
    """weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,), drawn from
    U(-1/sqrt(H), 1/sqrt(H)) in that order."""
    LSTMCell = c.get("LSTMCell")
    I, H = 3, 5
    cell = LSTMCell(I, H, rng=np.random.default_rng(7))
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    shapes = ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))
    for name, shape in zip(names, shapes):
        c.true(hasattr(cell, name), "LSTMCell has no attribute %r (PyTorch's names)" % name)
        c.shape("LSTMCell(3, 5).%s" % name, getattr(cell, name), shape, dtype=np.float64)
        c.true(getattr(cell, name).requires_grad, "%s should require grad" % name)
    c.true([id(p) for p in cell.parameters()] == [id(getattr(cell, n)) for n in names],
           "cell.parameters() should list weight_ih, weight_hh, bias_ih, bias_hh")
    for name in names:
        c.expect("LSTMCell(3, 5, rng=default_rng(7)).%s" % name, getattr(cell, name),
                 reference=lambda name=name: _init_numpy(I, H, 7)[names.index(name)])


def _init_numpy(I, H, seed):
    rng, bound = np.random.default_rng(seed), 1 / np.sqrt(H)
    return [rng.uniform(-bound, bound, size=s) for s in ((4 * H, I), (4 * H, H), 4 * H, 4 * H)]


@STEP.check("cell_forward_by_hand")
def cell_by_hand(c):
    """I = H = 1, x = 1, h = 0, c = 2, weights giving i = 3/4, f = 1/4, g = 1/2, o = 1/2:
    c' = 1/4 * 2 + 3/4 * 1/2 = 0.875 and h' = tanh(0.875) / 2; zero state: c' = 0.375."""
    ln3 = np.log(3.0)
    params = [np.array([[ln3], [-ln3], [0.5 * ln3], [0.0]]), np.array([[0.3], [0.2], [0.1],
                                                                        [-0.4]]),
              np.zeros(4), np.zeros(4)]
    cell = _cell(c, 1, 1, params)
    h, c_next = _pair(cell(c.tensor([[1.0]]), (c.tensor([[0.0]]), c.tensor([[2.0]]))),
                      "LSTMCell.forward")
    c.known("c' (i = 3/4, f = 1/4, g = 1/2, c = 2)", c_next, np.array([[0.875]]))
    c.known("h' = o tanh(c')", h, np.array([[0.5 * np.tanh(0.875)]]))
    h, c_next = _pair(cell(c.tensor([[1.0]])), "LSTMCell.forward")
    c.known("c' from the zero state (state=None)", c_next, np.array([[0.375]]))
    c.known("h' from the zero state", h, np.array([[0.5 * np.tanh(0.375)]]))


@STEP.check("cell_forward_matches_numpy")
def cell_forward(c):
    """B = 3, I = 4, H = 5 random: (h', c') equal the recorded values (checked against a
    NumPy step)."""
    r = np.random.default_rng(1)
    x, h0, c0 = r.standard_normal((3, 4)), r.standard_normal((3, 5)), r.standard_normal((3, 5))
    params = _params(2, 4, 5)
    cell = _cell(c, 4, 5, params)
    h, c_next = _pair(cell(c.tensor(x), (c.tensor(h0), c.tensor(c0))), "LSTMCell.forward")
    W_ih, W_hh, b_ih, b_hh = params
    expected = _step_numpy(x, h0, c0, W_ih, W_hh, b_ih + b_hh)
    c.shape("h'", h, (3, 5))
    c.expect("h'", h, reference=lambda: expected[0])
    c.expect("c'", c_next, reference=lambda: expected[1])


@STEP.check("cell_gradients_match_central_differences")
def cell_gradcheck(c):
    """Autograd through the composed cell, for x, h, c and the four parameters, against
    central differences (float64)."""
    r = np.random.default_rng(3)
    arrays = [r.standard_normal((2, 2)), r.standard_normal((2, 2)) * 0.5,
              r.standard_normal((2, 2)) * 0.5] + _params(4, 2, 2)
    cell = _cell(c, 2, 2, _params(4, 2, 2))

    def step(x, h, c_prev, W_ih, W_hh, b_ih, b_hh):
        _set(c, cell, (W_ih, W_hh, b_ih, b_hh))
        return _pair(cell(x, (h, c_prev)), "LSTMCell.forward")

    c.gradcheck(step, arrays, ["dx", "dh", "dc", "dweight_ih", "dweight_hh", "dbias_ih",
                               "dbias_hh"])


@STEP.check("cell_rejects_a_wrong_input_size")
def cell_errors(c):
    """An x of shape (2, 5) for an LSTMCell(3, 4) is a ValueError naming LSTMCell and (2, 5)."""
    cell = c.get("LSTMCell")(3, 4, rng=np.random.default_rng(0))
    c.raises("LSTMCell(3, 4) on x (2, 5)", lambda: cell(c.tensor(np.zeros((2, 5)))),
             (ValueError,), contains=("LSTMCell", "(2, 5)"))


# ----- LSTM -----------------------------------------------------------------------------------
@STEP.check("lstm_equals_the_cell_applied_step_by_step")
def lstm_sequence(c):
    """B = 2, T = 5, I = 3, H = 4, from a given state: outputs (B, T, H) and (h_T, c_T) equal
    the recorded values (checked against a NumPy loop); outputs[:, -1] is h_T."""
    LSTM = c.get("LSTM")
    r = np.random.default_rng(5)
    x, h0, c0 = r.standard_normal((2, 5, 3)), r.standard_normal((2, 4)), r.standard_normal((2, 4))
    params = _params(6, 3, 4)
    lstm = LSTM(3, 4, rng=np.random.default_rng(0))
    _set(c, lstm.cell, params)
    outputs, state = _pair(lstm(c.tensor(x), (c.tensor(h0), c.tensor(c0))), "LSTM.forward")
    h_T, c_T = _pair(state, "the state LSTM.forward returns")
    W_ih, W_hh, b_ih, b_hh = params
    expected = _sequence_numpy(x, h0, c0, W_ih, W_hh, b_ih + b_hh)
    c.shape("outputs", outputs, (2, 5, 4))
    c.expect("outputs", outputs, reference=lambda: expected[0])
    c.expect("h_T", h_T, reference=lambda: expected[1])
    c.expect("c_T", c_T, reference=lambda: expected[2])
    c.known("outputs[:, -1] against h_T", c.array(outputs)[:, -1], c.array(h_T))
    outputs, _ = _pair(lstm(c.tensor(x)), "LSTM.forward")
    zeros = np.zeros((2, 4))
    c.expect("outputs from the zero state (state=None)", outputs,
             reference=lambda: _sequence_numpy(x, zeros, zeros, W_ih, W_hh, b_ih + b_hh)[0])


@STEP.check("forget_gate_bias_keeps_the_memory")
def forget_bias(c):
    """Zero weights, biases b_f = 3, b_o = 1, b_i = 2, b_g = 0: g = 0, so c_t = sigmoid(3)^t c_0
    (0.37 c_0 after 20 steps) and h_t = sigmoid(1) tanh(c_t); with b_f = 0, 0.5^t c_0."""
    LSTM = c.get("LSTM")
    H, T = 2, 20
    x = np.random.default_rng(8).standard_normal((1, T, 3))
    c0 = np.array([[1.5, -2.0]])
    for b_f in (3.0, 0.0):
        lstm = LSTM(3, H, rng=np.random.default_rng(0))
        bias = np.repeat([2.0, b_f, 0.0, 1.0], H)
        _set(c, lstm.cell, (np.zeros((4 * H, 3)), np.zeros((4 * H, H)), bias, np.zeros(4 * H)))
        outputs, state = _pair(lstm(c.tensor(x), (c.tensor(np.zeros((1, H))), c.tensor(c0))),
                               "LSTM.forward")
        c_t = _sigmoid(b_f) ** np.arange(1, T + 1)[None, :, None] * c0[:, None, :]
        c.known("c_T with forget bias %g" % b_f, state[1], c_t[:, -1])
        c.known("every h_t with forget bias %g" % b_f, outputs, _sigmoid(1.0) * np.tanh(c_t))


@STEP.check("lstm_gradients_flow_back_through_time")
def lstm_gradcheck(c):
    """Autograd through 3 steps (x, h_0, c_0 and the parameters) against central differences."""
    LSTM = c.get("LSTM")
    r = np.random.default_rng(9)
    arrays = [r.standard_normal((1, 3, 2)), r.standard_normal((1, 2)) * 0.5,
              r.standard_normal((1, 2)) * 0.5] + _params(10, 2, 2)
    lstm = LSTM(2, 2, rng=np.random.default_rng(0))

    def run(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
        _set(c, lstm.cell, (W_ih, W_hh, b_ih, b_hh))
        outputs, (h_T, c_T) = _pair(lstm(x, (h0, c0)), "LSTM.forward")
        return outputs, c_T

    c.gradcheck(run, arrays, ["dx", "dh_0", "dc_0", "dweight_ih", "dweight_hh", "dbias_ih",
                              "dbias_hh"])


# ----- the backward by hand -------------------------------------------------------------------
@STEP.check("lstm_cell_backward_matches_central_differences")
def hand_backward(c):
    """The six hand-derived gradients of L = sum(dh' * h') + sum(dc' * c') against central
    differences of a NumPy step."""
    lstm_cell_backward = c.get("lstm_cell_backward")
    r = np.random.default_rng(11)
    B, I, H = 2, 3, 2
    inputs = [r.standard_normal((B, I)), r.standard_normal((B, H)) * 0.5,
              r.standard_normal((B, H)) * 0.5, r.standard_normal((4 * H, I)) * 0.6,
              r.standard_normal((4 * H, H)) * 0.6, r.standard_normal(4 * H) * 0.3]
    dh_next, dc_next = r.standard_normal((B, H)), r.standard_normal((B, H))
    got = lstm_cell_backward(*[a.copy() for a in inputs], dh_next.copy(), dc_next.copy())
    if not (isinstance(got, (tuple, list)) and len(got) == 6):
        raise SolutionError("lstm_cell_backward must return six gradients (dx, dh, dc, "
                            "dweight_ih, dweight_hh, dbias)")

    def loss(*arrays):
        h_next, c_next = _step_numpy(*arrays)
        return np.sum(dh_next * h_next) + np.sum(dc_next * c_next)

    labels = ["dx", "dh", "dc", "dweight_ih", "dweight_hh", "dbias"]
    for k, (label, g) in enumerate(zip(labels, got)):
        c.known(label, g, _central_differences(loss, inputs, k), atol=NUMERICAL_ATOL,
                rtol=NUMERICAL_RTOL, typical=TYPICAL_NUMERICAL_ERROR)


def _central_differences(loss, arrays, k, eps=1e-6):
    arrays = [a.copy() for a in arrays]
    grad = np.zeros_like(arrays[k])
    for index in np.ndindex(arrays[k].shape):
        saved = arrays[k][index]
        arrays[k][index] = saved + eps
        plus = loss(*arrays)
        arrays[k][index] = saved - eps
        minus = loss(*arrays)
        arrays[k][index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad
