"""``LlamaMLP``: the SwiGLU feed-forward block of Llama, down(silu(gate(x)) * up(x))."""

from tinyllm.functional.swiglu import swiglu
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module


class LlamaMLP(Module):
    """SwiGLU feed-forward (see ``tinyllm.functional.swiglu``), no biases:

        y = down_proj(silu(gate_proj(x)) * up_proj(x))

    Shapes: x (..., hidden_size) -> y (..., hidden_size). Parameters, Hugging Face's names:
    ``gate_proj`` and ``up_proj`` Linear(hidden_size, intermediate_size), ``down_proj``
    Linear(intermediate_size, hidden_size). Three matrices instead of a GELU MLP's two, so
    Llama takes intermediate_size about 8/3 hidden_size for the same parameter count as 4x.
    """

    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x):
        return swiglu(x, self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight)
