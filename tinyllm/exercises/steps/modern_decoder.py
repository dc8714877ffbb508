"""Checks of step modern_decoder (chapter 17): RMSNorm and its hand-written backward, SiLU and
SwiGLU, rotary position embeddings in both layouts, grouped-query attention's repeat_kv, and a
preallocated KV cache whose one-token attention steps equal a full recompute.

Values are recorded from the reference solution and cross-checked against NumPy written here
(RoPE through complex numbers: pair (a, b) is a + ib, turned by e^{i m w}); the gradient is
checked against central differences of the student's own forward; RoPE's relative-position
property, the permutation between its layouts and the cache's agreement with a full recompute
are checked on the student's own functions.
"""

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import NUMERICAL_ATOL, NUMERICAL_RTOL, TYPICAL_NUMERICAL_ERROR

STEP = Step(
    name="modern_decoder", chapter=17, module="modern_decoder",
    title="modern_decoder: RMSNorm, SwiGLU, RoPE, grouped-query attention, the KV cache",
    teaches="How RMSNorm scales a position by its root mean square (and its backward, derived "
            "by hand), how SwiGLU gates one linear branch with a SiLU one, why RoPE's rotations "
            "make the score q_m . k_n depend only on m - n and how its two layouts differ by a "
            "permutation, how grouped-query attention shares key/value heads, and how a "
            "preallocated KV cache lets one new token attend to all earlier ones in O(T).",
    minutes=120,
    hints=(
        "rms_norm: r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) keeps the last "
        "axis so that r * x broadcasts; eps goes inside the square root.",
        "rope: w = theta ** (-np.arange(0, D, 2) / D) (D/2 frequencies), angles = positions[:, "
        "None] * w (T, D/2). In the 'half' layout the pairs are (x[..., :D/2], x[..., D/2:]), in "
        "the 'interleaved' one (x[..., 0::2], x[..., 1::2]); (a, b) -> (a cos - b sin, a sin + "
        "b cos).",
        "repeat_kv is np.repeat(x, n_rep, axis=1) (heads 0, 0, 1, 1), not np.tile (0, 1, 0, 1). "
        "KVCache.append writes at [:, :, length:length + T_new] and returns [:, :, :length] "
        "views after moving length on; cached_attention_step lets query i (position length - "
        "T_new + i) see the keys j <= length - T_new + i.",
        "rms_norm_backward: write x_hat = r x and g = weight * grad. y_k = w_k r x_k, and "
        "dr/dx_j = -r^3 x_j / C. Sum the two paths (through x_k directly and through r).",
        "The result: dL/dx = r (g - x_hat mean_j(g_j x_hat_j)); dL/dweight = (grad * "
        "x_hat).reshape(-1, C).sum(axis=0).",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


# ----- independent NumPy written here (used only when recording) -------------------------------
def _numpy_rms_norm(x, weight, eps):
    return x / np.sqrt((x ** 2).sum(-1, keepdims=True) / x.shape[-1] + eps) * weight


def _numpy_silu(x):
    return x / (1.0 + np.exp(-x))


def _numpy_rope(x, positions, theta, layout):
    """RoPE through complex numbers: pair (a, b) is a + ib; it is multiplied by e^{i m w}."""
    D = x.shape[-1]
    if layout == "half":
        z = x[..., :D // 2] + 1j * x[..., D // 2:]
    else:
        z = x[..., 0::2] + 1j * x[..., 1::2]
    w = np.array([theta ** (-2.0 * i / D) for i in range(D // 2)])
    z = z * np.exp(1j * np.outer(positions, w))
    if layout == "half":
        return np.concatenate([z.real, z.imag], axis=-1)
    return np.stack([z.real, z.imag], axis=-1).reshape(x.shape)


def _numpy_causal_attention(q, k, v):
    """Full causal attention, q (B, H, T, D), k and v (B, H_kv, T, D), head h of q reading
    key/value head h // (H / H_kv); written with loops over the heads and positions."""
    B, H, T, D = q.shape
    n_rep = H // k.shape[1]
    out = np.zeros_like(q)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                s = np.array([q[b, h, t] @ k[b, h // n_rep, j] for j in range(t + 1)])
                p = np.exp(s / np.sqrt(D) - np.max(s / np.sqrt(D)))
                out[b, h, t] = (p / p.sum()) @ v[b, h // n_rep, :t + 1]
    return out


# ----- RMSNorm ----------------------------------------------------------------------------------
@STEP.check("rms_norm_scales_by_the_root_mean_square")
def rms_norm_values(c):
    """y = w x / sqrt(mean(x^2) + eps): by hand, and against NumPy at eps 1e-6 and 0.5."""
    rms_norm = c.get("rms_norm")
    c.known("rms_norm of a row of -3s (weight 1, eps 0)",
            rms_norm(np.full((1, 4), -3.0), np.ones(4), 0.0), np.full((1, 4), -1.0))
    # [3, 4]: mean of squares 12.5; eps 0.5 makes it 13; weight (2, 1).
    c.known("rms_norm of [3, 4], weight [2, 1], eps 0.5",
            rms_norm(np.array([3.0, 4.0]), np.array([2.0, 1.0]), 0.5),
            np.array([6.0, 4.0]) / np.sqrt(13.0))
    r = _rng(0)
    x, w = r.standard_normal((2, 3, 6)), r.standard_normal(6)
    for eps in (1e-6, 0.5):
        c.expect("rms_norm of x (2, 3, 6) at eps=%g" % eps, rms_norm(x, w, eps),
                 reference=lambda eps=eps: _numpy_rms_norm(x, w, eps))


def _central_differences(f, x, upstream, eps=1e-6):
    """d/dx of sum(upstream * f(x)) by central differences (float64)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        plus = float(np.sum(upstream * f(x)))
        x[index] = saved - eps
        minus = float(np.sum(upstream * f(x)))
        x[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@STEP.check("rms_norm_backward_matches_central_differences")
def rms_norm_gradient(c):
    """dL/dx and dL/dweight against central differences of the student's rms_norm, x (2, 3, 5)."""
    rms_norm, backward = c.get("rms_norm"), c.get("rms_norm_backward")
    r = _rng(1)
    for eps in (1e-6, 0.3):
        x, w = r.standard_normal((2, 3, 5)), r.standard_normal(5)
        upstream = r.standard_normal((2, 3, 5))
        grad_x, grad_w = backward(upstream, x, w, eps)
        numeric = dict(atol=NUMERICAL_ATOL, rtol=NUMERICAL_RTOL, typical=TYPICAL_NUMERICAL_ERROR)
        c.known("dL/dx at eps=%g" % eps, grad_x,
                _central_differences(lambda a: rms_norm(a, w, eps), x, upstream), **numeric)
        c.known("dL/dweight at eps=%g" % eps, grad_w,
                _central_differences(lambda a: rms_norm(x, a, eps), w, upstream), **numeric)


@STEP.check("rms_norm_rejects_a_weight_of_the_wrong_shape")
def rms_norm_errors(c):
    """weight (4,) for x (2, 5), or grad of another shape: ValueError naming the op and shapes."""
    rms_norm, backward = c.get("rms_norm"), c.get("rms_norm_backward")
    x = np.ones((2, 5))
    c.raises("rms_norm of x (2, 5) with weight (4,)", lambda: rms_norm(x, np.ones(4)),
             (ValueError,), contains=("rms_norm", "(4,)", "(2, 5)"))
    c.raises("rms_norm_backward of grad (2, 4) for x (2, 5)",
             lambda: backward(np.ones((2, 4)), x, np.ones(5)), (ValueError,),
             contains=("rms_norm_backward", "(2, 4)", "(2, 5)"))


# ----- SiLU and SwiGLU --------------------------------------------------------------------------
@STEP.check("silu_is_x_sigmoid_x_and_finite")
def silu_values(c):
    """silu(0) = 0, silu(1) = 1 / (1 + e^-1), silu(+-1000) = 1000 and 0, and against NumPy."""
    silu = c.get("silu")
    c.known("silu([0, 1, -1])", silu(np.array([0.0, 1.0, -1.0])),
            np.array([0.0, 1 / (1 + np.exp(-1.0)), -1 / (1 + np.e)]))
    with np.errstate(over="raise", invalid="raise"):
        try:
            big = silu(np.array([1000.0, -1000.0]))
        except FloatingPointError as error:
            big = None
            c.true(False, "silu(+-1000) overflows (%s): use a sigmoid that does not, e.g. "
                          "exp(-logaddexp(0, -x))" % error)
    c.known("silu([1000, -1000])", big, np.array([1000.0, 0.0]))
    x = _rng(2).normal(0, 3, (4, 5))
    c.expect("silu of x (4, 5)", silu(x), reference=lambda: _numpy_silu(x))


@STEP.check("swiglu_gates_the_up_branch_with_silu_of_the_gate")
def swiglu_values(c):
    """y = (silu(x Wg^T) * (x Wu^T)) Wd^T for x (2, 3, 4), F = 6, against NumPy and by hand."""
    swiglu = c.get("swiglu")
    r = _rng(3)
    x = r.standard_normal((2, 3, 4))
    w_gate, w_up, w_down = r.standard_normal((6, 4)), r.standard_normal((6, 4)), \
        r.standard_normal((4, 6))
    c.expect("swiglu of x (2, 3, 4)", swiglu(x, w_gate, w_up, w_down),
             reference=lambda: (_numpy_silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T)
    # C = F = 1: y = silu(2 x) * (3 x) * 5 at x = 1.
    c.known("swiglu of x = 1 with weights 2, 3, 5",
            swiglu(np.ones((1, 1)), np.full((1, 1), 2.0), np.full((1, 1), 3.0),
                   np.full((1, 1), 5.0)), np.full((1, 1), 2 / (1 + np.exp(-2.0)) * 15))


@STEP.check("swiglu_rejects_weights_that_do_not_fit")
def swiglu_errors(c):
    """w_up (5, 4) beside w_gate (6, 4), or w_down (6, 4): ValueError naming swiglu and shapes."""
    swiglu = c.get("swiglu")
    x = np.ones((2, 4))
    c.raises("swiglu with w_gate (6, 4) and w_up (5, 4)",
             lambda: swiglu(x, np.ones((6, 4)), np.ones((5, 4)), np.ones((4, 6))),
             (ValueError,), contains=("swiglu", "(6, 4)", "(5, 4)"))
    c.raises("swiglu with w_down (6, 4) instead of (4, 6)",
             lambda: swiglu(x, np.ones((6, 4)), np.ones((6, 4)), np.ones((6, 4))),
             (ValueError,), contains=("swiglu", "(6, 4)"))


# ----- RoPE -------------------------------------------------------------------------------------
@STEP.check("rope_turns_pair_i_by_m_w_i")
def rope_values(c):
    """By hand for D = 2 and 4, and against complex-number NumPy for both layouts, x (2, 3, 8)."""
    rope = c.get("rope")
    m = np.array([0.0, 1.0, 2.5])
    c.known("rope of (1, 0) at positions 0, 1, 2.5 (D = 2: w_0 = 1)",
            rope(np.tile([1.0, 0.0], (3, 1)), m), np.stack([np.cos(m), np.sin(m)], axis=1))
    # D = 4, theta = 100: w = (1, 100^(-1/2) = 0.1); half pairs (x0, x2), (x1, x3).
    got = rope(np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([3]), theta=100.0)
    c.known("rope of (1, 1, 0, 0) at position 3, theta 100, half layout", got,
            np.array([[np.cos(3.0), np.cos(0.3), np.sin(3.0), np.sin(0.3)]]))
    got = rope(np.array([[1.0, 0.0, 1.0, 0.0]]), np.array([3]), theta=100.0,
               layout="interleaved")
    c.known("rope of (1, 0, 1, 0) at position 3, theta 100, interleaved layout", got,
            np.array([[np.cos(3.0), np.sin(3.0), np.cos(0.3), np.sin(0.3)]]))
    x = _rng(4).standard_normal((2, 3, 8))
    positions = np.array([5, 0, 17])
    for layout in ("half", "interleaved"):
        c.expect("rope of x (2, 3, 8) at positions 5, 0, 17, layout %s" % layout,
                 rope(x, positions, layout=layout),
                 reference=lambda layout=layout: _numpy_rope(x, positions, 10000.0, layout))


@STEP.check("rope_scores_depend_only_on_m_minus_n")
def rope_relative(c):
    """rope(q, m) . rope(k, n) is the same for (m, n) = (5, 2), (13, 10), (1003, 1000), and
    rope keeps each vector's length."""
    rope = c.get("rope")
    r = _rng(5)
    q, k = r.standard_normal((1, 16)), r.standard_normal((1, 16))
    for layout in ("half", "interleaved"):
        def score(m, n):
            return float(np.sum(rope(q, np.array([m]), layout=layout)
                                * rope(k, np.array([n]), layout=layout)))
        base = score(3, 0)
        for m, n in ((5, 2), (13, 10), (1003, 1000)):
            c.known("score at (m, n) = (%d, %d), layout %s, against (3, 0)" % (m, n, layout),
                    score(m, n), base)
        c.true(abs(score(0, 3) - base) > 1e-3,
               "the score at (0, 3) equals the one at (3, 0) for layout %s: the rotation does "
               "not depend on the sign of m - n (are the positions used?)" % layout)
        c.known("|rope(q, 1000)|, layout %s" % layout,
                np.linalg.norm(rope(q, np.array([1000]), layout=layout)), np.linalg.norm(q))


@STEP.check("rope_layouts_are_related_by_a_permutation")
def rope_layouts(c):
    """With P = evens then odds: rope(x, interleaved)[..., P] = rope(x[..., P], half)."""
    rope = c.get("rope")
    x = _rng(6).standard_normal((2, 4, 10))
    positions = np.array([0, 3, 8, 100])
    P = np.concatenate([np.arange(0, 10, 2), np.arange(1, 10, 2)])
    c.known("rope(x, interleaved)[..., P] against rope(x[..., P], half)",
            rope(x, positions, layout="interleaved")[..., P],
            rope(x[..., P], positions, layout="half"))


@STEP.check("rope_rejects_bad_arguments")
def rope_errors(c):
    """An odd D, positions that are not (T,), an unknown layout: ValueError naming rope."""
    rope = c.get("rope")
    c.raises("rope of x (3, 5) (odd D)", lambda: rope(np.ones((3, 5)), np.arange(3)),
             (ValueError,), contains=("rope", "(3, 5)"))
    c.raises("rope of x (3, 4) with positions (2,)", lambda: rope(np.ones((3, 4)), np.arange(2)),
             (ValueError,), contains=("rope", "(2,)"))
    c.raises("rope with layout 'full'",
             lambda: rope(np.ones((3, 4)), np.arange(3), layout="full"), (ValueError,),
             contains=("rope", "full"))


# ----- grouped-query attention and the KV cache -------------------------------------------------
@STEP.check("repeat_kv_repeats_each_head_in_a_row")
def repeat_kv_values(c):
    """Head j of repeat_kv(x, n_rep) is head j // n_rep of x; bad arguments are ValueErrors."""
    repeat_kv = c.get("repeat_kv")
    x = _rng(7).standard_normal((2, 3, 4, 5))
    got = repeat_kv(x, 2)
    c.shape("repeat_kv(x (2, 3, 4, 5), 2)", got, (2, 6, 4, 5))
    c.known("repeat_kv(x (2, 3, 4, 5), 2)", got, np.stack([x[:, j // 2] for j in range(6)], 1))
    c.known("repeat_kv(x, 1)", repeat_kv(x, 1), x)
    c.raises("repeat_kv of x (3, 4, 5)", lambda: repeat_kv(np.ones((3, 4, 5)), 2),
             (ValueError,), contains=("repeat_kv", "(3, 4, 5)"))
    c.raises("repeat_kv with n_rep 0", lambda: repeat_kv(x, 0), (ValueError,),
             contains=("repeat_kv",))


@STEP.check("kv_cache_writes_in_place_and_returns_all_positions")
def kv_cache_append(c):
    """Arrays (B, H, max_len, D) allocated once; appends of 3, 1, 1 positions return their
    concatenation, views of those same arrays."""
    KVCache = c.get("KVCache")
    cache = KVCache(2, 3, 7, 4)
    c.shape("cache.keys", cache.keys, (2, 3, 7, 4))
    c.shape("cache.values", cache.values, (2, 3, 7, 4))
    keys_array, values_array = cache.keys, cache.values
    r = _rng(8)
    ks, vs = [], []
    for n in (3, 1, 1):
        k, v = r.standard_normal((2, 3, n, 4)), r.standard_normal((2, 3, n, 4))
        ks.append(k)
        vs.append(v)
        keys, values = cache.append(k, v)
        c.known("keys after appending %d positions" % sum(a.shape[2] for a in ks),
                keys, np.concatenate(ks, axis=2))
        c.known("values after appending %d positions" % sum(a.shape[2] for a in vs),
                values, np.concatenate(vs, axis=2))
    c.true(cache.length == 5, "cache.length should be 5 after 3 + 1 + 1 positions, got %r"
           % (cache.length,))
    c.true(cache.keys is keys_array and cache.values is values_array,
           "append replaced cache.keys or cache.values: write into the arrays allocated in "
           "__init__ (cache.keys[:, :, length:end] = k), do not concatenate")
    c.true(np.shares_memory(keys, keys_array) and np.shares_memory(values, values_array),
           "append returned copies: return views of the preallocated arrays ([:, :, :length])")
    c.known("cache.keys at the unused positions 5, 6", cache.keys[:, :, 5:], np.zeros((2, 3, 2, 4)))


@STEP.check("kv_cache_rejects_overflow_and_bad_shapes")
def kv_cache_errors(c):
    """Past max_len, or keys of another B, H or D: ValueError naming KVCache (and the shapes)."""
    KVCache = c.get("KVCache")
    cache = KVCache(1, 2, 4, 3)
    cache.append(np.ones((1, 2, 3, 3)), np.ones((1, 2, 3, 3)))
    c.raises("appending 2 positions to a cache of max_len 4 holding 3",
             lambda: cache.append(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3))), (ValueError,),
             contains=("KVCache", "4"))
    c.raises("appending keys (1, 3, 1, 3) to a cache (1, 2, 4, 3)",
             lambda: cache.append(np.ones((1, 3, 1, 3)), np.ones((1, 3, 1, 3))), (ValueError,),
             contains=("KVCache", "(1, 3, 1, 3)"))
    c.raises("appending keys (1, 2, 1, 5) to a cache (1, 2, 4, 3)",
             lambda: cache.append(np.ones((1, 2, 1, 5)), np.ones((1, 2, 1, 5))), (ValueError,),
             contains=("KVCache", "(1, 2, 1, 5)"))


def _tiny_decoder(seed, B=2, T=6, C=8, H=4, H_kv=2, D=4, V=11):
    """Inputs (B, T, C) and the weights of one attention layer and an output layer."""
    r = _rng(seed)
    return dict(x=r.standard_normal((B, T, C)), wq=r.standard_normal((H * D, C)) / np.sqrt(C),
                wk=r.standard_normal((H_kv * D, C)) / np.sqrt(C),
                wv=r.standard_normal((H_kv * D, C)) / np.sqrt(C),
                wout=r.standard_normal((V, H * D)), H=H, H_kv=H_kv, D=D)


def _heads(a, n, D):
    """(B, T, n D) -> (B, n, T, D)."""
    return a.reshape(a.shape[0], a.shape[1], n, D).transpose(0, 2, 1, 3)


def _project(m, x, positions, rope):
    q = rope(_heads(x @ m["wq"].T, m["H"], m["D"]), positions)
    k = rope(_heads(x @ m["wk"].T, m["H_kv"], m["D"]), positions)
    return q, k, _heads(x @ m["wv"].T, m["H_kv"], m["D"])


def _logits(m, out):
    """(B, H, T, D) -> logits (B, T, V)."""
    B, H, T, D = out.shape
    return out.transpose(0, 2, 1, 3).reshape(B, T, H * D) @ m["wout"].T


@STEP.check("cached_steps_give_the_logits_of_a_full_recompute")
def cached_attention(c):
    """A tiny decoder (RoPE, 4 query heads on 2 key/value heads): the prompt at once, against
    NumPy; then each token alone through the cache equals the full recompute's logits."""
    KVCache, step, rope = c.get("KVCache"), c.get("cached_attention_step"), c.get("rope")
    m = _tiny_decoder(9)
    B, T = m["x"].shape[:2]
    q, k, v = _project(m, m["x"], np.arange(T), rope)
    full = KVCache(B, m["H_kv"], T, m["D"])
    full.append(k, v)
    full_logits = _logits(m, step(q, full))
    c.expect("logits of the whole sequence at once (B = 2, T = 6)", full_logits,
             reference=lambda: _logits(m, _numpy_causal_attention(q, k, v)))
    cache = KVCache(B, m["H_kv"], T, m["D"])
    for t in range(T):
        q_t, k_t, v_t = _project(m, m["x"][:, t:t + 1], np.array([t]), rope)
        cache.append(k_t, v_t)
        c.known("logits of token %d through the cache against the full recompute" % t,
                _logits(m, step(q_t, cache)), full_logits[:, t:t + 1])
    # Two steps at once after a prompt of 4: queries at positions 4, 5.
    cache = KVCache(B, m["H_kv"], T, m["D"])
    cache.append(k[:, :, :4], v[:, :, :4])
    cache.append(k[:, :, 4:], v[:, :, 4:])
    c.known("logits of tokens 4, 5 appended together after a prompt of 4",
            _logits(m, step(q[:, :, 4:], cache)), full_logits[:, 4:])


@STEP.check("cached_attention_step_rejects_queries_that_do_not_fit")
def cached_attention_errors(c):
    """3 query heads on 2 key/value heads, or another D: ValueError naming the op and shapes."""
    KVCache, step = c.get("KVCache"), c.get("cached_attention_step")
    cache = KVCache(1, 2, 5, 4)
    cache.append(np.ones((1, 2, 2, 4)), np.ones((1, 2, 2, 4)))
    c.raises("queries (1, 3, 1, 4) on 2 key/value heads", lambda: step(np.ones((1, 3, 1, 4)),
                                                                        cache),
             (ValueError,), contains=("cached_attention_step", "(1, 3, 1, 4)"))
    c.raises("queries (1, 2, 1, 6) on keys of D = 4", lambda: step(np.ones((1, 2, 1, 6)), cache),
             (ValueError,), contains=("cached_attention_step", "(1, 2, 1, 6)"))
