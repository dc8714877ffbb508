"""``MultiheadAttention``: several attention heads side by side, as PyTorch's layer.

With embed_dim E split into h heads of d = E / h features each:

    Q = query W_q^T + b_q,   K = key W_k^T + b_k,   V = value W_v^T + b_v       (E features)
    head_j = softmax(Q_j K_j^T / sqrt(d) + M) V_j          Q_j: head j's d features of Q
    output = concat(head_1, ..., head_h) W_o^T + b_o

Each head attends in its own d-dimensional subspace, so different heads can follow different
relations (the previous token, the subject of the verb, ...) at the cost of one attention of
size E. W_q, W_k, W_v are stored stacked in ``in_proj_weight`` (3E, E), W_o in ``out_proj``.
"""


import numpy as np

from tinyllm import functional as F
from tinyllm import ops
from tinyllm.autograd import Tensor
from tinyllm.nn import init
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.nn.parameter import Parameter


def _as_array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def additive_mask(mask, name="mask"):
    """A mask in MultiheadAttention's convention as an array of numbers to add to the scores.

    Boolean: True means "may NOT attend" and becomes -inf (its weight after the softmax is 0),
    False becomes 0. Float: used as it is (0 to allow, -inf or a large negative number to
    block, anything else to bias). Note that ``F.scaled_dot_product_attention`` reads a
    boolean mask the other way round (True = may attend), as PyTorch does.
    """
    data = _as_array(mask)
    if data.dtype.kind == "b":
        return np.where(data, -np.inf, 0.0)
    if data.dtype.kind == "f":
        return data
    raise TypeError("MultiheadAttention: %s must be boolean (True = may not attend) or float "
                    "(added to the scores), got dtype %s" % (name, data.dtype))


def attention_with_weights(q, k, v, mask=None, dropout_p=0.0):
    """softmax(q k^T / sqrt(d) + mask) v, returning the output and the attention weights.

    Shapes: q (..., L, d), k (..., S, d), v (..., S, d_v), mask broadcastable to (..., L, S)
    (an additive float array, see ``additive_mask``) -> output (..., L, d_v), weights
    (..., L, S). The same computation as ``F.scaled_dot_product_attention`` (whose boolean
    masks mean the opposite), keeping the weights so that they can be returned and plotted.
    A query whose every key is masked gets all-zero weights and a zero output (no NaN).
    Dropout, when ``dropout_p > 0``, acts on the weights after the softmax.
    """
    weights = F.attention_weights(q, k, attn_mask=mask)     # a float mask is added
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return ops.matmul(weights, v), weights


