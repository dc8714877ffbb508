"""Checks of step gpt (chapter 8): layer norm, GELU, the pre-norm block and the GPT model.

Layer norm's forward is compared with NumPy written here and its hand-derived backward with
central differences. The model's logits are compared with a NumPy forward of the same
architecture written here, on weights the check puts into the student's model by name (so the
student's initialisation order does not matter); its gradients with central differences of
its own loss; causality by changing a later token; weight tying by the parameters and by the
gradient that reaches rows of the embedding no input used.
"""

import math

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import (NUMERICAL_ATOL, NUMERICAL_RTOL, TYPICAL_NUMERICAL_ERROR,
                                       CheckFailed, SolutionError)

STEP = Step(
    name="gpt", chapter=8, module="gpt",
    title="the Transformer: layer norm, GELU, the pre-norm block, GPT",
    teaches="How layer norm standardises each position (and its backward, derived by hand), "
            "how a pre-norm block adds causal attention and a GELU MLP to the residual "
            "stream, and how a GPT turns token ids into next-token logits with position "
            "embeddings and an output layer tied to the token embedding.",
    needs=("autograd", "elementwise", "tensor_ops", "losses", "optim", "mlp", "embedding",
           "attention"),
    minutes=150,
    hints=(
        "LayerNormFunction.forward: compute mu and the biased variance over the last axis with "
        "keepdims=True, so they broadcast against x. Save what backward needs (xhat, 1/sigma, "
        "weight) with ctx.save_for_backward.",
        "GPT.forward: x = wte(idx) + wpe(arange(T)) has shape (B, T, C); after ln_f, reshape "
        "it to (B*T, C) and multiply by wte.weight.T for the logits (B*T, V). cross_entropy "
        "takes those with targets reshaped to (B*T,). Reshape the logits back to (B, T, V).",
        "Block.forward: the residual stream x is never normalised itself; each sublayer reads "
        "a normalised copy and its output is added back: x = x + attn(ln_1(x), is_causal=True). "
        "gelu: x * x * x is much faster than x ** 3 for negative x in NumPy.",
        "LayerNorm backward: with g = dL/dy * weight, xhat = (x - mu) / sigma, dL/dx has three "
        "terms: g / sigma, minus the mean of g / sigma (mu depends on every x), minus xhat / "
        "sigma times the mean of g * xhat (sigma depends on every x). dL/dweight and dL/dbias "
        "are summed over every axis but the last.",
        "dL/dx = (g - mean(g) - xhat * mean(g * xhat)) / sigma, means over the last axis; "
        "dL/dweight = sum(dL/dy * xhat), dL/dbias = sum(dL/dy) over the other axes.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


# ----- NumPy written here: the independent computations ----------------------------------------
def _np_layer_norm(x, weight, bias, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias


def _np_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_cross_entropy(logits, targets):
    """Mean over rows of -log softmax(logits)[target]; logits (N, V), targets (N,)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(targets)), targets].mean()


def _np_gpt(w, idx, n_layer, n_head):
    """The logits (B, T, V) of a pre-norm GPT with tied output weights, in NumPy."""
    B, T = idx.shape
    x = w["wte.weight"][idx] + w["wpe.weight"][:T]
    C = x.shape[-1]
    D = C // n_head
    causal = np.tril(np.ones((T, T), dtype=bool))

    def linear(h, name):
        return h @ w[name + ".weight"].T + w[name + ".bias"]

    def heads(h):
        return h.reshape(B, T, n_head, D).transpose(0, 2, 1, 3)

    for i in range(n_layer):
        p = "blocks.%d." % i
        h = _np_layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        q, k, v = (heads(linear(h, p + "attn.%s_proj" % n)) for n in "qkv")
        scores = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(D), -np.inf)
        y = (_np_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + linear(y, p + "attn.out_proj")
        h = _np_layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        x = x + linear(_np_gelu(linear(h, p + "c_fc")), p + "c_proj")
    x = _np_layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w["wte.weight"].T


# ----- the student's model, and weights put into it by name -----------------------------------
def _config(c, vocab_size, block_size, n_layer, n_head, n_embd):
    GPTConfig = c.get("GPTConfig")
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                     n_head=n_head, n_embd=n_embd)


def _model(c, seed=0, **sizes):
    return c.get("GPT")(_config(c, **sizes), rng=_rng(seed))


def _weight_shapes(vocab_size, block_size, n_layer, n_embd, **_):
    """{name: shape} of every parameter, by the stub's attribute names."""
    V, T, C = vocab_size, block_size, n_embd
    shapes = {"wte.weight": (V, C), "wpe.weight": (T, C)}
    for i in range(n_layer):
        p = "blocks.%d." % i
        shapes.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,)})
        for n in "qkv":
            shapes.update({p + "attn.%s_proj.weight" % n: (C, C),
                           p + "attn.%s_proj.bias" % n: (C,)})
        shapes.update({p + "attn.out_proj.weight": (C, C), p + "attn.out_proj.bias": (C,),
                       p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
                       p + "c_fc.weight": (4 * C, C), p + "c_fc.bias": (4 * C,),
                       p + "c_proj.weight": (C, 4 * C), p + "c_proj.bias": (C,)})
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


