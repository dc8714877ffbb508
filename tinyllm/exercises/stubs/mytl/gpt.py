"""Step gpt (chapter 8): layer norm, GELU, the Transformer block and the GPT language model.

    idx (B, T) token ids
      -> x = wte(idx) + wpe(0 .. T-1)                     token + learned position embeddings
      -> n_layer blocks, each pre-norm:
             x = x + attn(ln_1(x), causal)                position t sees positions <= t
             x = x + c_proj(gelu(c_fc(ln_2(x))))          C -> 4C -> C, on each position
      -> logits = ln_f(x) wte.weight^T                    (B, T, V): the output layer is the
                                                          token embedding (weight tying)

You write ``LayerNormFunction`` (forward and a backward you derive by hand), the ``LayerNorm``
module, ``gelu``, ``Block`` and ``GPT``; ``GPTConfig`` is given. Everything but layer norm is
composed from your earlier steps' ops, so your autograd gives its backward. Keep the
attribute names below: the checker puts its own weights into your model by these names.

Check your work with ``python -m tinyllm.exercises check gpt``.
"""

import math
from dataclasses import dataclass

import numpy as np

from mytl.attention import MultiHeadAttention
from mytl.autograd import Function, Tensor
from mytl.embedding import Embedding
from mytl.losses import cross_entropy
from mytl.nn import Linear, Module


# ----- layer norm ------------------------------------------------------------------------------
class LayerNormFunction(Function):
    """y = weight * (x - mu) / sqrt(var + eps) + bias over the last axis.

    ``LayerNormFunction.apply(x, weight, bias, eps=1e-5)``. Shapes: x (..., D), weight and bias
    (D,) -> y (..., D). mu and var are the mean and the biased variance (divided by D, not
    D - 1) of each row x[..., :]; eps is inside the square root. The dtype of x is kept
    (float32 in, float32 out).

    backward(ctx, grad) returns (dL/dx, dL/dweight, dL/dbias), of the shapes of x, weight and
    bias. Derive them by hand: mu and var depend on every element of the row.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class LayerNorm(Module):
    """Layer normalisation over the last axis, of size ``dim``: ``weight`` (dim,) starts at
    ones and ``bias`` (dim,) at zeros (float64 Tensors, requires_grad=True, set in this
    order), so it starts as plain standardisation. forward(x): x (..., dim) -> (..., dim),
    ``LayerNormFunction.apply`` with this module's ``eps``."""

    def __init__(self, dim, eps=1e-5):
        raise NotImplementedError

    def forward(self, x):
        raise NotImplementedError


# ----- GELU ------------------------------------------------------------------------------------
def gelu(x):
    """GELU, GPT-2's tanh approximation, elementwise:

        gelu(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    Compose it of Tensor ops (autograd gives the backward). x: a Tensor, any shape.
    """
    raise NotImplementedError


# ----- the Transformer block -------------------------------------------------------------------
class Block(Module):
    """One pre-norm Transformer block on x (B, T, C), C = n_embd:

        x = x + attn(ln_1(x), is_causal=True)
        x = x + c_proj(gelu(c_fc(ln_2(x))))

    Sub-modules, created in this order with the same ``rng``: ``ln_1`` LayerNorm(C), ``attn``
    MultiHeadAttention(C, n_head), ``ln_2`` LayerNorm(C), ``c_fc`` Linear(C, 4C), ``c_proj``
    Linear(4C, C). ``rng``: a NumPy Generator (default ``np.random.default_rng()``).
    """

    def __init__(self, n_embd, n_head, rng=None):
        raise NotImplementedError

    def forward(self, x):
        raise NotImplementedError


# ----- the model -------------------------------------------------------------------------------
@dataclass
class GPTConfig:
    """The sizes of a GPT: V = vocab_size tokens, contexts of at most block_size tokens,
    n_layer blocks of n_head heads over n_embd = C features."""
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int


class GPT(Module):
    """A decoder-only Transformer language model (see the module docstring).

    Sub-modules, created in this order with the same ``rng`` (default
    ``np.random.default_rng()``): ``wte`` Embedding(V, C), ``wpe`` Embedding(block_size, C),
    both then multiplied by 0.02 (N(0, 0.02^2), as GPT-2, so that the logits start small and
    the loss starts near log V); ``blocks`` a list of n_layer Blocks; ``ln_f`` LayerNorm(C).
    Keep ``config`` as an attribute. There is no separate output matrix: the logits are
    ln_f(x) @ wte.weight^T, so wte.weight is one Tensor used twice.
    """

    def __init__(self, config, rng=None):
        raise NotImplementedError

    def forward(self, idx, targets=None):
        """Returns (logits, loss).

        idx (B, T) integer token ids (an array), T <= block_size; logits (B, T, V), a Tensor.
        With targets (B, T) integers (the next token at each position), loss =
        cross_entropy(logits (B*T, V), targets (B*T,)), a 0-d Tensor; without targets, loss
        is None.

        A sequence longer than block_size: ValueError naming T and block_size ("GPT: a
        sequence of length 9 is longer than block_size 8").
        """
        raise NotImplementedError