class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's parameters, arguments and masks.

    ``MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False,
    kdim=None, vdim=None)``; embed_dim must be divisible by num_heads (head_dim = E / h).

    Parameters: ``in_proj_weight`` (3E, E) = [W_q; W_k; W_v] (Xavier-uniform), ``in_proj_bias``
    (3E,) (zeros), ``out_proj`` a ``Linear(E, E)`` (its bias zeroed). When kdim or vdim differ
    from E, W_q, W_k, W_v are separate: ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim),
    ``v_proj_weight`` (E, vdim), and ``in_proj_weight`` is None. ``bias=False`` drops every bias.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (attn_output, attn_weights)``. Shapes:

    - query (L, B, E), key (S, B, kdim), value (S, B, vdim); (B, L, E) etc. with
      ``batch_first=True``; unbatched (L, E), (S, kdim), (S, vdim);
    - attn_output: like query;
    - attn_weights: averaged over heads (B, L, S), or per head (B, num_heads, L, S) with
      ``average_attn_weights=False``, without B when unbatched; None when ``need_weights=False``.

    Masks, as in PyTorch's ``nn.MultiheadAttention``: a boolean mask is True where attention
    is NOT allowed; a float mask is added to the scores.

    - ``attn_mask``: (L, S), or (B * num_heads, L, S) for one mask per sequence and head
      (num_heads, L, S unbatched);
    - ``key_padding_mask``: (B, S) ((S,) unbatched), True at padding keys to ignore;
    - ``is_causal=True``: query i attends only to keys j <= i. It is applied together with any
      ``attn_mask`` (PyTorch treats it as a hint that attn_mask is causal and requires that
      mask; with the causal mask given, both give the same result).

    ``dropout`` drops attention weights in training mode; the returned weights are those used
    (after dropout), as in PyTorch. Unlike PyTorch, a query whose every key is masked gets
    zero weights and output instead of NaN.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False,
                 kdim=None, vdim=None):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads != 0:
            raise ValueError("MultiheadAttention: embed_dim=%d must be divisible by num_heads=%d "
                             "(each head gets embed_dim / num_heads features)"
                             % (embed_dim, num_heads))
        if not 0.0 <= dropout <= 1.0:
            raise ValueError("MultiheadAttention: dropout must lie in [0, 1], got %r" % dropout)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first

        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(ops.zeros(3 * E, E))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(ops.zeros(E, E))
            self.k_proj_weight = Parameter(ops.zeros(E, self.kdim))
            self.v_proj_weight = Parameter(ops.zeros(E, self.vdim))
        if bias:
            self.in_proj_bias = Parameter(ops.zeros(3 * E))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's initialisation: Xavier-uniform projections, zero biases."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    # ----- forward ---------------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        batched = self._check_inputs(query, key, value)
        self_attention = query is key and key is value and self._qkv_same_embed_dim
        query, key, value = (self._to_batch_first(t, batched) for t in (query, key, value))
        B, L, E = query.shape
        S = key.shape[1]

        q, k, v = self._project(query, key, value, self_attention)          # (B, L or S, E)
        q, k, v = (self._split_heads(t) for t in (q, k, v))                  # (B, h, L or S, d)
        mask = self._merge_masks(attn_mask, key_padding_mask, is_causal, B, L, S, batched)
        dropout_p = self.dropout if self.training else 0.0
        heads, weights = attention_with_weights(q, k, v, mask, dropout_p)   # (B, h, L, d)
        output = self.out_proj(ops.transpose(heads, 1, 2).reshape(B, L, E))  # (B, L, E)

        if not batched:
            output = output.squeeze(0)
        elif not self.batch_first:
            output = ops.transpose(output, 0, 1)
        if not need_weights:
            return output, None
        if average_attn_weights:
            weights = weights.mean(axis=1)                                    # (B, L, S)
        return output, (weights if batched else weights.squeeze(0))

    def _to_batch_first(self, t, batched):
        if not batched:
            return t.unsqueeze(0)
        return t if self.batch_first else ops.transpose(t, 0, 1)

    def _project(self, query, key, value, self_attention):
        """Q, K, V = the inputs times W_q, W_k, W_v (plus biases); one matmul for
        self-attention, where the three inputs are the same tensor."""
        E = self.embed_dim
        if self_attention:
            return F.linear(query, self.in_proj_weight, self.in_proj_bias).split(E, axis=-1)
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.split(E, axis=0)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.split(E, axis=0)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def _split_heads(self, t):
        """(B, T, E) -> (B, h, T, d): head j gets features j*d .. (j+1)*d - 1."""
        B, T, _ = t.shape
        return ops.transpose(t.reshape(B, T, self.num_heads, self.head_dim), 1, 2)

    def _merge_masks(self, attn_mask, key_padding_mask, is_causal, B, L, S, batched):
        """attn_mask, key_padding_mask and the causal mask added into one float array that
        broadcasts to the scores' shape (B, h, L, S); None when there is no mask."""
        h = self.num_heads
        total = None
        if attn_mask is not None:
            mask = additive_mask(attn_mask, "attn_mask")
            per_head = (B * h, L, S) if batched else (h, L, S)
            if mask.shape == per_head:
                mask = mask.reshape(B, h, L, S)
            elif mask.shape != (L, S):
                raise ValueError("MultiheadAttention: attn_mask must have shape (L, S) = %s or "
                                 "%s = %s, got %s"
                                 % ((L, S), "(B * num_heads, L, S)" if batched else
                                    "(num_heads, L, S)", per_head, mask.shape))
            total = mask
        if key_padding_mask is not None:
            mask = additive_mask(key_padding_mask, "key_padding_mask")
            expected = (B, S) if batched else (S,)
            if mask.shape != expected:
                raise ValueError("MultiheadAttention: key_padding_mask must have shape %s = %s "
                                 "(True at padding keys), got %s"
                                 % ("(B, S)" if batched else "(S,)", expected, mask.shape))
            mask = mask.reshape(B, 1, 1, S)
            total = mask if total is None else total + mask
        if is_causal:
            mask = np.triu(np.full((L, S), -np.inf), 1)          # -inf above the diagonal
            total = mask if total is None else total + mask
        return total

    def _check_inputs(self, query, key, value):
        """Check ranks and feature sizes; returns whether the inputs have a batch axis."""
        if query.ndim not in (2, 3):
            layout = "(B, L, E)" if self.batch_first else "(L, B, E)"
            raise ValueError("MultiheadAttention: expected query of shape %s or unbatched "
                             "(L, E), got %s" % (layout, tuple(query.shape)))
        for name, t, size in (("query", query, self.embed_dim), ("key", key, self.kdim),
                              ("value", value, self.vdim)):
            if t.ndim != query.ndim:
                raise ValueError("MultiheadAttention: query of shape %s and %s of shape %s must "
                                 "have the same number of axes" % (tuple(query.shape), name,
                                                                   tuple(t.shape)))
            if t.shape[-1] != size:
                raise ValueError("MultiheadAttention: %s of shape %s must have %d features on "
                                 "its last axis (%s)" % (name, tuple(t.shape), size,
                                                         {"query": "embed_dim", "key": "kdim",
                                                          "value": "vdim"}[name]))
        batch_axis = 0 if self.batch_first else 1
        seq_axis = 1 - batch_axis if query.ndim == 3 else 0
        if key.shape[seq_axis] != value.shape[seq_axis] or (
                query.ndim == 3 and not query.shape[batch_axis] == key.shape[batch_axis]
                == value.shape[batch_axis]):
            raise ValueError("MultiheadAttention: query %s, key %s and value %s disagree: key "
                             "and value need the same length S, all three the same batch size"
                             % (tuple(query.shape), tuple(key.shape), tuple(value.shape)))
        return query.ndim == 3

    def extra_repr(self):
        text = "embed_dim=%d, num_heads=%d" % (self.embed_dim, self.num_heads)
        if self.dropout:
            text += ", dropout=%g" % self.dropout
        if self.batch_first:
            text += ", batch_first=True"
        if not self._qkv_same_embed_dim:
            text += ", kdim=%d, vdim=%d" % (self.kdim, self.vdim)
        return text


