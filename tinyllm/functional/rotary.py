"""Rotary position embeddings (RoPE): the angle tables and their application to queries and
keys (the op ``Rotary`` in ``tinyllm.ops.rotary`` holds the formula and the backward).

For head size D (even) and base theta (``rope_theta``, 10000 in Llama 1 and 2), pair i of the
D/2 pairs turns by m * w_i at position m, with w_i = theta^(-2i / D): the first pairs turn
fast (they resolve nearby positions), the last ones slowly (far positions).
"""

import numpy as np

from tinyllm.ops.rotary import ROPE_LAYOUTS, Rotary


def _check_layout(opname, layout):
    if layout not in ROPE_LAYOUTS:
        raise ValueError("%s: layout must be 'half' (Hugging Face) or 'interleaved' (RoFormer, "
                         "Meta), got %r" % (opname, layout))


def rope_frequencies(head_dim, theta=10000.0):
    """The D/2 angular frequencies w_i = theta^(-2i / D), i = 0 .. D/2 - 1 (float64), Hugging
    Face's ``inv_freq``."""
    if head_dim < 2 or head_dim % 2:
        raise ValueError("rope_frequencies: head_dim must be even and positive (features are "
                         "turned in pairs), got %r" % (head_dim,))
    return 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def rope_cos_sin(head_dim, positions, theta=10000.0, layout="half", dtype=np.float32):
    """cos and sin tables, each (T, D), for the positions (T,): angle m * w_i stored at both
    features of pair i, which are (i, i + D/2) in the "half" layout and (2i, 2i + 1) in the
    "interleaved" one. Angles are computed in float64 and rounded once to ``dtype``."""
    _check_layout("rope_cos_sin", layout)
    angles = np.outer(np.asarray(positions, dtype=np.float64),
                      rope_frequencies(head_dim, theta))                    # (T, D/2)
    if layout == "half":
        angles = np.concatenate([angles, angles], axis=-1)                  # (T, D)
    else:
        angles = np.repeat(angles, 2, axis=-1)                              # (T, D)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def apply_rotary_emb(x, cos, sin, layout="half"):
    """Rotate x (B, H, T, D) (or any (..., T, D)) by the tables cos, sin (T, D) of its T
    positions: y = x * cos + rotate(x) * sin. Differentiable in x; shapes as x."""
    _check_layout("apply_rotary_emb", layout)
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError("apply_rotary_emb: x must have shape (..., T, D) with D even, got %s"
                         % (tuple(x.shape),))
    table = tuple(x.shape[-2:])
    for name, t in (("cos", cos), ("sin", sin)):
        if tuple(np.shape(t)) != table:
            raise ValueError("apply_rotary_emb: %s of shape %s must be (T, D) = %s for x of "
                             "shape %s" % (name, tuple(np.shape(t)), table, tuple(x.shape)))
    return Rotary.apply(x, np.asarray(cos, dtype=x.dtype), np.asarray(sin, dtype=x.dtype),
                        layout=layout)


def rotary_embedding(x, offset=0, theta=10000.0, layout="half"):
    """RoPE of x (B, H, T, D) whose T positions are offset, offset + 1, ..., offset + T - 1
    (``offset`` = the number of positions already in a KV cache)."""
    T, D = x.shape[-2:]
    cos, sin = rope_cos_sin(D, np.arange(offset, offset + T), theta, layout, x.dtype)
    return apply_rotary_emb(x, cos, sin, layout)
