"""Rotary position embedding (RoPE, Su et al. 2021, "RoFormer") as one op, ``Rotary``.

RoPE turns each pair of features (a, b) of a query or key at position m by the angle
m * theta_i, theta_i = base^(-2i / D) for pair i = 0 .. D/2 - 1:

    (a, b) -> (a cos(m theta_i) - b sin(m theta_i),  a sin(m theta_i) + b cos(m theta_i))

A dot product of two rotated vectors then depends on their positions only through m - n.
Written for the whole vector with tables cos, sin of shape (T, D) (each angle stored at both
features of its pair):

    y = x * cos + rotate(x) * sin,     rotate(x) = the pairs (a, b) turned by 90 degrees: (-b, a)

Which features form a pair is the *layout*:

- ``"interleaved"`` (RoFormer, Meta's Llama code): pairs (x_0, x_1), (x_2, x_3), ...;
  rotate(x) = (-x_1, x_0, -x_3, x_2, ...);
- ``"half"`` (Hugging Face's Llama): pairs (x_i, x_{i + D/2}); rotate(x) = (-x_2nd, x_1st)
  where x_1st, x_2nd are the two halves (Hugging Face's ``rotate_half``).

Backward: rotate is a linear map R with R^T = -R (a 90-degree turn of each pair), so

    dL/dx = dL/dy * cos + R^T (dL/dy * sin) = dL/dy * cos - rotate(dL/dy * sin).

cos and sin are constants (no gradient). ``tinyllm.functional.rotary`` builds the tables and
checks the arguments.
"""

import numpy as np

from tinyllm.autograd import Function

ROPE_LAYOUTS = ("half", "interleaved")


def rotate(x, layout):
    """Each pair of features of x (..., D) turned by 90 degrees, (a, b) -> (-b, a)."""
    if layout == "half":
        first, second = np.split(x, 2, axis=-1)
        return np.concatenate([-second, first], axis=-1)
    out = np.empty_like(x)
    out[..., 0::2] = -x[..., 1::2]
    out[..., 1::2] = x[..., 0::2]
    return out


class Rotary(Function):
    """y = x * cos + rotate(x) * sin (see the module docstring); x (..., T, D), cos and sin
    broadcastable to x (usually (T, D))."""

    @staticmethod
    def forward(ctx, x, cos, sin, layout="half"):
        ctx.save_for_backward(cos, sin)
        ctx.layout = layout
        return (x * cos + rotate(x, layout) * sin).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return grad * cos - rotate(grad * sin, ctx.layout), None, None
