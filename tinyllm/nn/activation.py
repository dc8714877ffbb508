"""Activation layers: modules without parameters around ``tinyllm.functional``'s activations,
for use in ``Sequential``. Shapes: any input; the output has the input's shape."""

from tinyllm.functional import activation as F
from tinyllm.nn.module import Module


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    """y = x * Phi(x); ``approximate="tanh"`` for the tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError("GELU: approximate must be 'none' or 'tanh', got %r"
                             % (approximate,))
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return "approximate=%r" % self.approximate


class SiLU(Module):
    """y = x * sigmoid(x) (swish)."""

    def forward(self, x):
        return F.silu(x)


class Tanh(Module):
    """y = tanh(x)."""

    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + e^-x)."""

    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    """y = softmax(x) along ``dim`` (default the last axis)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return "dim=%s" % self.dim


class LogSoftmax(Module):
    """y = log_softmax(x) along ``dim`` (default the last axis)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim)

    def extra_repr(self):
        return "dim=%s" % self.dim
