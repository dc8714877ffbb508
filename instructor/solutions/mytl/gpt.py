"""Step gpt (chapter 8): layer norm, GELU, the Transformer block and the GPT language model.

    idx (B, T) token ids
      -> x = wte(idx) + wpe(0 .. T-1)                     token + learned position embeddings
      -> n_layer blocks, each pre-norm:
             x = x + attn(ln_1(x), causal)                position t sees positions <= t
             x = x + c_proj(gelu(c_fc(ln_2(x))))          C -> 4C -> C, on each position
      -> logits = ln_f(x) wte.weight^T                    (B, T, V): the output layer is the
                                                          token embedding (weight tying)

Layer norm has a backward derived by hand (``LayerNormFunction``); everything else is composed
from the earlier steps' ops, so autograd gives its backward.
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
    (D,) -> y (..., D). mu and var are the mean and the biased variance (divided by D) of
    each row x[..., :]; eps is inside the square root.

    Backward, with xhat = (x - mu) / sigma, sigma = sqrt(var + eps) and g = dL/dy * weight:
    dL/dx = (g - mean(g) - xhat * mean(g * xhat)) / sigma (means over the last axis);
    dL/dweight = sum of dL/dy * xhat and dL/dbias = sum of dL/dy, over every axis but the last.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        inv_sigma = 1.0 / np.sqrt(var + eps)
        xhat = (x - mu) * inv_sigma
        ctx.save_for_backward(xhat, inv_sigma, weight)
        return weight * xhat + bias

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_sigma, weight = ctx.saved_tensors
        other_axes = tuple(range(grad.ndim - 1))
        g = grad * weight
        grad_x = inv_sigma * (g - g.mean(axis=-1, keepdims=True)
                              - xhat * (g * xhat).mean(axis=-1, keepdims=True))
        return grad_x, (grad * xhat).sum(axis=other_axes), grad.sum(axis=other_axes)


class LayerNorm(Module):
    """Layer normalisation over the last axis, of size ``dim``: ``weight`` (dim,) starts at
    ones and ``bias`` (dim,) at zeros (float64, requires_grad), so it starts as plain
    standardisation. forward(x): x (..., dim) -> (..., dim)."""

    def __init__(self, dim, eps=1e-5):
        self.dim, self.eps = dim, eps
        self.weight = Tensor(np.ones(dim), requires_grad=True)
        self.bias = Tensor(np.zeros(dim), requires_grad=True)

    def forward(self, x):
        return LayerNormFunction.apply(x, self.weight, self.bias, eps=self.eps)


# ----- GELU ------------------------------------------------------------------------------------
def gelu(x):
    """GELU, GPT-2's tanh approximation, elementwise:

        gelu(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    Composed of Tensor ops (autograd gives the backward). x: a Tensor, any shape.
    """
    # x * x * x, not x ** 3: NumPy's pow is about 50 times slower on negative numbers
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))
    return 0.5 * x * (1.0 + inner.tanh())


# ----- the Transformer block -------------------------------------------------------------------
class Block(Module):
    """One pre-norm Transformer block on x (B, T, C), C = n_embd:

        x = x + attn(ln_1(x), is_causal=True)
        x = x + c_proj(gelu(c_fc(ln_2(x))))

    Sub-modules, created in this order with the same ``rng``: ``ln_1`` LayerNorm(C), ``attn``
    MultiHeadAttention(C, n_head), ``ln_2`` LayerNorm(C), ``c_fc`` Linear(C, 4C), ``c_proj``
    Linear(4C, C).
    """

    def __init__(self, n_embd, n_head, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        self.ln_1 = LayerNorm(n_embd)
        self.attn = MultiHeadAttention(n_embd, n_head, rng=rng)
        self.ln_2 = LayerNorm(n_embd)
        self.c_fc = Linear(n_embd, 4 * n_embd, rng=rng)
        self.c_proj = Linear(4 * n_embd, n_embd, rng=rng)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x), is_causal=True)
        x = x + self.c_proj(gelu(self.c_fc(self.ln_2(x))))
        return x


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

    Sub-modules, created in this order with the same ``rng``: ``wte`` Embedding(V, C), ``wpe``
    Embedding(block_size, C), both rescaled to N(0, 0.02^2) as GPT-2 does (so the logits
    start small and the loss starts near log V); ``blocks`` a list of n_layer Blocks; ``ln_f``
    LayerNorm(C). There is no separate output matrix: the logits are ln_f(x) @ wte.weight^T.
    """

    def __init__(self, config, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd, rng=rng)
        self.wpe = Embedding(config.block_size, config.n_embd, rng=rng)
        self.wte.weight.data *= 0.02
        self.wpe.weight.data *= 0.02
        self.blocks = [Block(config.n_embd, config.n_head, rng=rng)
                       for _ in range(config.n_layer)]
        self.ln_f = LayerNorm(config.n_embd)

    def forward(self, idx, targets=None):
        """Returns (logits, loss).

        idx (B, T) integer token ids, T <= block_size (else ValueError naming T and
        block_size); logits (B, T, V). With targets (B, T) integers (the next token at each
        position), loss = cross_entropy(logits (B*T, V), targets (B*T,)), a 0-d Tensor;
        without targets, loss is None.
        """
        idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError("GPT: a sequence of length %d is longer than block_size %d"
                             % (T, self.config.block_size))
        x = self.wte(idx) + self.wpe(np.arange(T))                    # (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x).reshape(B * T, self.config.n_embd)           # (B*T, C)
        logits = x @ self.wte.weight.T                                # (B*T, V), tied
        loss = None
        if targets is not None:
            targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
            loss = cross_entropy(logits, targets.reshape(B * T))
        return logits.reshape(B, T, self.config.vocab_size), loss
