"""Checks of step attention (chapter 6): scaled dot-product attention, multi-head attention,
online softmax.

Attention is compared with NumPy written here (softmax(q k^T / sqrt(d) + M) v, the masks built
by comparing indices, the heads computed one at a time from slices of the features), with the
worked example of document 002 §4.3 by hand, and its gradients with central differences.
online_softmax is compared with a one-pass softmax in NumPy for every block size.
"""

import math

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="attention", chapter=6, module="attention",
    title="attention: scaled dot-product, masks, heads, online softmax",
    teaches="How attention scores every key for every query, scales the scores by 1/sqrt(d) "
            "so the softmax does not saturate, blocks keys with a mask (causal or padding) "
            "before the softmax, splits the features into heads and merges them back, and "
            "how a softmax can be computed block by block with a running max and sum.",
    needs=("autograd", "elementwise", "tensor_ops", "losses", "optim", "mlp"),
    minutes=120,
    hints=(
        "Write the formula with the ops you have: ops.matmul(q, ops.transpose(k, axes)) with "
        "axes swapping only the last two axes (the leading batch and head axes stay), times "
        "1 / sqrt(d), then softmax over the keys (the last axis), then matmul with v.",
        "Masks: attn_mask is True where a query may attend. masked_fill fills where its mask "
        "is True, so give it ~attn_mask and -inf. The causal mask is np.tril(np.ones((T, S), "
        "dtype=bool)): row i is True for the keys j <= i.",
        "MultiHeadAttention: (B, T, C) -> reshape (B, T, H, D) -> transpose (0, 2, 1, 3) gives "
        "(B, H, T, D), so that the heads are a batch axis of attention. Merging undoes both "
        "steps in reverse order; a reshape alone mixes the heads' features with the positions.",
        "online_softmax: keep m (the max so far, starting at -inf) and l (the sum of exp(x_j - "
        "m) so far, starting at 0). A new block with max b gives m' = max(m, b), and the old "
        "sum must be re-expressed relative to m' before the block's terms are added.",
        "The update: l <- l * exp(m - m') + sum(exp(block - m')), m <- m'. While m' is still "
        "-inf (every entry so far masked) skip the block: exp(-inf - (-inf)) is NaN. The "
        "second pass writes exp(x - m) / l.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


def _attention_numpy(q, k, v, allowed=None):
    """softmax(q k^T / sqrt(d), -inf where not allowed) v, in NumPy."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def _causal(T, S):
    """Query i may attend to key j when j <= i (top-left aligned, as PyTorch's is_causal)."""
    return np.arange(S)[None, :] <= np.arange(T)[:, None]


def _qkv(seed, q_shape, k_shape, dv):
    r = _rng(seed)
    return (r.standard_normal(q_shape), r.standard_normal(k_shape),
            r.standard_normal(k_shape[:-1] + (dv,)))


def _attend(c, q, k, v, **options):
    sdpa = c.get("scaled_dot_product_attention")
    return sdpa(c.tensor(q), c.tensor(k), c.tensor(v), **options)


# ----- scaled_dot_product_attention -------------------------------------------------------------
@STEP.check("attention_matches_numpy")
def attention_values(c):
    """softmax(q k^T / sqrt(d)) v for T != S, dv != d, leading batch and head axes."""
    cases = [((4, 3), (6, 3), 5), ((2, 4, 3), (2, 6, 3), 2), ((2, 2, 5, 4), (2, 2, 5, 4), 4),
             ((2, 1, 3, 4), (1, 3, 5, 4), 2)]
    for seed, (q_shape, k_shape, dv) in enumerate(cases):
        q, k, v = _qkv(seed, q_shape, k_shape, dv)
        out = _attend(c, q, k, v)
        label = "attention of q %s, k %s, v %s" % (q.shape, k.shape, v.shape)
        c.shape(label, out, np.broadcast_shapes(q_shape[:-1], k_shape[:-2] + (1,)) + (dv,),
                dtype=np.float64)
        c.expect(label, out, reference=lambda q=q, k=k, v=v: _attention_numpy(q, k, v))


@STEP.check("worked_example_of_document_002")
def worked_example(c):
    """q = (1, 0), k = (0, 1), v = (1, 1): one key gets weight 1, so the output is v = (1, 1);
    self-attention of the three words by hand."""
    c.known("attention of q = word1, k = word2, v = word3 (one key: weight 1)",
            _attend(c, np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])),
            np.array([[1.0, 1.0]]))
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    e, f = math.exp(1 / math.sqrt(2)), math.exp(2 / math.sqrt(2))
    # Row i's scores are (x_i . x_j) / sqrt(2); word3 . word3 = 2.
    P = np.array([[e, 1, e], [1, e, e], [e, e, f]])
    P /= P.sum(axis=1, keepdims=True)
    out = _attend(c, X, X, X)
    c.known("self-attention of word1, word2, word3 (Q = K = V = X)", out, P @ X)
    # word1's weights are (e, 1, e) / (2e + 1): output (2e, e + 1) / (2e + 1) = (0.8022, 0.5989)
    c.known("its first row", c.array(out)[0],
            np.array([2 * e / (2 * e + 1), (e + 1) / (2 * e + 1)]))