def _random_weights(seed, **sizes):
    """Weights of every parameter, big enough that every part of the model matters."""
    r = _rng(seed)
    weights = {}
    for name, shape in _weight_shapes(**sizes).items():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            weights[name] = 1 + 0.2 * r.standard_normal(shape)
        elif name.endswith("bias"):
            weights[name] = 0.1 * r.standard_normal(shape)
        elif name in ("wte.weight", "wpe.weight"):
            weights[name] = 0.7 * r.standard_normal(shape)
        else:
            weights[name] = r.standard_normal(shape) / math.sqrt(shape[1])
    return weights


def _parameter(model, name):
    """model.blocks[0].attn.q_proj.weight for the name "blocks.0.attn.q_proj.weight"."""
    obj = model
    for part in name.split("."):
        try:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        except (AttributeError, IndexError, TypeError):
            raise SolutionError("the GPT has no %s (keep the stub's attribute names: wte, wpe, "
                                "blocks, ln_f; in a Block ln_1, attn, ln_2, c_fc, c_proj)"
                                % name) from None
    if not hasattr(obj, "data"):
        raise SolutionError("the GPT's %s is not a Tensor" % name)
    return obj


def _load(c, model, weights):
    """Write the given weights into the model's own parameters, in place."""
    for name, value in weights.items():
        param = _parameter(model, name)
        c.shape(name, param, value.shape)
        param.data = value.copy()
    return model


def _logits_and_loss(c, model, idx, targets=None):
    logits, loss = model(idx, targets)
    return c.array(logits, "the logits"), loss


# ----- layer norm ------------------------------------------------------------------------------
def _layer_norm_data(seed, shape):
    r = _rng(seed)
    return [r.standard_normal(shape) * 2 + 1, 1 + 0.5 * r.standard_normal(shape[-1]),
            0.5 * r.standard_normal(shape[-1])]


@STEP.check("layer_norm_forward_matches_numpy")
def layer_norm_forward(c):
    """LayerNormFunction.apply(x, weight, bias, eps): over the last axis, biased variance,
    eps inside the square root; float32 in, float32 out."""
    Fn = c.get("LayerNormFunction")
    for shape, eps in (((4, 5), 1e-5), ((2, 3, 5), 1e-5), ((3, 4), 0.5)):
        x, weight, bias = _layer_norm_data(0, shape)
        y = Fn.apply(c.tensor(x), c.tensor(weight), c.tensor(bias), eps=eps)
        c.expect("y for x %s, eps=%g" % (shape, eps), y,
                 reference=lambda x=x, w=weight, b=bias, eps=eps: _np_layer_norm(x, w, b, eps))
    Tensor = c.Tensor()
    x, weight, bias = (a.astype(np.float32) for a in _layer_norm_data(1, (3, 8)))
    y = Fn.apply(Tensor(x), Tensor(weight), Tensor(bias))
    c.shape("y for float32 inputs", y, (3, 8), dtype=np.float32)


@STEP.check("layer_norm_backward_matches_central_differences")
def layer_norm_gradcheck(c):
    """dL/dx, dL/dweight, dL/dbias of LayerNormFunction against central differences."""
    Fn = c.get("LayerNormFunction")
    c.gradcheck(lambda x, w, b: Fn.apply(x, w, b), _layer_norm_data(2, (2, 3, 4)),
                ["dx", "dweight", "dbias"])
    c.gradcheck(lambda x, w, b: Fn.apply(x, w, b, eps=0.5), _layer_norm_data(3, (3, 4)),
                ["dx (eps=0.5)", "dweight (eps=0.5)", "dbias (eps=0.5)"])


