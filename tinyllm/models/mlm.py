"""A BERT-style encoder trained by masked language modelling (MLM).

    ids (B, T) -> token embedding + learned position embedding -> LayerNorm -> dropout
               -> num_layers post-LN Transformer encoder layers (GELU), padding keys masked
               -> hidden states h (B, T, d_model)
    MLM head:  h -> Linear -> GELU -> LayerNorm -> h' @ E^T + b -> logits (B, T, V)

The encoder sees the whole sequence in both directions, so it cannot be trained to predict the
next token; instead some input tokens are hidden (``tinyllm.data.mask_tokens``: 15% of them,
80% replaced by [MASK], 10% by a random token, 10% kept) and the loss is the cross-entropy of
the original tokens at exactly those positions (labels -100 everywhere else). The output layer
reuses the token embedding E (V, d_model), plus its own bias b (V,), as BERT does.
"""

import numpy as np

from tinyllm import functional as F
from tinyllm import nn
from tinyllm.autograd import Tensor
from tinyllm.models.inputs import token_ids


class MLMHead(nn.Module):
    """h (B, T, d) -> decoder(norm(GELU(dense(h)))) (B, T, V); ``decoder.weight`` is tied to the
    token embedding by ``MLMEncoder``, ``decoder.bias`` is the head's own."""

    def __init__(self, d_model, vocab_size):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.activation = nn.GELU()
        self.norm = nn.LayerNorm(d_model)
        self.decoder = nn.Linear(d_model, vocab_size)

    def forward(self, h):
        return self.decoder(self.norm(self.activation(self.dense(h))))


class MLMEncoder(nn.Module):
    """BERT-style masked-language-model encoder (see the module docstring).

    Submodules: ``token_embedding`` (V, d_model), ``position_embedding`` (a
    ``LearnedPositionalEmbedding`` of ``max_len`` positions), ``embedding_norm``, ``dropout``,
    ``encoder`` (``TransformerEncoder`` of ``num_layers`` post-LN layers, batch-first, GELU),
    ``head`` (``MLMHead``, its decoder weight the token embedding). The embeddings start from
    N(0, 0.02^2) (BERT's initializer range), the other layers from PyTorch's defaults.
    """

    def __init__(self, vocab_size, max_len, d_model, nhead, num_layers, dim_feedforward,
                 dropout=0.1, pad_id=0):
        super().__init__()
        self.vocab_size, self.max_len, self.pad_id = vocab_size, max_len, pad_id
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.LearnedPositionalEmbedding(max_len, d_model)
        self.embedding_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers)
        self.head = MLMHead(d_model, vocab_size)
        self.head.decoder.weight = self.token_embedding.weight       # weight tying
        nn.init.normal_(self.token_embedding.weight, 0.0, 0.02)
        nn.init.normal_(self.position_embedding.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.decoder.bias)

    def encode(self, ids, padding_mask=None):
        """The encoder's hidden states (B, T, d_model) for ids (B, T), T <= max_len.

        ``padding_mask`` (B, T) is True at padding; by default the positions whose id is
        ``pad_id`` (no padding when pad_id is None). No position attends to a padding key, so
        the states at the real tokens do not depend on the padding at all.
        """
        ids = token_ids("MLMEncoder", ids, self.vocab_size, self.max_len, arg_name="ids")
        padding_mask = self._padding_mask(ids, padding_mask)
        x = self.position_embedding(self.token_embedding(ids))
        x = self.dropout(self.embedding_norm(x))
        return self.encoder(x, src_key_padding_mask=padding_mask)

    def forward(self, ids, labels=None, padding_mask=None):
        """Returns ``(logits, loss)``: logits (B, T, V) at every position; loss (None without
        labels) the mean cross-entropy over the positions whose label is not -100 (the
        ``labels`` of ``tinyllm.data.mask_tokens``)."""
        logits = self.head(self.encode(ids, padding_mask))
        if labels is None:
            return logits, None
        labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
        B, T, V = logits.shape
        if labels.shape != (B, T):
            raise ValueError("MLMEncoder: labels of shape %s do not match ids of shape %s"
                             % (labels.shape, (B, T)))
        return logits, F.cross_entropy(logits.reshape(B * T, V), labels.reshape(-1),
                                       ignore_index=-100)

    def _padding_mask(self, ids, padding_mask):
        if padding_mask is None:
            return None if self.pad_id is None else ids == self.pad_id
        mask = np.asarray(padding_mask.data if isinstance(padding_mask, Tensor)
                          else padding_mask)
        if mask.shape != ids.shape or mask.dtype != np.bool_:
            raise ValueError("MLMEncoder: padding_mask must be a boolean array of the ids' shape "
                             "%s (True at padding), got %s %s" % (ids.shape, mask.dtype,
                                                                  mask.shape))
        return mask
