"""Layer normalisation: ``layer_norm`` checks its arguments and applies the op ``LayerNorm``
(``tinyllm.ops.normalization``, where its backward is derived)."""

import numpy as np

from tinyllm.ops.normalization import LayerNorm, RMSNorm


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axes (see ``LayerNorm``).

    Shapes: x (..., *normalized_shape); weight and bias (optional) ``normalized_shape``;
    y like x. ``normalized_shape`` is an int (the last axis) or a tuple of trailing sizes.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    n = len(shape)
    if n == 0 or x.ndim < n or tuple(x.shape[x.ndim - n:]) != shape:
        raise ValueError("layer_norm: input of shape %s does not end with normalized_shape %s"
                         % (tuple(x.shape), shape))
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and tuple(param.shape) != shape:
            raise ValueError("layer_norm: %s of shape %s does not match normalized_shape %s"
                             % (name, tuple(param.shape), shape))
    axes = tuple(range(x.ndim - n, x.ndim))
    return LayerNorm.apply(x, weight, bias, axes=axes, eps=eps)


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last axis (see the op ``RMSNorm`` in
    ``tinyllm.ops.normalization`` for the backward). PyTorch's ``F.rms_norm`` for one
    normalised axis.

    Shapes: x (..., C); ``normalized_shape`` C (or (C,)); weight (optional) (C,); y like x.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    if len(shape) != 1:
        raise ValueError("rms_norm: normalized_shape must be one size (the last axis), got %s"
                         % (shape,))
    if x.ndim < 1 or x.shape[-1] != shape[0]:
        raise ValueError("rms_norm: input of shape %s does not end with normalized_shape %s"
                         % (tuple(x.shape), shape))
    if weight is not None and tuple(weight.shape) != shape:
        raise ValueError("rms_norm: weight of shape %s does not match normalized_shape %s"
                         % (tuple(weight.shape), shape))
    return RMSNorm.apply(x, weight, eps=eps)
