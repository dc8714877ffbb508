"""``RotaryEmbedding``: the cos and sin tables of rotary position embeddings (RoPE), computed
once for every position up to ``max_position_embeddings`` (see ``tinyllm.functional.rotary``
and the op in ``tinyllm.ops.rotary``)."""

import numpy as np

from tinyllm.functional.rotary import apply_rotary_emb, rope_cos_sin
from tinyllm.nn.module import Module


class RotaryEmbedding(Module):
    """Tables cos, sin of shape (max_position_embeddings, head_dim) for the angles m * w_i,
    w_i = theta^(-2i / head_dim), in the ``layout`` "half" (Hugging Face) or "interleaved"
    (RoFormer, Meta), in float64 (rounded to the input's dtype when applied). They are not
    parameters and not saved in the ``state_dict``.

    ``forward(offset, length) -> (cos, sin)``: the rows of positions offset .. offset +
    length - 1, each (length, head_dim). ``rotate(x, cos, sin)`` applies them to x (B, H, T, D).
    """

    def __init__(self, head_dim, max_position_embeddings=2048, theta=10000.0, layout="half"):
        super().__init__()
        self.head_dim, self.max_position_embeddings = head_dim, max_position_embeddings
        self.theta, self.layout = float(theta), layout
        self.cos, self.sin = rope_cos_sin(head_dim, np.arange(max_position_embeddings), theta,
                                          layout, np.float64)

    def forward(self, offset, length):
        end = offset + length
        if end > self.max_position_embeddings:
            raise ValueError("RotaryEmbedding: positions %d .. %d exceed max_position_embeddings "
                             "%d" % (offset, end - 1, self.max_position_embeddings))
        return self.cos[offset:end], self.sin[offset:end]

    def rotate(self, x, cos, sin):
        """x (B, H, T, D) with RoPE applied: x * cos + rotate(x) * sin."""
        return apply_rotary_emb(x, cos, sin, self.layout)

    def extra_repr(self):
        return "head_dim=%d, max_position_embeddings=%d, theta=%g, layout=%r" % (
            self.head_dim, self.max_position_embeddings, self.theta, self.layout)