@STEP.check("layer_norm_module_starts_as_standardisation")
def layer_norm_module(c):
    """LayerNorm(dim, eps): weight ones, bias zeros (its parameters), forward with its eps."""
    LayerNorm = c.get("LayerNorm")
    norm = LayerNorm(6)
    c.known("LayerNorm(6).weight", norm.weight, np.ones(6))
    c.known("LayerNorm(6).bias", norm.bias, np.zeros(6))
    params = norm.parameters()
    c.true(len(params) == 2 and params[0] is norm.weight and params[1] is norm.bias,
           "LayerNorm.parameters() should be [weight, bias], Tensors with requires_grad=True")
    x = _rng(4).standard_normal((2, 3, 6)) * 3 + 2
    c.expect("LayerNorm(6)(x)", norm(c.tensor(x)),
             reference=lambda: _np_layer_norm(x, np.ones(6), np.zeros(6)))
    c.expect("LayerNorm(6, eps=0.5)(x)", LayerNorm(6, eps=0.5)(c.tensor(x)),
             reference=lambda: _np_layer_norm(x, np.ones(6), np.zeros(6), eps=0.5))


# ----- GELU ------------------------------------------------------------------------------------
@STEP.check("gelu_is_the_tanh_approximation")
def gelu_values(c):
    """gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    gelu = c.get("gelu")
    x = np.concatenate([np.linspace(-6, 6, 25), _rng(5).standard_normal(8)])
    c.expect("gelu(x)", gelu(c.tensor(x)), reference=lambda: _np_gelu(x))
    c.known("gelu(0), gelu(1)", gelu(c.tensor(np.array([0.0, 1.0]))),
            np.array([0.0, 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))]))


# ----- the GPT ---------------------------------------------------------------------------------
_SMALL = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


@STEP.check("logits_match_a_numpy_forward")
def gpt_logits(c):
    """logits (B, T, V) of a 2-layer GPT with given weights against NumPy written here."""
    weights = _random_weights(10, **_SMALL)
    model = _load(c, _model(c, **_SMALL), weights)
    idx = _rng(11).integers(0, 11, size=(2, 7))
    logits, loss = _logits_and_loss(c, model, idx)
    c.true(loss is None, "GPT(idx) without targets should return (logits, None)")
    c.shape("logits", logits, (2, 7, 11))
    c.expect("logits", logits, reference=lambda: _np_gpt(weights, idx, 2, 2))


@STEP.check("loss_is_cross_entropy_and_starts_near_log_V")
def gpt_loss(c):
    """With targets the loss is the mean cross-entropy of the logits; at initialisation it is
    close to log V (the embeddings start at N(0, 0.02^2), so every token is about as likely)."""
    sizes = dict(vocab_size=32, block_size=8, n_layer=2, n_head=2, n_embd=16)
    model = _model(c, seed=12, **sizes)
    r = _rng(13)
    idx, targets = r.integers(0, 32, size=(8, 8)), r.integers(0, 32, size=(8, 8))
    logits, loss = _logits_and_loss(c, model, idx, targets)
    c.true(loss is not None, "GPT(idx, targets) returned no loss")
    c.known("the loss, against the mean cross-entropy of the returned logits", loss,
            _np_cross_entropy(logits.reshape(-1, 32), targets.reshape(-1)))
    value = float(c.array(loss))
    c.true(abs(value - math.log(32)) < 0.05, "the loss at initialisation is %.4f; it should be "
           "within 0.05 of log V = log 32 = %.4f (are wte and wpe multiplied by 0.02?)"
           % (value, math.log(32)))
    c.note("loss at initialisation %.4f, log V %.4f" % (value, math.log(32)))


@STEP.check("gradients_match_central_differences")
def gpt_gradcheck(c):
    """dL/dparameter of a 1-layer GPT's loss, for six of its parameters, against central
    differences of its own loss (float64)."""
    sizes = dict(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4)
    model = _load(c, _model(c, **sizes), _random_weights(14, **sizes))
    no_grad = c.get("no_grad", module="autograd")
    r = _rng(15)
    idx, targets = r.integers(0, 5, size=(2, 4)), r.integers(0, 5, size=(2, 4))
    names = ["wte.weight", "wpe.weight", "blocks.0.ln_1.weight", "blocks.0.attn.q_proj.weight",
             "blocks.0.c_fc.bias", "ln_f.weight"]
    for p in model.parameters():
        p.grad = None
    _, loss = model(idx, targets)
    loss.backward()
    eps = 1e-6
    for name in names:
        param = _parameter(model, name)
        if param.grad is None:
            raise CheckFailed("dL/d%s: no gradient reached this parameter (.grad is None)" % name)
        analytic = np.array(param.grad, dtype=np.float64)
        numeric = np.zeros(param.data.shape)
        for index in np.ndindex(param.data.shape):
            saved = param.data[index]
            with no_grad():
                param.data[index] = saved + eps
                plus = float(c.array(model(idx, targets)[1]))
                param.data[index] = saved - eps
                minus = float(c.array(model(idx, targets)[1]))
            param.data[index] = saved
            numeric[index] = (plus - minus) / (2 * eps)
        c.known("dL/d" + name, analytic, numeric, atol=NUMERICAL_ATOL, rtol=NUMERICAL_RTOL,
                typical=TYPICAL_NUMERICAL_ERROR)


@STEP.check("position_t_sees_only_tokens_up_to_t")
def gpt_causal(c):
    """Changing token 5 leaves the logits at positions 0..4 unchanged and changes 5..7."""
    model = _load(c, _model(c, **_SMALL), _random_weights(16, **_SMALL))
    idx = _rng(17).integers(0, 11, size=(2, 8))
    changed = idx.copy()
    changed[:, 5] = (idx[:, 5] + 1) % 11
    before, _ = _logits_and_loss(c, model, idx)
    after, _ = _logits_and_loss(c, model, changed)
    c.known("logits at positions 0..4 after changing token 5", after[:, :5], before[:, :5])
    c.true(np.all(np.abs(after[:, 5:] - before[:, 5:]).max(axis=-1) > 1e-6),
           "changing token 5 should change the logits at positions 5, 6 and 7 (they read it)")


@STEP.check("the_output_layer_is_the_token_embedding")
def gpt_tied(c):
    """Weight tying: no separate (V, C) output matrix among the parameters, and the rows of
    wte.weight of tokens absent from the input still get a gradient (from the output layer)."""
    sizes = dict(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = _load(c, _model(c, **sizes), _random_weights(18, **sizes))
    params = model.parameters()
    count = sum(int(np.size(c.array(p))) for p in params)
    expected = sum(int(np.prod(s)) for s in _weight_shapes(**sizes).values())
    c.true(count == expected, "the GPT has %d parameters, expected %d: is there a separate "
           "output matrix? The logits should use wte.weight itself" % (count, expected))
    c.note("%d parameters, wte.weight counted once" % count)
    r = _rng(19)
    idx, targets = r.integers(0, 6, size=(2, 8)), r.integers(0, 6, size=(2, 8))
    for p in params:
        p.grad = None
    _, loss = model(idx, targets)
    loss.backward()
    grad = model.wte.weight.grad
    c.true(grad is not None, "wte.weight got no gradient")
    unused = np.abs(np.asarray(grad)[6:]).sum(axis=1)
    c.true(np.all(unused > 0), "the rows 6..11 of wte.weight (tokens no input uses) got no "
           "gradient: the output layer must be wte.weight itself (logits = x @ wte.weight.T), "
           "not a copy or a detached Tensor")


@STEP.check("a_sequence_longer_than_block_size_is_an_error")
def gpt_block_size(c):
    """T = block_size works; T = block_size + 1 is a ValueError naming T and block_size."""
    model = _model(c, **_SMALL)
    logits, _ = _logits_and_loss(c, model, np.zeros((1, 8), dtype=np.int64))
    c.shape("logits for T = block_size = 8", logits, (1, 8, 11))
    c.raises("GPT on a sequence of 9 tokens with block_size 8",
             lambda: model(np.zeros((1, 9), dtype=np.int64)), (ValueError,),
             contains=("block_size", "9", "8"))
