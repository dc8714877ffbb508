"""Recurrent layers: ``LSTMCell`` (one time step) and ``LSTM`` (whole sequences, stacked layers).

A long short-term memory (LSTM) carries two vectors of size H from one time step to the next:
the hidden state h (what the layer outputs) and the cell state c (its memory). At each step
four gates, computed from the input x_t and the previous hidden state, decide what to forget,
what to write and what to show:

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate: how much of g to write
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate: how much of c to keep
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         the candidate values to write
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate: how much of the memory to show
    c' = f * c + i * g
    h' = o * tanh(c')

The four gates' weights are stored stacked in the order i, f, g, o, as in PyTorch: ``weight_ih``
is (4H, I) = [W_ii; W_if; W_ig; W_io] and ``weight_hh`` is (4H, H), so a PyTorch ``state_dict``
loads unchanged. Because c' = f * c + i * g is a sum, not a product of matrices, the gradient
can flow back through many steps of c without vanishing as long as f stays near 1.

``lstm_cell`` (in ``tinyllm.ops.rnn``) computes a step as one autograd ``Function`` whose
backward is derived by hand (the fast path, used by the layers); ``lstm_cell_reference``
computes the same step with tensor ops and autograd, as a reference the tests hold it to.
"""

import math

from tinyllm import functional as F
from tinyllm import ops
from tinyllm.nn import init
from tinyllm.nn.module import Module
from tinyllm.nn.parameter import Parameter
from tinyllm.ops.rnn import LSTMCellFunction, lstm_cell, lstm_cell_reference  # noqa: F401


def _uniform_parameter(shape, bound):
    """A Parameter with entries drawn from U(-bound, bound) (PyTorch's RNN initialisation)."""
    return init.uniform_(Parameter(ops.zeros(*shape)), -bound, bound)


def _shape_str(shape):
    return str(tuple(shape))


class LSTMCell(Module):
    """One LSTM time step: ``(h', c') = cell(x, (h, c))``.

    Equations (gate order i, f, g, o as in PyTorch):

        i = sigmoid(x W_ii^T + b_ii + h W_hi^T + b_hi)
        f = sigmoid(x W_if^T + b_if + h W_hf^T + b_hf)
        g = tanh(x W_ig^T + b_ig + h W_hg^T + b_hg)
        o = sigmoid(x W_io^T + b_io + h W_ho^T + b_ho)
        c' = f * c + i * g
        h' = o * tanh(c')

    Parameters: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih`` and ``bias_hh`` (4H,)
    (absent when ``bias=False``), all initialised from U(-1/sqrt(H), 1/sqrt(H)).

    Shapes: x (B, I) or unbatched (I,); h and c (B, H) or (H,); zeros when ``hx`` is None.
    """

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = _uniform_parameter((4 * hidden_size, input_size), bound)
        self.weight_hh = _uniform_parameter((4 * hidden_size, hidden_size), bound)
        if bias:
            self.bias_ih = _uniform_parameter((4 * hidden_size,), bound)
            self.bias_hh = _uniform_parameter((4 * hidden_size,), bound)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def forward(self, input, hx=None):
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError("LSTMCell: expected input of shape (B, %d) or (%d,), got %s"
                             % (self.input_size, self.input_size, _shape_str(input.shape)))
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        batch = x.shape[0]
        if hx is None:
            h = c = ops.zeros(batch, self.hidden_size, dtype=x.dtype)
        else:
            h, c = (self._check_state(name, s, batch, batched) for name, s in zip("hc", hx))
        h_next, c_next = lstm_cell(x, h, c, self.weight_ih, self.weight_hh,
                                   self.bias_ih, self.bias_hh)
        if not batched:
            h_next, c_next = h_next.squeeze(0), c_next.squeeze(0)
        return h_next, c_next

    def _check_state(self, name, state, batch, batched):
        expected = (batch, self.hidden_size) if batched else (self.hidden_size,)
        if tuple(state.shape) != expected:
            raise ValueError("LSTMCell: expected %s of shape %s for this input, got %s"
                             % (name, _shape_str(expected), _shape_str(state.shape)))
        return state if batched else state.unsqueeze(0)

    def extra_repr(self):
        return "%d, %d%s" % (self.input_size, self.hidden_size, "" if self.bias else ", bias=False")