# ----- the KV cache and grouped-query attention (the modern decoder) -------------------------
class KVCache:
    """The keys and values of every layer of a decoder, kept between generation steps.

    A decoder's position t attends to the keys and values of positions <= t, and these do not
    change when later tokens arrive. So generation computes them once: each step feeds only
    the new token, appends its key and value at each layer, and attends to everything kept.
    One new token then costs O(T) (its attention over T keys) instead of the O(T^2) of
    re-reading the whole context.

    Arrays ``keys`` and ``values``, (n_layer, B, H_kv, max_len, D), are allocated once;
    ``length`` positions are filled. ``update(layer, k, v)`` writes k, v (B, H_kv, T, D) at
    positions length .. length + T - 1 of that layer and returns the keys and values of
    positions 0 .. length + T - 1 (views, no copy); after the last layer the model calls
    ``advance(T)``. Memory: 2 * n_layer * H_kv * D numbers per token and sequence.
    """

    def __init__(self, n_layer, batch_size, n_kv_head, max_len, head_dim, dtype=np.float32):
        shape = (n_layer, batch_size, n_kv_head, max_len, head_dim)
        self.keys = Tensor(np.zeros(shape, dtype=dtype), dtype=dtype)
        self.values = Tensor(np.zeros(shape, dtype=dtype), dtype=dtype)
        self.length = 0
        self.max_len = max_len

    def update(self, layer, k, v):
        """Store k, v (B, H_kv, T, D) after the ``length`` cached positions; return all the
        keys and values of that layer, each (B, H_kv, length + T, D)."""
        end = self.length + k.shape[-2]
        if end > self.max_len:
            raise ValueError("KVCache: %d cached positions + %d new exceed its max_len %d"
                             % (self.length, k.shape[-2], self.max_len))
        if tuple(k.shape[:2]) != tuple(self.keys.shape[1:3]) \
                or k.shape[-1] != self.keys.shape[-1]:
            raise ValueError("KVCache: keys of shape %s do not fit a cache of (B, H_kv, D) = %s"
                             % (tuple(k.shape), (self.keys.shape[1], self.keys.shape[2],
                                                 self.keys.shape[4])))
        self.keys.data[layer, :, :, self.length:end] = _as_array(k)
        self.values.data[layer, :, :, self.length:end] = _as_array(v)
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n):
        """Count ``n`` more positions as filled (after every layer has stored them)."""
        self.length += n

    def reorder(self, rows):
        """Keep the sequences ``rows`` (beam search's survivors, repeats allowed), in order."""
        self.keys = Tensor(self.keys.data[:, rows], dtype=self.keys.dtype)
        self.values = Tensor(self.values.data[:, rows], dtype=self.values.dtype)

    def nbytes_per_token(self):
        """Bytes the cache holds per position of one sequence: 2 n_layer H_kv D itemsize."""
        n_layer, _, n_kv_head, _, head_dim = self.keys.shape
        return 2 * n_layer * n_kv_head * head_dim * self.keys.data.itemsize


