"""The Transformer's layers: encoder and decoder layers and their stacks, as PyTorch's.

An encoder layer lets every position look at every other (self-attention), then transforms
each position on its own (a two-layer feed-forward network, FFN). Each of these sublayers is
wrapped in a residual connection and a layer norm, in one of two orders:

    post-norm (``norm_first=False``, the original paper, BERT):  x = LayerNorm(x + Sublayer(x))
    pre-norm  (``norm_first=True``, GPT-2 and most LLMs):        x = x + Sublayer(LayerNorm(x))

Pre-norm leaves the residual path x -> x + ... free of normalisation, so gradients reach early
layers unchanged and deep stacks train without a learning-rate warm-up as careful as post-norm
needs.

A decoder layer has a third sublayer between the two: cross-attention, whose queries come from
the decoder and whose keys and values come from the encoder's output (``memory``).

    FFN(x) = linear2(dropout(activation(linear1(x))))     d_model -> dim_feedforward -> d_model
"""

import copy

import numpy as np

from tinyllm import functional as F
from tinyllm.autograd import Tensor
from tinyllm.nn.attention import MultiheadAttention
from tinyllm.nn.containers import ModuleList
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.nn.normalization import LayerNorm

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def generate_square_subsequent_mask(sz, dtype=None):
    """The (sz, sz) float causal mask: 0 on and below the diagonal, -inf above it.

    Added to attention scores it stops position i from attending to positions j > i (the
    future), as PyTorch's ``nn.Transformer.generate_square_subsequent_mask``.
    """
    return Tensor(np.triu(np.full((sz, sz), -np.inf), 1), dtype=dtype)


def clone_module(module):
    """An independent deep copy of a module: same structure and values, new parameters."""
    return copy.deepcopy(module)


def _get_activation(layer_name, activation):
    if callable(activation):
        return activation
    if activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ValueError("%s: unknown activation %r; use one of %s or a callable"
                     % (layer_name, activation, ", ".join(repr(a) for a in ACTIVATIONS)))


def _check_input(layer_name, arg_name, x, d_model, batch_first):
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        layout = "(B, T, %d)" % d_model if batch_first else "(T, B, %d)" % d_model
        raise ValueError("%s: expected %s of shape %s or unbatched (T, %d), got %s"
                         % (layer_name, arg_name, layout, d_model, tuple(x.shape)))


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward network, each with a residual connection and a
    LayerNorm (post-norm by default, pre-norm with ``norm_first=True``; see the module docstring).

    Submodules (PyTorch's names, so its state_dict loads): ``self_attn``
    (MultiheadAttention), ``linear1`` (d_model -> dim_feedforward), ``dropout`` (inside the
    FFN), ``linear2`` (dim_feedforward -> d_model), ``norm1``, ``norm2``, ``dropout1``,
    ``dropout2`` (on each sublayer's output). ``activation``: "relu", "gelu" or a callable.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``: src is
    (T, B, d_model), (B, T, d_model) with ``batch_first=True``, or unbatched (T, d_model); the
    output has src's shape. The masks are MultiheadAttention's (boolean True = may not
    attend, float added): src_mask (T, T) or (B * nhead, T, T), src_key_padding_mask (B, T).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.activation = _get_activation("TransformerEncoderLayer", activation)
        self.d_model, self.batch_first, self.norm_first = d_model, batch_first, norm_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        _check_input("TransformerEncoderLayer", "src", src, self.d_model, self.batch_first)
        x = src
        if self.norm_first:
            x = x + self._self_attention_block(self.norm1(x), src_mask, src_key_padding_mask,
                                               is_causal)
            x = x + self._feed_forward_block(self.norm2(x))
        else:
            x = self.norm1(x + self._self_attention_block(x, src_mask, src_key_padding_mask,
                                                          is_causal))
            x = self.norm2(x + self._feed_forward_block(x))
        return x

    def _self_attention_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _feed_forward_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)

    def extra_repr(self):
        return "norm_first=%s" % self.norm_first


class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention to the encoder's output, and a feed-forward
    network, each with a residual connection and a LayerNorm (post-norm by default, pre-norm
    with ``norm_first=True``).

    Submodules (PyTorch's names): ``self_attn``, ``multihead_attn`` (cross-attention),
    ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``norm3``, ``dropout1``,
    ``dropout2``, ``dropout3``.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``: tgt is
    (T, B, d_model) (or batch-first, or unbatched), memory (S, B, d_model); the output has
    tgt's shape. tgt_mask (T, T) and tgt_key_padding_mask (B, T) mask the self-attention
    (``tgt_is_causal=True`` adds the causal mask), memory_mask (T, S) and
    memory_key_padding_mask (B, S) the cross-attention.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.activation = _get_activation("TransformerDecoderLayer", activation)
        self.d_model, self.batch_first, self.norm_first = d_model, batch_first, norm_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        _check_input("TransformerDecoderLayer", "tgt", tgt, self.d_model, self.batch_first)
        _check_input("TransformerDecoderLayer", "memory", memory, self.d_model,
                     self.batch_first)
        x = tgt
        if self.norm_first:
            x = x + self._self_attention_block(self.norm1(x), tgt_mask, tgt_key_padding_mask,
                                               tgt_is_causal)
            x = x + self._cross_attention_block(self.norm2(x), memory, memory_mask,
                                                memory_key_padding_mask, memory_is_causal)
            x = x + self._feed_forward_block(self.norm3(x))
        else:
            x = self.norm1(x + self._self_attention_block(x, tgt_mask, tgt_key_padding_mask,
                                                          tgt_is_causal))
            x = self.norm2(x + self._cross_attention_block(x, memory, memory_mask,
                                                           memory_key_padding_mask,
                                                           memory_is_causal))
            x = self.norm3(x + self._feed_forward_block(x))
        return x

    def _self_attention_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _cross_attention_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)[0]
        return self.dropout2(x)

    def _feed_forward_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)

    def extra_repr(self):
        return "norm_first=%s" % self.norm_first


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (``layers``, each with its own
    parameters), then an optional final ``norm`` (pre-norm stacks need one).

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)`` passes the masks
    to every layer; shapes as ``TransformerEncoderLayer``. ``enable_nested_tensor`` and
    ``mask_check`` are accepted for compatibility with PyTorch and have no effect.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = ModuleList(clone_module(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of ``decoder_layer`` (``layers``), then an optional
    final ``norm``. Every layer attends to the same ``memory`` (the encoder's output).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``; shapes as
    ``TransformerDecoderLayer``.
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList(clone_module(decoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)