class LSTM(Module):
    """A multi-layer LSTM run over whole sequences: ``output, (h_n, c_n) = lstm(x, (h_0, c_0))``.

    Layer 0 reads the input sequence; layer k > 0 reads the hidden states of layer k - 1 (with
    dropout between layers in training mode when ``dropout > 0``). With
    ``bidirectional=True`` every layer also runs a second LSTM from the last step to the first
    and the two hidden states are concatenated (D = 2 directions, else D = 1).

    Shapes (T = sequence length, B = batch, H = hidden_size, L = num_layers):

    - input: (T, B, input_size), or (B, T, input_size) with ``batch_first=True``, or unbatched
      (T, input_size);
    - h_0, c_0: (L * D, B, H), or (L * D, H) for unbatched input; zeros when ``hx`` is None;
    - output: the last layer's h_t for every t, (T, B, D * H) (or (B, T, D * H) with
      ``batch_first``, (T, D * H) unbatched);
    - h_n, c_n: the final states of every layer and direction, (L * D, B, H) (``batch_first``
      does not change them, as in PyTorch).

    Parameters, as in PyTorch: ``weight_ih_l{k}`` (4H, I_k), ``weight_hh_l{k}`` (4H, H),
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,) for layer k, with I_0 = input_size and
    I_k = D * H; the reverse direction's are suffixed ``_reverse``. Gate order i, f, g, o;
    initialisation U(-1/sqrt(H), 1/sqrt(H)). See ``LSTMCell`` for the equations.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0):
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM: proj_size (LSTM with projections) is not "
                                      "supported; use proj_size=0")
        if num_layers < 1:
            raise ValueError("LSTM: num_layers must be at least 1, got %d" % num_layers)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError("LSTM: dropout must be a probability in [0, 1], got %r" % dropout)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                setattr(self, "weight_ih" + suffix,
                        _uniform_parameter((4 * hidden_size, layer_input), bound))
                setattr(self, "weight_hh" + suffix,
                        _uniform_parameter((4 * hidden_size, hidden_size), bound))
                if bias:
                    setattr(self, "bias_ih" + suffix, _uniform_parameter((4 * hidden_size,), bound))
                    setattr(self, "bias_hh" + suffix, _uniform_parameter((4 * hidden_size,), bound))

    def _suffixes(self, layer):
        """Parameter name endings of one layer: "_l0", and "_l0_reverse" when bidirectional."""
        return ["_l%d" % layer, "_l%d_reverse" % layer][:self.num_directions]

    def _weights(self, suffix):
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction (biases: None
        when bias=False)."""
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        weights = [getattr(self, name + suffix) for name in names]
        return tuple(weights) + (None,) * (4 - len(weights))

    def forward(self, input, hx=None):
        batched = self._check_input(input)
        time_axis = 1 if batched and self.batch_first else 0
        x = input if batched else input.unsqueeze(1)            # (T, 1, I) when unbatched
        steps = [s.squeeze(time_axis) for s in x.split(1, axis=time_axis)]   # T x (B, I)
        batch = steps[0].shape[0]
        h_0, c_0 = self._initial_state(hx, batch, batched, x.dtype)

        h_n, c_n = [], []
        for layer in range(self.num_layers):
            directions = []
            for d, suffix in enumerate(self._suffixes(layer)):
                index = layer * self.num_directions + d
                outputs, h, c = self._run_direction(steps, h_0[index], c_0[index],
                                                    self._weights(suffix), reverse=d == 1)
                directions.append(outputs)
                h_n.append(h)
                c_n.append(c)
            steps = directions[0] if len(directions) == 1 else \
                [ops.cat(pair, axis=-1) for pair in zip(*directions)]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                steps = [F.dropout(s, p=self.dropout, training=True) for s in steps]

        output = ops.stack(steps, axis=time_axis)
        h_n, c_n = ops.stack(h_n, axis=0), ops.stack(c_n, axis=0)
        if not batched:
            output, h_n, c_n = output.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)

    @staticmethod
    def _run_direction(steps, h, c, weights, reverse=False):
        """Run one layer in one direction over the list of steps; returns the hidden state at
        every step (in time order) and the final (h, c)."""
        outputs = [None] * len(steps)
        order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
        for t in order:
            h, c = lstm_cell(steps[t], h, c, *weights)
            outputs[t] = h
        return outputs, h, c

    def _check_input(self, input):
        """Check rank and feature size; returns whether the input has a batch axis."""
        layout = "(B, T, %d)" % self.input_size if self.batch_first else \
            "(T, B, %d)" % self.input_size
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError("LSTM: expected input of shape %s or unbatched (T, %d), got %s"
                             % (layout, self.input_size, _shape_str(input.shape)))
        if input.shape[1 if input.ndim == 3 and self.batch_first else 0] == 0:
            raise ValueError("LSTM: the input sequence of shape %s is empty (length 0)"
                             % _shape_str(input.shape))
        return input.ndim == 3

    def _initial_state(self, hx, batch, batched, dtype):
        """(h_0, c_0), each (L * D, B, H): the given states, or zeros when hx is None."""
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            zeros = ops.zeros(*shape, dtype=dtype)
            return zeros, zeros
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError("LSTM: hx must be a pair (h_0, c_0), got %r" % type(hx).__name__)
        states = []
        for name, state in zip(("h_0", "c_0"), hx):
            expected = shape if batched else (shape[0], shape[2])
            if tuple(state.shape) != expected:
                raise ValueError("LSTM: expected %s of shape %s (num_layers * num_directions, "
                                 "%sH) for input of this shape, got %s"
                                 % (name, _shape_str(expected), "B, " if batched else "",
                                    _shape_str(state.shape)))
            states.append(state if batched else state.unsqueeze(1))
        return tuple(states)

    def extra_repr(self):
        text = "%d, %d" % (self.input_size, self.hidden_size)
        if self.num_layers != 1:
            text += ", num_layers=%d" % self.num_layers
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += ", dropout=%g" % self.dropout
        if self.bidirectional:
            text += ", bidirectional=True"
        return text