def cached_causal_attention(q, k, v, offset):
    """Causal attention of T new queries q (B, H, T, D), at positions offset .. offset + T - 1,
    over the keys and values k, v (B, H, S, D) of positions 0 .. S - 1, S = offset + T.

    Query i may attend to keys j <= offset + i. With no cached positions (offset 0) this is
    the usual causal mask; for one new token (T = 1) every key is allowed, so no mask at all.
    """
    T, S = q.shape[-2], k.shape[-2]
    if offset == 0 and T == S:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v)
    mask = np.tril(np.ones((T, S), dtype=bool), S - T)                 # True = may attend
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class GroupedQueryAttention(Module):
    """Causal self-attention with rotary positions and grouped-query attention (Llama's),
    no biases.

    x (B, T, C) -> q = q_proj(x) in n_head heads, k = k_proj(x) and v = v_proj(x) in
    n_kv_head heads, each head of head_dim features: (B, H, T, D). RoPE turns q and k by their
    positions; each key/value head is shared by a group of n_head / n_kv_head query heads
    (``repeat_kv``); y = softmax(q k^T / sqrt(D) + causal mask) v; heads joined, o_proj(y).

    n_kv_head = n_head is multi-head attention, n_kv_head = 1 multi-query attention (Shazeer
    2019); between them, grouped-query attention (Ainslie et al. 2023) divides the KV cache by
    n_head / n_kv_head at a small cost in quality. Parameters, Hugging Face's names:
    ``q_proj`` (n_head D, C), ``k_proj`` and ``v_proj`` (n_kv_head D, C), ``o_proj``
    (C, n_head D).

    ``forward(x, cos, sin, cache=None, layer=0)``: cos, sin (T, D) the RoPE tables of x's
    positions; with a ``KVCache`` the new keys and values are stored in layer ``layer`` and
    the queries attend to all cached positions too.
    """

    def __init__(self, hidden_size, n_head, n_kv_head=None, head_dim=None, rope_layout="half"):
        super().__init__()
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if n_kv_head < 1 or n_head % n_kv_head:
            raise ValueError("GroupedQueryAttention: n_head=%d must be a multiple of "
                             "n_kv_head=%d (each key/value head serves n_head / n_kv_head "
                             "query heads)" % (n_head, n_kv_head))
        if head_dim is None:
            if hidden_size % n_head:
                raise ValueError("GroupedQueryAttention: hidden_size=%d must be divisible by "
                                 "n_head=%d" % (hidden_size, n_head))
            head_dim = hidden_size // n_head
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.rope_layout = rope_layout
        self.q_proj = Linear(hidden_size, n_head * head_dim, bias=False)
        self.k_proj = Linear(hidden_size, n_kv_head * head_dim, bias=False)
        self.v_proj = Linear(hidden_size, n_kv_head * head_dim, bias=False)
        self.o_proj = Linear(n_head * head_dim, hidden_size, bias=False)

    def forward(self, x, cos, sin, cache=None, layer=0):
        B, T, _ = x.shape
        D = self.head_dim
        q = ops.transpose(self.q_proj(x).reshape(B, T, self.n_head, D), 1, 2)     # (B, H, T, D)
        k = ops.transpose(self.k_proj(x).reshape(B, T, self.n_kv_head, D), 1, 2)  # (B, Hkv, T, D)
        v = ops.transpose(self.v_proj(x).reshape(B, T, self.n_kv_head, D), 1, 2)
        q = F.apply_rotary_emb(q, cos, sin, self.rope_layout)
        k = F.apply_rotary_emb(k, cos, sin, self.rope_layout)
        offset = 0
        if cache is not None:
            offset = cache.length
            k, v = cache.update(layer, k, v)                                  # (B, Hkv, S, D)
        n_rep = self.n_head // self.n_kv_head
        y = cached_causal_attention(q, F.repeat_kv(k, n_rep), F.repeat_kv(v, n_rep), offset)
        return self.o_proj(ops.transpose(y, 1, 2).reshape(B, T, self.n_head * D))

    def extra_repr(self):
        return "n_head=%d, n_kv_head=%d, head_dim=%d, rope_layout=%r" % (
            self.n_head, self.n_kv_head, self.head_dim, self.rope_layout)
