"""GPT: a decoder-only Transformer language model, following nanoGPT's ``model.py``.

    idx (B, T) token ids
      -> x = wte[idx] + wpe[0..T-1]                      token + learned position embeddings
      -> n_layer blocks, each (pre-LayerNorm):
             x = x + attn(ln_1(x))                       causal multi-head self-attention
             x = x + mlp(ln_2(x))                        GELU MLP, n_embd -> 4 n_embd -> n_embd
      -> ln_f(x) @ wte^T                                 logits (B, T, vocab_size)

The output projection ``lm_head`` shares its weight with the token embedding ``wte`` (weight
tying): the same (V, C) matrix maps a token id to a vector and a vector to a score per token.

Parameter names are nanoGPT's (``transformer.wte``, ``transformer.h.0.attn.c_attn``, ...), so
a nanoGPT ``state_dict`` (its tensors converted to NumPy arrays) loads with
``load_state_dict``. Initialisation is nanoGPT's too: every weight from N(0, 0.02^2), the
residual projections ``c_proj`` from N(0, (0.02 / sqrt(2 n_layer))^2) (each block adds two of
them to the residual stream, so their sum keeps about the same size however deep the model),
biases zero, LayerNorm gains one.
"""

import math
from dataclasses import dataclass

import numpy as np

from tinyllm import functional as F
from tinyllm.autograd import Tensor
from tinyllm import nn
from tinyllm.models.inputs import token_ids
from tinyllm.models.sampling import CachedStepper, ContextStepper, generate_tokens
from tinyllm.optim import AdamW