@STEP.check("is_causal_masks_later_keys")
def causal(c):
    """is_causal=True: query i sees keys 0..i, top-left aligned when T != S (T=S=5, T=3 S=5,
    T=5 S=3)."""
    for seed, (T, S) in enumerate(((5, 5), (3, 5), (5, 3))):
        q, k, v = _qkv(10 + seed, (2, T, 3), (2, S, 3), 2)
        out = _attend(c, q, k, v, is_causal=True)
        c.expect("causal attention, T=%d, S=%d" % (T, S), out,
                 reference=lambda q=q, k=k, v=v, T=T, S=S: _attention_numpy(q, k, v,
                                                                          _causal(T, S)))
        c.known("causal attention, T=%d, S=%d: query 0 sees only key 0, its output is v[0]"
                % (T, S), c.array(out)[:, 0], v[:, 0])


@STEP.check("boolean_attn_mask_true_means_may_attend")
def attn_mask(c):
    """A padding mask (B, 1, S) and a full (T, S) mask: keys where it is False get weight 0."""
    q, k, v = _qkv(20, (2, 4, 3), (2, 5, 3), 2)
    padding = np.array([[True, True, True, False, False], [True, True, True, True, False]])
    out = _attend(c, q, k, v, attn_mask=padding[:, None, :])
    c.expect("attention with a padding mask (2, 1, 5)", out,
             reference=lambda: _attention_numpy(q, k, v, padding[:, None, :]))
    changed_v = v.copy()
    changed_v[~padding] = 100.0
    c.known("the output when the values at padded keys are changed to 100",
            _attend(c, q, k, changed_v, attn_mask=padding[:, None, :]), c.array(out))
    full = _rng(21).random((4, 5)) < 0.6
    full[:, 0] = True                                  # every query keeps at least one key
    c.expect("attention with a (4, 5) mask", _attend(c, q, k, v, attn_mask=full),
             reference=lambda: _attention_numpy(q, k, v, full))


@STEP.check("gradients_through_q_k_v")
def attention_gradients(c):
    """dL/dq, dL/dk, dL/dv against central differences: no mask, causal, a padding mask."""
    sdpa = c.get("scaled_dot_product_attention")
    padding = np.array([[True, True, False, True], [True, False, True, True]])[:, None, :]
    for seed, (label, options) in enumerate((("", {}), (" (causal)", {"is_causal": True}),
                                             (" (padding mask)", {"attn_mask": padding}))):
        arrays = list(_qkv(30 + seed, (2, 3, 2), (2, 4, 2), 2))
        c.gradcheck(lambda q, k, v, options=options: sdpa(q, k, v, **options), arrays,
                    ["dL/d%s%s" % (name, label) for name in "qkv"])


@STEP.check("attention_contract_errors")
def attention_errors(c):
    """ValueError for attn_mask together with is_causal, and for q and k of different d."""
    q, k, v = _qkv(40, (2, 4, 3), (2, 5, 3), 2)
    c.raises("attn_mask and is_causal=True together",
             lambda: _attend(c, q, k, v, attn_mask=np.ones((4, 5), dtype=bool), is_causal=True),
             (ValueError,), contains=("attn_mask", "is_causal"))
    c.raises("q (2, 4, 3) with k (2, 5, 2)",
             lambda: _attend(c, q, k[..., :2], v), (ValueError,),
             contains=("(2, 4, 3)", "(2, 5, 2)"))


# ----- MultiHeadAttention ----------------------------------------------------------------------
def _mha_numpy(x, params, num_heads, causal):
    """Multi-head attention in NumPy, one head at a time from slices of the features."""
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = params
    B, T, C = x.shape
    D = C // num_heads
    q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    heads = np.zeros((B, T, C))
    for h in range(num_heads):
        part = slice(h * D, (h + 1) * D)
        heads[..., part] = _attention_numpy(q[..., part], k[..., part], v[..., part],
                                            _causal(T, T) if causal else None)
    return heads @ wo.T + bo


def _params(module):
    return [(np.array(layer.weight.data), np.array(layer.bias.data))
            for layer in (module.q_proj, module.k_proj, module.v_proj, module.out_proj)]


