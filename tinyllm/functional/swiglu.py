"""SwiGLU feed-forward and grouped-query attention's key/value repetition: two pieces of the
modern (Llama-style) decoder, composed from ops so that autograd gives their backward."""

from tinyllm import ops
from tinyllm.functional.linear import linear


def swiglu(x, gate_weight, up_weight, down_weight):
    """SwiGLU feed-forward (Shazeer 2020, Llama), no biases:

        y = (silu(x W_gate^T) * (x W_up^T)) W_down^T

    Shapes: x (..., C), gate_weight and up_weight (F, C), down_weight (C, F) -> y (..., C).
    The SiLU branch gates, feature by feature, the linear branch.
    """
    if gate_weight.shape != up_weight.shape:
        raise ValueError("swiglu: gate_weight %s and up_weight %s must have the same shape (F, C)"
                         % (tuple(gate_weight.shape), tuple(up_weight.shape)))
    if tuple(down_weight.shape) != tuple(gate_weight.shape)[::-1]:
        raise ValueError("swiglu: down_weight of shape %s must be (C, F) = %s"
                         % (tuple(down_weight.shape), tuple(gate_weight.shape)[::-1]))
    return linear(ops.silu(linear(x, gate_weight)) * linear(x, up_weight), down_weight)


def repeat_kv(x, n_rep):
    """Keys or values (B, H_kv, T, D) with each head repeated n_rep times in a row:
    (B, H_kv * n_rep, T, D), head j of the result = head j // n_rep of x (Hugging Face's
    ``repeat_kv``; ``torch.repeat_interleave(x, n_rep, dim=1)``). The backward sums the
    gradients of the copies (through ``expand``)."""
    if x.ndim != 4:
        raise ValueError("repeat_kv: expected keys or values of shape (B, H_kv, T, D), got %s"
                         % (tuple(x.shape),))
    if n_rep == 1:
        return x
    B, H, T, D = x.shape
    return ops.reshape(ops.expand(ops.unsqueeze(x, 2), B, H, n_rep, T, D), (B, H * n_rep, T, D))
