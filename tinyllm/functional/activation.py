"""Activation functions as plain functions: thin, documented forwards to ``tinyllm.ops``.

Each works elementwise (or along one axis for the softmax family) on a tensor of any shape and
returns a tensor of the same shape; the backward passes are those of the ops in
``tinyllm.ops.elementwise`` and ``tinyllm.ops.reduction``.
"""

from tinyllm import ops


def relu(x):
    """ReLU(x) = max(x, 0);  d/dx = 1 where x > 0, else 0."""
    return ops.relu(x)


def gelu(x, approximate="none"):
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (the activation of GPT and BERT).

    ``approximate="none"`` (the default, as PyTorch) uses Phi(x) = (1 + erf(x / sqrt 2)) / 2;
    ``approximate="tanh"`` uses x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the form of
    the original GPT-2 code.
    """
    return ops.gelu(x, approximate=approximate)


def sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x), in (0, 1);  d/dx = sigma(x) (1 - sigma(x))."""
    return ops.sigmoid(x)


def tanh(x):
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x), in (-1, 1);  d/dx = 1 - tanh(x)^2."""
    return ops.tanh(x)


def softmax(x, dim=None, *, axis=None):
    """softmax(x)_i = exp(x_i) / sum_j exp(x_j) along one axis (``dim`` or ``axis``; default
    the last). Each slice along that axis becomes a probability distribution."""
    return ops.softmax(x, _one_axis("softmax", dim, axis))


def log_softmax(x, dim=None, *, axis=None):
    """log_softmax(x)_i = x_i - log sum_j exp(x_j) along one axis (default the last), computed
    stably; the input of ``nll_loss``."""
    return ops.log_softmax(x, _one_axis("log_softmax", dim, axis))


def _one_axis(opname, dim, axis):
    if dim is not None and axis is not None:
        raise TypeError("%s: give dim= or axis=, not both" % opname)
    if dim is not None:
        return dim
    return -1 if axis is None else axis


def silu(x):
    """SiLU (swish), x * sigma(x);  d/dx = sigma(x) (1 + x (1 - sigma(x))). Llama's
    feed-forward gate (see ``tinyllm.functional.swiglu``)."""
    return ops.silu(x)