@STEP.check("multi_head_attention_matches_numpy")
def mha_values(c):
    """MultiHeadAttention(8, 2) and (12, 3) on x (2, 5, C), with and without is_causal; four
    Linear(C, C) projections."""
    MultiHeadAttention = c.get("MultiHeadAttention")
    for seed, (C, H) in enumerate(((8, 2), (12, 3))):
        module = MultiHeadAttention(C, H, rng=_rng(50 + seed))
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            layer = getattr(module, name, None)
            c.true(layer is not None and tuple(layer.weight.shape) == (C, C),
                   "MultiHeadAttention(%d, %d).%s should be a Linear(%d, %d)" % (C, H, name, C, C))
        c.equal("the number of parameters of MultiHeadAttention(%d, %d)" % (C, H),
                len(module.parameters()), 8)
        x = _rng(60 + seed).standard_normal((2, 5, C))
        params = _params(module)
        for causal in (False, True):
            c.expect("MultiHeadAttention(%d, %d)(x, is_causal=%s)" % (C, H, causal),
                     module(c.tensor(x), is_causal=causal),
                     reference=lambda causal=causal, x=x, params=params, H=H:
                     _mha_numpy(x, params, H, causal))


@STEP.check("multi_head_attention_gradients")
def mha_gradients(c):
    """dL/dx through MultiHeadAttention(4, 2) (causal) against central differences."""
    MultiHeadAttention = c.get("MultiHeadAttention")
    module = MultiHeadAttention(4, 2, rng=_rng(70))
    c.gradcheck(lambda x: module(x, is_causal=True), [_rng(71).standard_normal((2, 3, 4))],
                ["dL/dx"])
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        c.true(getattr(module, name).weight.grad is not None,
               "no gradient reached %s.weight" % name)


@STEP.check("multi_head_attention_rejects_indivisible_heads")
def mha_errors(c):
    """embed_dim 10 with 4 heads: ValueError naming both numbers."""
    MultiHeadAttention = c.get("MultiHeadAttention")
    c.raises("MultiHeadAttention(10, 4)", lambda: MultiHeadAttention(10, 4, rng=_rng(0)),
             (ValueError,), contains=("10", "4"))


# ----- online_softmax ---------------------------------------------------------------------------
def _softmax_numpy(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@STEP.check("online_softmax_matches_softmax_for_every_block_size")
def online_block_sizes(c):
    """online_softmax(x, b) = softmax(x) for T = 10 and b = 1, 2, 3, 4, 7, 10, 16; and for an
    increasing x (the max grows in every block)."""
    online_softmax = c.get("online_softmax")
    x = _rng(80).standard_normal(10) * 3
    for block in (1, 2, 3, 4, 7, 10, 16):
        c.expect("random x (T=10), block_size=%d" % block, online_softmax(x.copy(), block),
                 reference=lambda: _softmax_numpy(x))
    ramp = np.arange(12.0)
    for block in (4, 5):
        c.expect("x = 0, 1, ..., 11, block_size=%d" % block, online_softmax(ramp.copy(), block),
                 reference=lambda: _softmax_numpy(ramp))


@STEP.check("online_softmax_is_stable_for_large_values")
def online_large(c):
    """x near 500 +- 1000: no overflow (exponentiate x - m, never x)."""
    online_softmax = c.get("online_softmax")
    x = _rng(81).standard_normal(9) * 1000 + 500
    for block in (2, 4):
        c.expect("x near 500 +- 1000, block_size=%d" % block, online_softmax(x.copy(), block),
                 reference=lambda: _softmax_numpy(x))


@STEP.check("online_softmax_gives_minus_inf_weight_0")
def online_masked(c):
    """Entries of -inf (masked) get weight 0, also when the first block is all -inf."""
    online_softmax = c.get("online_softmax")
    x = np.array([-np.inf, -np.inf, -np.inf, 1.0, 2.0, -np.inf, 0.5])
    finite = np.exp(np.array([1.0, 2.0, 0.5]) - 2.0)
    expected = np.zeros(7)
    expected[[3, 4, 6]] = finite / finite.sum()
    for block in (1, 2, 3):
        c.known("x with -inf entries, block_size=%d" % block, online_softmax(x.copy(), block),
                expected)


@STEP.check("online_softmax_rejects_a_block_size_below_1")
def online_errors(c):
    """block_size 0 or -2: ValueError naming block_size."""
    online_softmax = c.get("online_softmax")
    for block in (0, -2):
        c.raises("online_softmax(x, %d)" % block, lambda: online_softmax(np.ones(4), block),
                 (ValueError,), contains=("block_size",))
