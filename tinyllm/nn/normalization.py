"""``LayerNorm``: normalise each position's features to mean 0 and variance 1, then rescale."""

from tinyllm import ops
from tinyllm.functional.normalization import layer_norm, rms_norm
from tinyllm.nn.module import Module
from tinyllm.nn.parameter import Parameter


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axes (see
    ``tinyllm.functional.layer_norm`` for the formulas and the backward).

    Shapes: x (..., *normalized_shape) -> y like x. Parameters (when
    ``elementwise_affine``): ``weight`` (ones) and ``bias`` (zeros, unless ``bias=False``),
    both of shape ``normalized_shape``.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ops.ones(*self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(ops.zeros(*self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return "%s, eps=%g, elementwise_affine=%s" % (self.normalized_shape, self.eps,
                                                      self.elementwise_affine)


class RMSNorm(Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last axis: LayerNorm without the mean
    subtraction and the bias (Llama's norm; see ``tinyllm.functional.rms_norm``).

    Shapes: x (..., dim) -> y like x. Parameter ``weight`` (dim,), ones. PyTorch's
    ``nn.RMSNorm(dim, eps)`` and Hugging Face's ``LlamaRMSNorm`` compute the same; the default
    eps here is Llama's 1e-6.
    """

    def __init__(self, dim, eps=1e-6, dtype=None):
        super().__init__()
        self.dim, self.eps = int(dim), eps
        self.weight = Parameter(ops.ones(self.dim, dtype=dtype))

    def forward(self, x):
        return rms_norm(x, self.dim, self.weight, self.eps)

    def extra_repr(self):
        return "%d, eps=%g" % (self.dim, self.eps)
