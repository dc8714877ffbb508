"""``Linear`` (y = x W^T + b) and ``Identity``."""

import math
import numbers

from tinyllm import ops
from tinyllm.functional.linear import linear
from tinyllm.nn import init
from tinyllm.nn.module import Module
from tinyllm.nn.parameter import Parameter


class Linear(Module):
    """Affine map y = x W^T + b (see ``tinyllm.functional.linear``).

    Shapes: x (..., in_features) -> y (..., out_features). Parameters: ``weight``
    (out_features, in_features) and ``bias`` (out_features,), both drawn from
    U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError("Linear: %s must be a positive integer, got %r"
                                 % (name, value))
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(ops.zeros(out_features, in_features, dtype=dtype))
        if bias:
            self.bias = Parameter(ops.zeros(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # kaiming_uniform_ with a = sqrt(5) gives the bound 1 / sqrt(in_features).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return "in_features=%d, out_features=%d, bias=%s" % (
            self.in_features, self.out_features, self.bias is not None)


class Identity(Module):
    """y = x; a placeholder where a layer is optional (arguments are accepted and ignored)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
