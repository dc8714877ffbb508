"""Llama: the modern decoder-only Transformer (Touvron et al. 2023), with Hugging Face's names.

    idx (B, T) token ids
      -> x = embed_tokens[idx]                            no position embedding is added
      -> num_hidden_layers blocks, each (pre-norm):
             x = x + self_attn(input_layernorm(x))        RoPE on q and k, grouped-query
                                                          attention, causal, no biases
             x = x + mlp(post_attention_layernorm(x))     SwiGLU: down(silu(gate(x)) * up(x))
      -> lm_head(norm(x))                                 logits (B, T, vocab_size)

Against GPT-2 (``tinyllm.models.gpt``): RMSNorm instead of LayerNorm, rotary position
embeddings (RoPE) in every attention instead of learned absolute positions at the input,
SwiGLU instead of the GELU MLP, fewer key/value heads than query heads (GQA), no biases,
and an output matrix of its own unless ``tie_word_embeddings``.

``state_dict()`` keys are Hugging Face's ``LlamaForCausalLM`` ones
(``model.embed_tokens.weight``, ``model.layers.{i}.self_attn.q_proj.weight``,
``model.layers.{i}.mlp.gate_proj.weight``, ``model.layers.{i}.input_layernorm.weight``,
``model.norm.weight``, ``lm_head.weight``), so its weights (as NumPy arrays) load with
``load_state_dict``. Rotary embeddings use the "half" layout of Hugging Face's checkpoints by
default; ``rope_layout="interleaved"`` reads the layout of Meta's original checkpoints.
Initialisation is Hugging Face's: every matrix from N(0, initializer_range^2), norms one.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from tinyllm import functional as F
from tinyllm import nn
from tinyllm.autograd import Tensor
from tinyllm.models.inputs import token_ids
from tinyllm.models.sampling import CachedStepper, ContextStepper, generate_tokens
from tinyllm.optim import AdamW


@dataclass
class LlamaConfig:
    """The sizes of a Llama, under Hugging Face's ``LlamaConfig`` names.

    The defaults are a small model for experiments (Hugging Face's are Llama-2-7B's); the
    behaviour defaults (rms_norm_eps, rope_theta, untied embeddings, num_key_value_heads =
    num_attention_heads when None, head_dim = hidden_size / num_attention_heads when None)
    are Hugging Face's.
    """
    vocab_size: int = 32000
    hidden_size: int = 256
    intermediate_size: int = 688            # about 8/3 hidden_size (SwiGLU has 3 matrices)
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: Optional[int] = None
    max_position_embeddings: int = 2048     # the longest context (GPT's block_size)
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    rope_layout: str = "half"               # "half" (Hugging Face) or "interleaved" (Meta)
    head_dim: Optional[int] = None
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError("LlamaConfig: hidden_size=%d must be divisible by "
                                 "num_attention_heads=%d (or give head_dim)"
                                 % (self.hidden_size, self.num_attention_heads))
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("LlamaConfig: num_attention_heads=%d must be a multiple of "
                             "num_key_value_heads=%d" % (self.num_attention_heads,
                                                         self.num_key_value_heads))
        if self.rope_layout not in ("half", "interleaved"):
            raise ValueError("LlamaConfig: rope_layout must be 'half' or 'interleaved', got %r"
                             % (self.rope_layout,))

    @property
    def block_size(self):
        """The longest context, ``max_position_embeddings`` (the name GPT and the trainer use)."""
        return self.max_position_embeddings


class LlamaDecoderLayer(nn.Module):
    """One pre-norm block: x + self_attn(input_layernorm(x)), then
    + mlp(post_attention_layernorm(x))."""

    def __init__(self, config):
        super().__init__()
        c = config
        self.self_attn = nn.GroupedQueryAttention(c.hidden_size, c.num_attention_heads,
                                                  c.num_key_value_heads, c.head_dim,
                                                  c.rope_layout)
        self.mlp = nn.LlamaMLP(c.hidden_size, c.intermediate_size)
        self.input_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def forward(self, x, cos, sin, cache=None, layer=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    """The Llama language model (see the module docstring); built from a ``LlamaConfig``."""

    def __init__(self, config):
        super().__init__()
        self.config = c = config
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(c.vocab_size, c.hidden_size),
            layers=nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c.num_hidden_layers)]),
            norm=nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps),
            rotary_emb=nn.RotaryEmbedding(c.head_dim, c.max_position_embeddings, c.rope_theta,
                                          c.rope_layout),
        ))
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight     # one Parameter

    def _init_weights(self):
        """Hugging Face's initialisation: N(0, initializer_range^2) matrices, RMSNorm ones."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, self.config.initializer_range)

    def num_parameters(self):
        """The number of parameters (a tied embedding counted once)."""
        return int(sum(p.size for p in self.parameters()))

    def forward(self, idx, targets=None, cache=None):
        """Returns ``(logits, loss)``, as ``GPT.forward``.

        idx: (B, T) token ids. With ``targets`` (B, T) (-1 = ignore) the logits cover every
        position, (B, T, V), and loss is the mean cross-entropy. Without targets only the last
        position's logits are computed: (B, 1, V), loss None. With a ``KVCache`` (from
        ``new_cache``) idx holds the tokens after the ``cache.length`` cached ones: their
        positions start there, and their keys and values are added to the cache.
        """
        offset = 0 if cache is None else cache.length
        idx = token_ids("Llama", idx, self.config.vocab_size,
                        self.config.max_position_embeddings - offset,
                        max_len_name="max_position_embeddings minus the cached positions"
                        if offset else "max_position_embeddings")
        B, T = idx.shape
        cos, sin = self.model.rotary_emb(offset, T)                         # (T, D) each
        x = self.model.embed_tokens(idx)                                    # (B, T, C)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, cache, i)
        if cache is not None:
            cache.advance(T)
        x = self.model.norm(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None                        # (B, 1, V)
        logits = self.lm_head(x)                                            # (B, T, V)
        targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        if targets.shape != (B, T):
            raise ValueError("Llama: targets of shape %s do not match idx of shape %s"
                             % (targets.shape, (B, T)))
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def new_cache(self, batch_size, max_len=None):
        """An empty ``KVCache`` for ``batch_size`` sequences of up to ``max_len`` positions
        (default max_position_embeddings), in the dtype of the weights."""
        c = self.config
        return nn.KVCache(c.num_hidden_layers, batch_size, c.num_key_value_heads,
                          max_len or c.max_position_embeddings, c.head_dim,
                          self.lm_head.weight.dtype)

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        """AdamW with weight decay on the matrices only (not on the RMSNorm gains)."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return AdamW(groups, lr=learning_rate, betas=betas)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 generator=None, use_cache=True):
        """Extend each sequence of idx (B, T) by ``max_new_tokens`` tokens; as
        ``GPT.generate`` (same sampling options). ``use_cache=True`` keeps every layer's keys
        and values and feeds only the new token (see ``tinyllm.models.sampling.CachedStepper``);
        ``False`` re-reads the whole context every step. Both give the same tokens."""
        idx = token_ids("Llama", idx, self.config.vocab_size)
        return Tensor(generate_tokens(self.stepper(use_cache), idx, max_new_tokens,
                                      temperature, top_k, top_p, generator=generator))

    def stepper(self, use_cache=True):
        """The next-token step for decoding: with the KV cache (default) or re-reading the last
        max_position_embeddings tokens every step."""
        if use_cache:
            return CachedStepper(self, self.config.max_position_embeddings)
        return ContextStepper(self, self.config.max_position_embeddings)

    def load_state_dict(self, state_dict, strict=True):
        """``Module.load_state_dict``; with tied embeddings a missing ``lm_head.weight`` (Hugging
        Face does not save it then) is taken from ``model.embed_tokens.weight``."""
        if self.config.tie_word_embeddings and "lm_head.weight" not in state_dict \
                and "model.embed_tokens.weight" in state_dict:
            state_dict = dict(state_dict, **{"lm_head.weight":
                                             state_dict["model.embed_tokens.weight"]})
        return super().load_state_dict(state_dict, strict=strict)

    def save_pretrained(self, folder, max_shard_size=None):
        """Write a Hugging Face Llama folder (config.json + model.safetensors) that
        ``transformers`` and ``tinyllm.models.from_pretrained`` load (``models/pretrained.py``)."""
        from tinyllm.models.pretrained import save_pretrained
        return save_pretrained(self, folder, max_shard_size=max_shard_size)

    def extra_repr(self):
        c = self.config
        return ("vocab_size=%d, hidden_size=%d, num_hidden_layers=%d, num_attention_heads=%d, "
                "num_key_value_heads=%d" % (c.vocab_size, c.hidden_size, c.num_hidden_layers,
                                            c.num_attention_heads, c.num_key_value_heads))