@dataclass
class GPTConfig:
    """The sizes of a GPT (nanoGPT's defaults are GPT-2 small's)."""
    block_size: int = 1024      # the longest sequence (context) the model reads
    vocab_size: int = 50304     # GPT-2's 50257 rounded up to a multiple of 64
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True           # biases in the Linear layers and LayerNorms
    activation: str = "gelu"    # the MLP's GELU: "gelu" (exact) or "gelu_tanh" (GPT-2's)
    layer_norm_epsilon: float = 1e-5    # the eps of every LayerNorm


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees only positions <= t.

    x (B, T, C) -> q, k, v = split(c_attn(x)), each (B, T, C), cut into n_head heads of
    hs = C / n_head features: (B, nh, T, hs); y = softmax(q k^T / sqrt(hs) + causal mask) v;
    heads joined back to (B, T, C); output c_proj(y).

    With a ``KVCache`` (``forward(x, cache, layer)``), x holds the tokens after the cached
    ones: their keys and values are stored in layer ``layer`` of the cache and their queries
    attend to every cached position as well (``cached_causal_attention``).
    """

    def __init__(self, config):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError("GPT: n_embd=%d must be divisible by n_head=%d"
                             % (config.n_embd, config.n_head))
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x, cache=None, layer=0):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, axis=2)
        q = q.reshape(B, T, self.n_head, C // self.n_head).transpose(1, 2)    # (B, nh, T, hs)
        k = k.reshape(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.reshape(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is not None:
            offset = cache.length
            k, v = cache.update(layer, k, v)                                   # (B, nh, S, hs)
            y = nn.cached_causal_attention(q, k, v, offset)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)                                 # heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward network: c_proj(GELU(c_fc(x))), C -> 4C -> C (exact GELU, or
    its tanh approximation with ``activation="gelu_tanh"``)."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        if config.activation not in ("gelu", "gelu_tanh"):
            raise ValueError("GPT: activation must be 'gelu' (exact) or 'gelu_tanh' (the tanh "
                             "approximation of GPT-2), got %r" % (config.activation,))
        self.gelu = nn.GELU(approximate="tanh" if config.activation == "gelu_tanh" else "none")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One pre-LayerNorm Transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The GPT language model (see the module docstring); built from a ``GPTConfig``."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight        # weight tying: one Parameter
        self._init_weights()

    def _init_weights(self):
        """nanoGPT's initialisation (see the module docstring)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, 0.0, 0.02 / math.sqrt(2 * self.config.n_layer))

    def num_parameters(self, non_embedding=True):
        """The number of parameters (the tied embedding counted once). With
        ``non_embedding=True`` (nanoGPT's default) the position embeddings are left out; the
        token embedding stays in, since as ``lm_head`` it is a weight of the last layer."""
        n = int(sum(p.size for p in self.parameters()))
        if non_embedding:
            n -= self.transformer.wpe.weight.size
        return n

    def forward(self, idx, targets=None, cache=None):
        """Returns ``(logits, loss)``.

        idx: (B, T) token ids, T <= block_size. With ``targets`` (B, T) (the next token at each
        position; -1 marks a position to ignore) the logits cover every position, (B, T, V),
        and loss = mean over the positions not ignored of -log softmax(logits)[target].
        Without targets (generation), only the last position's logits are computed, as in
        nanoGPT: logits (B, 1, V) and loss None.

        With a ``KVCache`` (from ``new_cache``; used by ``generate``), idx holds the tokens
        after the ``cache.length`` cached ones: their positions start there, and their keys
        and values are added to the cache.
        """
        offset = 0 if cache is None else cache.length
        idx = token_ids("GPT", idx, self.config.vocab_size, self.config.block_size - offset,
                        max_len_name="block_size minus the cached positions" if offset
                        else "block_size")
        B, T = idx.shape
        pos = np.arange(offset, offset + T)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.advance(T)
        x = self.transformer.ln_f(x)                                           # (B, T, C)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None                           # (B, 1, V)
        logits = self.lm_head(x)                                               # (B, T, V)
        targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        if targets.shape != (B, T):
            raise ValueError("GPT: targets of shape %s do not match idx of shape %s"
                             % (targets.shape, (B, T)))
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        """AdamW with nanoGPT's two parameter groups: weight decay for the matrices
        (parameters with 2 or more axes: Linear weights, embeddings), none for the vectors
        (biases and LayerNorm gains), which decay would only pull towards 0 for no gain."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return AdamW(groups, lr=learning_rate, betas=betas)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 generator=None, use_cache=True):
        """Extend each sequence of idx (B, T) by ``max_new_tokens`` tokens, one at a time;
        returns the (B, T + max_new_tokens) int64 tensor of ids.

        Each step reads the context (the last ``block_size`` tokens when it is longer),
        takes the last position's logits and picks the next token with ``sample_next_token``
        (the loop is ``tinyllm.models.sampling.generate_tokens``):
        ``temperature=0`` is greedy (argmax), else softmax(logits / temperature) restricted to
        the ``top_k`` most likely tokens and/or the ``top_p`` nucleus, sampled with
        ``generator`` (a NumPy Generator; default ``tinyllm``'s, see ``manual_seed``). Runs
        under ``no_grad``; call ``eval()`` first if the model has dropout.

        ``use_cache=True`` keeps every layer's keys and values (the KV cache) and feeds only
        the new token each step (``tinyllm.models.sampling.CachedStepper``); ``False``
        re-reads the context every step. Both give the same logits, to float rounding.
        """
        idx = token_ids("GPT", idx, self.config.vocab_size)
        return Tensor(generate_tokens(self.stepper(use_cache), idx, max_new_tokens,
                                      temperature, top_k, top_p, generator=generator))

    def stepper(self, use_cache=True):
        """The next-token step for decoding (``tinyllm.models.sampling``): with the KV cache
        (default), or re-reading the last ``block_size`` tokens for every new token."""
        if use_cache:
            return CachedStepper(self, self.config.block_size)
        return ContextStepper(self, self.config.block_size)

    def new_cache(self, batch_size, max_len=None):
        """An empty ``KVCache`` for ``batch_size`` sequences of up to ``max_len`` positions
        (default block_size), in the dtype of the weights."""
        c = self.config
        return nn.KVCache(c.n_layer, batch_size, c.n_head, max_len or c.block_size,
                          c.n_embd // c.n_head, self.lm_head.weight.dtype)

    def load_state_dict(self, state_dict, strict=True):
        """``Module.load_state_dict``, except that nanoGPT's causal-mask buffers
        ``transformer.h.{i}.attn.bias`` (saved by nanoGPT without flash attention; they hold
        no learned values) are skipped: tinyllm builds the causal mask when needed."""
        state_dict = {name: value for name, value in state_dict.items()
                      if not (name.startswith("transformer.h.") and name.endswith(".attn.bias"))}
        return super().load_state_dict(state_dict, strict=strict)

    def save_pretrained(self, folder, max_shard_size=None):
        """Write a Hugging Face GPT-2 folder (config.json + model.safetensors) that
        ``transformers`` and ``tinyllm.models.from_pretrained`` load (``models/pretrained.py``)."""
        from tinyllm.models.pretrained import save_pretrained
        return save_pretrained(self, folder, max_shard_size=max_shard_size)

    def extra_repr(self):
        c = self.config
        return "vocab_size=%d, block_size=%d, n_layer=%d, n_head=%d, n_embd=%d" % (
            c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd)
