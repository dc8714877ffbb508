"""Weight initialisation, with PyTorch's names: each function fills a tensor in place.

All of them work under ``no_grad`` (filling a parameter is not part of any computation to
differentiate), return the tensor, and draw from ``tinyllm.random.default_generator()`` unless
given a NumPy ``generator=``, so ``tinyllm.manual_seed`` makes a model's weights repeatable.

Why the scales: a layer y = W x with fan_in inputs of variance 1 and weights of variance s^2
gives outputs of variance fan_in * s^2. Choosing s^2 = 1 / fan_in (times a gain that makes up
for what the nonlinearity removes, e.g. 2 for ReLU, which zeroes half its inputs) keeps the
activations' size steady from layer to layer: that is Xavier/Glorot and Kaiming/He init.
"""

import math
from contextlib import contextmanager

import numpy as np

from tinyllm import random
from tinyllm.autograd import no_grad


_skip_init = False      # True inside ``no_init()``


@contextmanager
def no_init():
    """Inside ``with no_init():`` the fill functions below leave tensors as they are (new
    parameters stay zero), for a model whose weights are about to be loaded: drawing 124M
    random numbers only to overwrite them costs seconds (PyTorch's ``skip_init``, Hugging
    Face's ``no_init_weights``)."""
    global _skip_init
    previous, _skip_init = _skip_init, True
    try:
        yield
    finally:
        _skip_init = previous


def _rng(generator):
    return random.default_generator() if generator is None else generator


def _fill(tensor, values):
    with no_grad():
        tensor.copy_(np.asarray(values, dtype=tensor.dtype))
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples of the uniform distribution U(a, b)."""
    if _skip_init:
        return tensor
    return _fill(tensor, _rng(generator).uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples of the normal distribution N(mean, std^2)."""
    if _skip_init:
        return tensor
    return _fill(tensor, _rng(generator).normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with samples of N(mean, std^2) restricted to [a, b] (absolute bounds, as PyTorch).

    Samples outside [a, b] are drawn again until every one lies inside.
    """
    if not a < b:
        raise ValueError("trunc_normal_: the bounds must satisfy a < b, got a=%r, b=%r" % (a, b))
    if _skip_init:
        return tensor
    rng = _rng(generator)
    values = rng.normal(mean, std, size=tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, value):
    """Fill with ``value``."""
    if _skip_init:
        return tensor
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: the number of inputs and outputs each unit connects to.

    For a Linear weight (out, in): (in, out). For higher ranks (out, in, *kernel), both are
    multiplied by the kernel's size (PyTorch's ``_calculate_fan_in_and_fan_out``).
    """
    if tensor.ndim < 2:
        raise ValueError("fan_in_and_fan_out: needs a tensor with at least 2 axes (out, in), "
                         "got shape %s" % (tuple(tensor.shape),))
    receptive_field = int(np.prod(tensor.shape[2:]))
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def calculate_gain(nonlinearity, param=None):
    """The factor by which to scale the standard deviation for a nonlinearity (as PyTorch).

    linear/identity/conv/sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);
    leaky_relu with negative slope a (``param``, default 0.01): sqrt(2 / (1 + a^2));  selu: 3/4.
    """
    if nonlinearity in ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d",
                        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError("calculate_gain: negative_slope %r is not a number" % (slope,))
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError("calculate_gain: unsupported nonlinearity %r" % (nonlinearity,))


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError("mode must be 'fan_in' or 'fan_out', got %r" % (mode,))
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)), so the variance b^2 / 3 is
    2 gain^2 / (fan_in + fan_out): the average of the forward (fan_in) and backward (fan_out)
    conditions."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan), gain = ``calculate_gain(nonlinearity, a)``.

    ``nn.Linear`` uses a = sqrt(5): gain^2 = 2 / 6, so b = sqrt(3 / 3 / fan_in) = 1 / sqrt(fan_in).
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan), gain = ``calculate_gain(nonlinearity, a)``."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)
