"""The exercises: for each, its chapter, its task, its stub and reference solution, its checks.

Each check is a function ``check(solution) -> Outcome`` that reads what it needs from the
loaded solution module (``require(solution, "Softmax")``), runs it on fixed random data in
float64 and compares the results with numbers computed another way: a tinyllm reference
(``tinyllm.functional``, ``tinyllm.nn``, ``tinyllm.optim``), autograd through tensor ops, a
formula worked by hand, or central differences. The machinery (loading, comparing, gradients,
reporting) is in ``checks.py``.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinyllm.functional as F
from tinyllm import nn, optim
from tinyllm.autograd import tensor
from tinyllm.exercises.checks import (SolutionError, as_array, backward_cases, check_backward,
                                      compare, compare_all, gradcheck, numerical_cases, require)
from tinyllm.gradcheck import numerical_grad
from tinyllm.models import sampling
from tinyllm.training import evaluation

HERE = Path(__file__).resolve().parent

# chapter number -> the chapter's file name in chapters/ (without .md)
CHAPTERS = {2: "02-losses-and-gradients", 3: "03-optimizers", 4: "04-multilayer-networks",
            5: "05-embeddings", 6: "06-attention", 7: "07-recurrent-networks",
            8: "08-transformer", 9: "09-language-models-and-decoding",
            10: "10-pretraining-and-finetuning", 11: "11-kernels-and-performance",
            12: "12-evaluation-and-deployment"}


@dataclass(frozen=True)
class Exercise:
    """One exercise: what to write, where to start, how it is checked."""
    name: str
    chapter: int
    title: str
    entry: str          # the class or function the solution file must define
    task: str           # one paragraph, printed by ``show``
    checks: tuple       # ((check name, check function), ...)

    @property
    def stub_path(self):
        return HERE / "stubs" / (self.name + ".py")

    @property
    def solution_path(self):
        return HERE / "solutions" / (self.name + ".py")

    @property
    def chapter_file(self):
        return "chapters/%s.md" % CHAPTERS[self.chapter]


def f64(array):
    """A float64 tensor (no gradient) from an array."""
    return tensor(array, dtype=np.float64)


def rng(seed):
    return np.random.default_rng(seed)


# ----- chapter 2: softmax_cross_entropy ---------------------------------------------------------
def _logits_and_targets(seed, scale=1.0, n=6, c=5):
    r = rng(seed)
    return r.standard_normal((n, c)) * scale, r.integers(0, c, size=n)


def sce_forward(solution):
    Fn = require(solution, "SoftmaxCrossEntropy")
    cases = []
    for seed, scale in ((0, 1.0), (1, 4.0)):
        z, y = _logits_and_targets(seed, scale)
        cases.append(("the loss for logits of scale %g" % scale, Fn.apply(f64(z), y),
                      F.cross_entropy(f64(z), y)))
    return compare_all(cases)


def sce_large_logits(solution):
    Fn = require(solution, "SoftmaxCrossEntropy")
    z, y = _logits_and_targets(2, scale=1000.0)
    return compare(Fn.apply(f64(z), y), F.cross_entropy(f64(z), y),
                   label="the loss for logits near +-1000",
                   hint="exp(1000) overflows: subtract each row's max first")


def sce_backward(solution):
    Fn = require(solution, "SoftmaxCrossEntropy")
    z, y = _logits_and_targets(3)
    return check_backward(lambda t: Fn.apply(t, y), lambda t: F.cross_entropy(t, y), [z],
                          ["dL/dz"])


def sce_gradcheck(solution):
    Fn = require(solution, "SoftmaxCrossEntropy")
    z, y = _logits_and_targets(4)
    return gradcheck(lambda t: Fn.apply(t, y), [z], ["dL/dz"])


# ----- chapter 2: binary_cross_entropy ----------------------------------------------------------
def _probs_and_targets(seed, shape=(3, 4), soft=False):
    r = rng(seed)
    probs = r.uniform(0.05, 0.95, size=shape)
    target = r.uniform(0, 1, size=shape) if soft else r.integers(0, 2, size=shape) * 1.0
    return probs, target


def bce_documents_example(solution):
    Fn = require(solution, "BinaryCrossEntropy")
    cases = []
    for y, yhat in ((1.0, 0.9), (0.0, 0.1)):
        got = Fn.apply(f64([yhat]), f64([y]))
        cases.append(("the loss for y=%g, yhat=%g (-log 0.9 = 0.1053605)" % (y, yhat), got,
                      -math.log(0.9)))
    got = Fn.apply(f64([0.9, 0.2]), f64([1.0, 1.0]))
    cases.append(("the mean loss of yhat=(0.9, 0.2), y=(1, 1)", got,
                  -(math.log(0.9) + math.log(0.2)) / 2))
    return compare_all(cases)


def bce_forward(solution):
    Fn = require(solution, "BinaryCrossEntropy")
    cases = []
    for seed, soft in ((0, False), (1, True)):
        probs, target = _probs_and_targets(seed, soft=soft)
        cases.append(("the loss (%s targets)" % ("soft" if soft else "0/1"),
                      Fn.apply(f64(probs), f64(target)),
                      F.binary_cross_entropy(f64(probs), f64(target))))
    return compare_all(cases)


def bce_backward(solution):
    Fn = require(solution, "BinaryCrossEntropy")
    probs, target = _probs_and_targets(2)
    return check_backward(lambda p: Fn.apply(p, f64(target)),
                          lambda p: F.binary_cross_entropy(p, f64(target)), [probs],
                          ["dL/dyhat"])


def bce_gradcheck(solution):
    Fn = require(solution, "BinaryCrossEntropy")
    probs, target = _probs_and_targets(3, soft=True)
    return gradcheck(lambda p: Fn.apply(p, f64(target)), [probs], ["dL/dyhat"])


# ----- chapter 3: adam_step ---------------------------------------------------------------------
def _unpack_step(result):
    if not (isinstance(result, tuple) and len(result) == 3):
        raise SolutionError("adam_step must return a tuple (new_param, new_m, new_v), got %s"
                            % type(result).__name__)
    return [as_array(x) for x in result]


def adam_first_step(solution):
    adam_step = require(solution, "adam_step")
    r = rng(0)
    param, grad = r.standard_normal(5), r.standard_normal(5)
    zeros = np.zeros(5)
    lr, eps = 0.1, 1e-8
    new_param, m, v = _unpack_step(adam_step(param.copy(), grad.copy(), zeros.copy(),
                                             zeros.copy(), 1, lr, (0.9, 0.999), eps))
    # At t = 1 the bias correction gives m_hat = g and v_hat = g^2: a step of lr * sign(g).
    return compare_all([("param after step 1", new_param,
                         param - lr * grad / (np.abs(grad) + eps)),
                        ("m after step 1", m, 0.1 * grad),
                        ("v after step 1", v, 0.001 * grad * grad)])


def _quadratic(seed, n=4):
    """The gradient g(p) = A p - b of the loss 0.5 p^T A p - b^T p (A positive definite)."""
    r = rng(seed)
    M = r.standard_normal((n, n))
    A, b = M @ M.T + n * np.eye(n), r.standard_normal(n)
    return lambda p: A @ p - b, r.standard_normal(n)


def _adam_trajectories(adam_step, optimizer_class, decoupled, steps=20):
    """20 steps of the solution and of tinyllm's optimizer on the same quadratic."""
    gradient, start = _quadratic(1)
    lr, betas, eps, weight_decay = 0.05, (0.9, 0.99), 1e-8, 0.1
    param = tensor(start.copy(), requires_grad=True, dtype=np.float64)
    optimizer = optimizer_class([param], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    p, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    got, expected = [], []
    for t in range(1, steps + 1):
        p, m, v = _unpack_step(adam_step(p, gradient(p), m, v, t, lr, betas, eps,
                                         weight_decay=weight_decay, decoupled=decoupled))
        param.grad = gradient(param.data)
        optimizer.step()
        state = optimizer.state[param]
        got.append((p.copy(), m.copy(), v.copy()))      # the next call may change them
        expected.append((param.data.copy(), state["exp_avg"].copy(),
                         state["exp_avg_sq"].copy()))
    return [("%s (step - 1, element)" % name, np.array([g[k] for g in got]),
             np.array([e[k] for e in expected])) for k, name in enumerate(("param", "m", "v"))]


def adam_matches_adamw(solution):
    return compare_all(_adam_trajectories(require(solution, "adam_step"), optim.AdamW, True))


def adam_matches_adam(solution):
    return compare_all(_adam_trajectories(require(solution, "adam_step"), optim.Adam, False))


def adam_leaves_arguments(solution):
    adam_step = require(solution, "adam_step")
    r = rng(2)
    args = [r.standard_normal(3), r.standard_normal(3), r.standard_normal(3),
            r.uniform(0.1, 1.0, 3)]
    copies = [a.copy() for a in args]
    adam_step(*args, 3, 0.01, (0.9, 0.999), 1e-8, weight_decay=0.1, decoupled=True)
    return compare_all([("%s after the call" % name, a, c)
                        for name, a, c in zip(("param", "grad", "m", "v"), args, copies)],
                       atol=0.0, rtol=0.0,
                       hint="an argument was changed in place (m *= b1 ...); return new arrays")


# ----- chapter 4: mlp_backward ------------------------------------------------------------------
def _mlp_data(seed=0, N=5, D=3, H=4, K=2):
    r = rng(seed)
    return {"x": r.standard_normal((N, D)), "W1": r.standard_normal((D, H)) * 0.7,
            "b1": r.standard_normal(H) * 0.1, "W2": r.standard_normal((H, K)) * 0.7,
            "b2": r.standard_normal(K) * 0.1, "y": r.standard_normal((N, K))}


PARAMETERS = ("W1", "b1", "W2", "b2")


def _mlp_loss_numpy(x, W1, b1, W2, b2, y):
    return np.mean((np.tanh(x @ W1 + b1) @ W2 + b2 - y) ** 2)


def _student_grads(solution, data):
    result = require(solution, "mlp_forward_backward")(**{k: v.copy() for k, v in data.items()})
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        raise SolutionError("mlp_forward_backward must return (loss, grads) with grads a dict")
    loss, grads = result
    missing = [k for k in PARAMETERS if k not in grads]
    if missing:
        raise SolutionError("grads has no key %s (expected keys W1, b1, W2, b2)"
                            % ", ".join(repr(k) for k in missing))
    return loss, grads


def mlp_loss(solution):
    data = _mlp_data(0)
    loss, _ = _student_grads(solution, data)
    return compare(loss, _mlp_loss_numpy(**data), label="the loss")


def mlp_grads_autograd(solution):
    data = _mlp_data(1)
    _, grads = _student_grads(solution, data)
    params = {k: tensor(data[k], requires_grad=True, dtype=np.float64) for k in PARAMETERS}
    hidden = (f64(data["x"]) @ params["W1"] + params["b1"]).tanh()
    F.mse_loss(hidden @ params["W2"] + params["b2"], f64(data["y"])).backward()
    return compare_all([("d" + k, grads[k], params[k].grad) for k in PARAMETERS])


def mlp_grads_numerical(solution):
    data = _mlp_data(2)
    _, grads = _student_grads(solution, data)
    cases = []
    for k in PARAMETERS:
        def loss_of(value, k=k):
            return _mlp_loss_numpy(**dict(data, **{k: value}))
        cases.append(("d" + k, grads[k], numerical_grad(loss_of, data[k].copy())))
    return compare_all(cases, atol=1e-6, rtol=1e-5)


# ----- chapter 5: embedding ---------------------------------------------------------------------
REPEATED_IDS = np.array([[1, 3, 1], [1, 0, 5]])      # id 1 three times; ids 2 and 4 never


def _embedding_table(seed, V=6, D=3):
    return rng(seed).standard_normal((V, D))


def embedding_forward(solution):
    Fn = require(solution, "EmbeddingLookup")
    weight = _embedding_table(0)
    cases = []
    for ids in (np.array([4, 0, 2]), REPEATED_IDS):
        cases.append(("y for ids of shape %s" % (ids.shape,), Fn.apply(f64(weight), ids),
                      F.embedding(ids, f64(weight))))
    return compare_all(cases, atol=0.0, rtol=0.0)


def embedding_repeated_ids(solution):
    Fn = require(solution, "EmbeddingLookup")
    return check_backward(lambda w: Fn.apply(w, REPEATED_IDS),
                          lambda w: F.embedding(REPEATED_IDS, w), [_embedding_table(1)],
                          ["dW (ids %s)" % REPEATED_IDS.tolist()])


def embedding_gradcheck(solution):
    Fn = require(solution, "EmbeddingLookup")
    return gradcheck(lambda w: Fn.apply(w, REPEATED_IDS), [_embedding_table(2)], ["dW"])


# ----- chapter 6: softmax -----------------------------------------------------------------------
def softmax_forward(solution):
    Fn = require(solution, "Softmax")
    cases = []
    for shape in ((5,), (2, 3, 5)):
        x = rng(0).standard_normal(shape) * 2
        cases.append(("y for x of shape %s" % (shape,), Fn.apply(f64(x)), F.softmax(f64(x))))
    return compare_all(cases)


def softmax_large_inputs(solution):
    Fn = require(solution, "Softmax")
    x = rng(1).standard_normal((3, 4)) * 1000
    return compare(Fn.apply(f64(x)), F.softmax(f64(x)), label="y for x near +-1000",
                   hint="exp(1000) overflows: subtract each row's max first")


def softmax_backward(solution):
    Fn = require(solution, "Softmax")
    x = rng(2).standard_normal((2, 3, 4))
    return check_backward(Fn.apply, F.softmax, [x], ["dx"])


def softmax_gradcheck(solution):
    Fn = require(solution, "Softmax")
    return gradcheck(Fn.apply, [rng(3).standard_normal((3, 4))], ["dx"])


# ----- chapter 6: attention ---------------------------------------------------------------------
def _qkv(seed, lead=(), T=4, S=4, d=3, dv=2):
    r = rng(seed)
    return (r.standard_normal(lead + (T, d)), r.standard_normal(lead + (S, d)),
            r.standard_normal(lead + (S, dv)))


def attention_forward(solution):
    Fn = require(solution, "Attention")
    cases = []
    for lead, S in (((), 4), ((), 6), ((2,), 4)):
        q, k, v = (f64(a) for a in _qkv(0, lead, S=S))
        cases.append(("O for q %s, k %s" % (q.shape, k.shape), Fn.apply(q, k, v),
                      F.scaled_dot_product_attention(q, k, v)))
    return compare_all(cases)


def attention_causal_forward(solution):
    Fn = require(solution, "Attention")
    cases = []
    for lead in ((), (2,)):
        q, k, v = (f64(a) for a in _qkv(1, lead))
        cases.append(("causal O for q %s" % (q.shape,), Fn.apply(q, k, v, causal=True),
                      F.scaled_dot_product_attention(q, k, v, is_causal=True)))
    return compare_all(cases)


def attention_backward(solution):
    Fn = require(solution, "Attention")
    cases = []
    for causal in (False, True):
        cases += backward_cases(
            lambda q, k, v: Fn.apply(q, k, v, causal=causal),
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
            list(_qkv(2, (2,))), ["d%s%s" % (name, " (causal)" if causal else "")
                                  for name in "qkv"])
    return compare_all(cases)


def attention_gradcheck(solution):
    Fn = require(solution, "Attention")
    cases = []
    for causal in (False, True):
        cases += numerical_cases(lambda q, k, v: Fn.apply(q, k, v, causal=causal),
                                 list(_qkv(3, (2,), T=3, S=3, d=2, dv=2)),
                                 ["d%s%s" % (name, " (causal)" if causal else "")
                                  for name in "qkv"])
    return compare_all(cases, atol=1e-6, rtol=1e-5)


# ----- chapter 7: lstm_cell ---------------------------------------------------------------------
def _lstm_data(seed, B=2, I=3, H=2):
    r = rng(seed)
    return [r.standard_normal((B, I)), r.standard_normal((B, H)) * 0.5,
            r.standard_normal((B, H)) * 0.5, r.standard_normal((4 * H, I)) * 0.6,
            r.standard_normal((4 * H, H)) * 0.6, r.standard_normal(4 * H) * 0.3]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _lstm_numpy(x, h, c, W_ih, W_hh, b):
    """The LSTM step in plain NumPy, gates in the order i, f, g, o."""
    a_i, a_f, a_g, a_o = np.split(x @ W_ih.T + h @ W_hh.T + b, 4, axis=1)
    c_next = _sigmoid(a_f) * c + _sigmoid(a_i) * np.tanh(a_g)
    return _sigmoid(a_o) * np.tanh(c_next), c_next


def _lstm_tensor_ops(x, h, c, W_ih, W_hh, b):
    """The same step with tensor ops, so that autograd derives the backward."""
    H = h.shape[1]
    a = x @ W_ih.T + h @ W_hh.T + b
    i, f = a[:, :H].sigmoid(), a[:, H:2 * H].sigmoid()
    g, o = a[:, 2 * H:3 * H].tanh(), a[:, 3 * H:].sigmoid()
    c_next = f * c + i * g
    return o * c_next.tanh(), c_next


def _unpack_pair(result, what):
    if not (isinstance(result, tuple) and len(result) == 2):
        raise SolutionError("%s must return the pair (h', c')" % what)
    return result


def lstm_forward(solution):
    Fn = require(solution, "LSTMCellStep")
    data = _lstm_data(0)
    h_next, c_next = _unpack_pair(Fn.apply(*[f64(a) for a in data]), "LSTMCellStep.forward")
    h_expected, c_expected = _lstm_numpy(*data)
    return compare_all([("h'", h_next, h_expected), ("c'", c_next, c_expected)])


def lstm_matches_nn(solution):
    Fn = require(solution, "LSTMCellStep")
    x, h, c, W_ih, W_hh, b = _lstm_data(1)
    cell = nn.LSTMCell(x.shape[1], h.shape[1])
    for name, value in (("weight_ih", W_ih), ("weight_hh", W_hh), ("bias_ih", b),
                        ("bias_hh", np.zeros_like(b))):
        getattr(cell, name).data = value.copy()
    h_expected, c_expected = cell(f64(x), (f64(h), f64(c)))
    h_next, c_next = _unpack_pair(Fn.apply(*[f64(a) for a in (x, h, c, W_ih, W_hh, b)]),
                                  "LSTMCellStep.forward")
    return compare_all([("h'", h_next, h_expected), ("c'", c_next, c_expected)])


LSTM_GRADIENTS = ["dx", "dh", "dc", "dW_ih", "dW_hh", "db"]


def lstm_backward(solution):
    Fn = require(solution, "LSTMCellStep")
    return check_backward(Fn.apply, _lstm_tensor_ops, _lstm_data(2), LSTM_GRADIENTS)


def lstm_gradcheck(solution):
    Fn = require(solution, "LSTMCellStep")
    return gradcheck(Fn.apply, _lstm_data(3), LSTM_GRADIENTS)


# ----- chapter 8: layer_norm --------------------------------------------------------------------
def _layer_norm_data(seed, shape=(2, 3, 5)):
    r = rng(seed)
    return [r.standard_normal(shape) * 2 + 1, 1 + 0.5 * r.standard_normal(shape[-1]),
            0.5 * r.standard_normal(shape[-1])]


def _layer_norm_tensor_ops(x, gamma, beta, eps=1e-5):
    centered = x - x.mean(-1, keepdims=True)
    var = (centered * centered).mean(-1, keepdims=True)
    return centered / (var + eps) ** 0.5 * gamma + beta


def layer_norm_forward(solution):
    Fn = require(solution, "LayerNorm")
    cases = []
    for shape, eps in (((4, 5), 1e-5), ((2, 3, 5), 1e-5), ((3, 4), 0.5)):
        x, gamma, beta = (f64(a) for a in _layer_norm_data(0, shape))
        cases.append(("y for x %s, eps=%g" % (shape, eps), Fn.apply(x, gamma, beta, eps=eps),
                      F.layer_norm(x, shape[-1], gamma, beta, eps=eps)))
    return compare_all(cases)


def layer_norm_backward(solution):
    Fn = require(solution, "LayerNorm")
    return check_backward(Fn.apply, _layer_norm_tensor_ops, _layer_norm_data(1),
                          ["dx", "dgamma", "dbeta"])


def layer_norm_gradcheck(solution):
    Fn = require(solution, "LayerNorm")
    return gradcheck(Fn.apply, _layer_norm_data(2, (3, 4)), ["dx", "dgamma", "dbeta"])


# ----- chapter 9: top_p_filter ------------------------------------------------------------------
def _top_p_cases(solution, cases):
    """cases: (label, logits, p, indices the nucleus keeps)."""
    top_p_filter = require(solution, "top_p_filter")
    triples = []
    for label, logits, p, kept in cases:
        logits = np.asarray(logits, dtype=np.float64)
        expected = np.full_like(logits, -np.inf)
        expected[list(kept)] = logits[list(kept)]
        triples.append(("%s, p=%g" % (label, p), top_p_filter(logits.copy(), p), expected))
    return compare_all(triples, atol=0.0, rtol=0.0)


PROBS = np.array([0.15, 0.5, 0.05, 0.3])      # sorted: 0.5 (1), 0.3 (3), 0.15 (0), 0.05 (2)


def top_p_nucleus(solution):
    logits = np.log(PROBS) + 1.5
    return _top_p_cases(solution, [("probs %s" % PROBS.tolist(), logits, p, kept)
                                   for p, kept in ((0.4, [1]), (0.7, [1, 3]), (0.9, [1, 3, 0]),
                                                   (0.97, [0, 1, 2, 3]))])


def top_p_ties(solution):
    return _top_p_cases(solution, [
        ("logits [2, 1, 1, 0] (tokens 1 and 2 tied)", [2.0, 1.0, 1.0, 0.0], 0.6, [0, 1, 2]),
        ("logits [1, 3, 3, 0] (the argmax tied)", [1.0, 3.0, 3.0, 0.0], 1e-6, [1, 2])])


def top_p_one_keeps_everything(solution):
    return _top_p_cases(solution, [
        ("logits [0, -1, 2, 1]", [0.0, -1.0, 2.0, 1.0], 1.0, [0, 1, 2, 3]),
        ("logits [0, -1, -50, 2] (a token of probability 2e-22)", [0.0, -1.0, -50.0, 2.0], 1.0,
         [0, 1, 2, 3])])


def top_p_tiny_p_keeps_argmax(solution):
    logits = rng(0).standard_normal(10) * 2
    return _top_p_cases(solution, [("random logits", logits, 1e-9, [int(np.argmax(logits))])])


def top_p_matches_sampling(solution):
    """Against tinyllm.models.sampling.top_p_filter (no ties in random logits)."""
    logits = rng(1).standard_normal(12) * 1.5
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    cases = []
    for p in (0.2, 0.5, 0.8, 0.95):
        kept = np.flatnonzero(sampling.top_p_filter(probs[None, :], p)[0] > 0)
        cases.append(("random logits", logits, p, kept))
    return _top_p_cases(solution, cases)


# ----- chapter 10: distillation_kl --------------------------------------------------------------
def _student_teacher(seed, N=4, C=6):
    r = rng(seed)
    return r.standard_normal((N, C)) * 3, r.standard_normal((N, C)) * 3


def distillation_forward(solution):
    Fn = require(solution, "DistillationKL")
    s, t = _student_teacher(0)
    cases = [("L at T=%g" % T, Fn.apply(f64(s), f64(t), temperature=T),
              F.distillation_loss(f64(s), f64(t), temperature=T)) for T in (1.0, 2.0, 5.0)]
    return compare_all(cases)


def distillation_backward(solution):
    Fn = require(solution, "DistillationKL")
    s, t = _student_teacher(1)
    cases = []
    for T in (1.0, 3.0):
        cases += backward_cases(lambda x: Fn.apply(x, f64(t), temperature=T),
                                lambda x: F.distillation_loss(x, f64(t), temperature=T),
                                [s], ["dL/ds at T=%g" % T])
    return compare_all(cases)


def distillation_gradcheck(solution):
    Fn = require(solution, "DistillationKL")
    s, t = _student_teacher(2, N=3, C=4)
    return gradcheck(lambda x: Fn.apply(x, f64(t), temperature=2.0), [s], ["dL/ds"])


# ----- chapter 11: online_softmax ---------------------------------------------------------------
def _softmax_numpy(x):
    finite = x[np.isfinite(x)]
    e = np.exp(x - finite.max())
    return e / e.sum()


def _online_cases(solution, label, x, blocks):
    online_softmax = require(solution, "online_softmax")
    return [("y for %s, block=%d" % (label, block), online_softmax(x.copy(), block),
             _softmax_numpy(x)) for block in blocks]


def online_block_sizes(solution):
    x = rng(0).standard_normal(10) * 3
    cases = _online_cases(solution, "random x (T=10)", x, (1, 2, 3, 4, 7, 10, 16))
    cases += _online_cases(solution, "increasing x (the max grows in every block)",
                           np.arange(12.0), (4, 5))
    return compare_all(cases)


def online_large_values(solution):
    x = rng(1).standard_normal(9) * 1000 + 500
    return compare_all(_online_cases(solution, "x near 500 +- 1000", x, (2, 4)),
                       hint="exponentiate x - m, never x itself")


def online_masked_entries(solution):
    x = np.array([-np.inf, -np.inf, -np.inf, 1.0, 2.0, -np.inf, 0.5])
    return compare_all(_online_cases(solution, "x with -inf (a first block all -inf)", x,
                                     (1, 2, 3)),
                       hint="exp(-inf - (-inf)) is NaN: skip the rescaling while m is -inf")


# ----- chapter 12: bleu -------------------------------------------------------------------------
def _words(text):
    return text.lower().replace(".", "").split()


PAPINENI_REFERENCES = [
    _words("It is a guide to action that ensures that the military will forever heed Party "
           "commands."),
    _words("It is the guiding principle which guarantees the military forces always being under "
           "the command of the Party."),
    _words("It is the practical guide for the army always to heed the directions of the party.")]
PAPINENI_CANDIDATE = _words("It is a guide to action which ensures that the military always "
                            "obeys the commands of the party.")


def _bleu(solution, hypotheses, references, max_n=4):
    return float(require(solution, "corpus_bleu")(hypotheses, references, max_n=max_n))


def bleu_perfect_match(solution):
    sentences = [_words("the cat sat on the mat"), _words("a dog ran in the park today")]
    return compare(_bleu(solution, sentences, [[s] for s in sentences]), 1.0, atol=1e-12,
                   label="BLEU of a corpus identical to its references")


def bleu_no_4gram(solution):
    hyp = _words("on the mat the cat sat")       # unigrams to trigrams overlap, no 4-gram
    ref = _words("the cat sat on the mat")
    return compare(_bleu(solution, [hyp], [[ref]]), 0.0, atol=1e-12,
                   label="BLEU with no matching 4-gram")


def bleu_clipped_counts(solution):
    # Papineni et al.'s example: "the" 7 times; the references hold it at most twice: p1 = 2/7.
    hyp = ["the"] * 7
    refs = [_words("The cat is on the mat."), _words("There is a cat on the mat.")]
    return compare(_bleu(solution, [hyp], [refs], max_n=1), 2 / 7, atol=1e-12,
                   label="BLEU-1 of 'the the the the the the the' (clipped p1 = 2/7)")


def bleu_papineni_candidate(solution):
    # Papineni et al., candidate 1: p1 = 17/18, p2 = 10/17; c = 18 = the closest reference.
    got = _bleu(solution, [PAPINENI_CANDIDATE], [PAPINENI_REFERENCES], max_n=2)
    return compare(got, math.sqrt(17 / 18 * 10 / 17), atol=1e-12,
                   label="BLEU-2 of Papineni's candidate 1 (p1 = 17/18, p2 = 10/17)")


def bleu_brevity_penalty(solution):
    ref = _words("one two three four five six seven eight nine ten")
    cases = [("BLEU of the first 6 of 10 reference words (BP = exp(1 - 10/6))",
              _bleu(solution, [ref[:6]], [[ref]]), math.exp(1 - 10 / 6))]
    # references of 6 and 8 words, hypothesis of 7: r = 6 (the shorter on a tie), so BP = 1
    long_ref = ref[:8]
    cases.append(("BLEU of 7 words against references of 6 and 8 words (r = 6, BP = 1)",
                  _bleu(solution, [ref[:7]], [[_words("a b c d e f"), long_ref]]), 1.0))
    return compare_all(cases, atol=1e-12)


def bleu_pooled_counts(solution):
    # Counts are summed over the corpus before dividing: p1..p4 = 7/8, 4/6, 2/4, 1/2 here,
    # although the second sentence alone (no matching trigram) would score 0.
    hyps = [_words("a b c d"), _words("a b x d")]
    refs = [[_words("a b c d")], [_words("a b c d")]]
    expected = (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25
    return compare(_bleu(solution, hyps, refs), expected, atol=1e-12,
                   label="corpus BLEU of two sentences (counts pooled)")


def _random_corpus(seed, sentences=6, vocabulary="abcd"):
    """Hypotheses with one or two references each: references drawn from a 4-word
    vocabulary (so that 4-grams match), hypotheses a reference with some words changed."""
    r = rng(seed)
    hypotheses, references = [], []
    for _ in range(sentences):
        refs = [[str(w) for w in r.choice(list(vocabulary), size=r.integers(6, 12))]
                for _ in range(r.integers(1, 3))]
        hyp = [w if r.random() < 0.8 else str(r.choice(list(vocabulary))) for w in refs[0]]
        hypotheses.append(hyp[:len(hyp) - int(r.integers(0, 3))])
        references.append(refs)
    return hypotheses, references


def bleu_matches_training(solution):
    """Against tinyllm.training.evaluation.corpus_bleu (a 0-100 score; Papineni's, unsmoothed)."""
    cases = []
    for seed, max_n in ((0, 4), (1, 4), (2, 2)):
        hyps, refs = _random_corpus(seed)
        expected = evaluation.corpus_bleu(hyps, refs, max_order=max_n, smooth="none").score
        cases.append(("BLEU-%d of random corpus %d" % (max_n, seed),
                      _bleu(solution, hyps, refs, max_n=max_n), expected / 100))
    return compare_all(cases, atol=1e-12)


# ----- the table --------------------------------------------------------------------------------
EXERCISES = {e.name: e for e in [
    Exercise("softmax_cross_entropy", 2, "Softmax cross-entropy as one Function",
             "SoftmaxCrossEntropy",
             "Implement SoftmaxCrossEntropy, a tinyllm.autograd.Function whose forward takes "
             "logits z (N, C) and integer targets y (N,) and returns the mean cross-entropy "
             "-(1/N) sum_n log softmax(z_n)[y_n], computed stably (subtract each row's max), and "
             "whose backward returns dL/dz = (softmax(z) - onehot(y)) / N times the upstream "
             "gradient (and None for the targets).",
             (("forward_matches_F.cross_entropy", sce_forward),
              ("forward_stable_for_large_logits", sce_large_logits),
              ("backward_matches_F.cross_entropy", sce_backward),
              ("gradcheck_logits", sce_gradcheck))),
    Exercise("binary_cross_entropy", 2, "Binary cross-entropy and its gradient",
             "BinaryCrossEntropy",
             "Implement BinaryCrossEntropy, a Function whose forward takes probabilities yhat "
             "and targets y of the same shape and returns the mean of "
             "-[y log yhat + (1 - y) log(1 - yhat)] (for y = 1, yhat = 0.9 that is "
             "0.1053605), and whose backward returns dL/dyhat = (yhat - y) / (yhat (1 - yhat) N) "
             "times the upstream gradient.",
             (("documents_worked_example", bce_documents_example),
              ("forward_matches_F.binary_cross_entropy", bce_forward),
              ("backward_matches_F.binary_cross_entropy", bce_backward),
              ("gradcheck_probabilities", bce_gradcheck))),
    Exercise("adam_step", 3, "One step of Adam and AdamW",
             "adam_step",
             "Implement adam_step(param, grad, m, v, t, lr, betas, eps, weight_decay, "
             "decoupled) on NumPy arrays, returning (new_param, new_m, new_v): the running "
             "moments m and v, their bias correction by 1 - beta^t, and the update "
             "param - lr m_hat / (sqrt(v_hat) + eps), with weight decay either added to the "
             "gradient (Adam, decoupled=False) or applied to the parameter (AdamW). It is "
             "checked against tinyllm.optim.Adam and AdamW over 20 steps.",
             (("first_step_is_lr_times_sign", adam_first_step),
              ("matches_optim.AdamW_for_20_steps", adam_matches_adamw),
              ("matches_optim.Adam_with_L2_for_20_steps", adam_matches_adam),
              ("leaves_its_arguments_unchanged", adam_leaves_arguments))),
    Exercise("mlp_backward", 4, "A two-layer network's gradients by hand",
             "mlp_forward_backward",
             "Implement mlp_forward_backward(x, W1, b1, W2, b2, y) for the network "
             "yhat = tanh(x W1 + b1) W2 + b2 with loss L = mean((yhat - y)^2), in NumPy only: "
             "return the loss and a dict of dL/dW1, dL/db1, dL/dW2, dL/db2 derived by hand "
             "with the chain rule. They are checked against autograd and against central "
             "differences.",
             (("loss_matches_forward", mlp_loss),
              ("gradients_match_autograd", mlp_grads_autograd),
              ("gradients_match_central_differences", mlp_grads_numerical))),
    Exercise("embedding", 5, "Embedding lookup and its scatter-add gradient",
             "EmbeddingLookup",
             "Implement EmbeddingLookup, a Function whose forward takes a table W (V, D) and "
             "integer ids of any shape and returns W[ids] (..., D), and whose backward "
             "scatter-adds the upstream gradient into the rows that were looked up, so that an "
             "id that occurs several times receives the sum of its gradients.",
             (("forward_matches_F.embedding", embedding_forward),
              ("backward_adds_repeated_ids", embedding_repeated_ids),
              ("gradcheck_weight", embedding_gradcheck))),
    Exercise("softmax", 6, "Softmax and its Jacobian",
             "Softmax",
             "Implement Softmax, a Function computing softmax along the last axis (stably: "
             "subtract the max), whose backward applies the softmax Jacobian without building "
             "it: dx = y * (g - sum(g * y, last axis)).",
             (("forward_matches_F.softmax", softmax_forward),
              ("forward_stable_for_large_inputs", softmax_large_inputs),
              ("backward_matches_F.softmax", softmax_backward),
              ("gradcheck_x", softmax_gradcheck))),
    Exercise("attention", 6, "Scaled dot-product attention, backward by hand",
             "Attention",
             "Implement Attention, a Function whose forward computes single-head attention "
             "O = softmax(Q K^T / sqrt(d) + M) V for q (T, d) or (B, T, d), optionally causal, "
             "and whose backward is written by hand: dV = P^T dO, dP = dO V^T, "
             "dS = P * (dP - rowsum(dP * P)), dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d).",
             (("forward_matches_F.scaled_dot_product_attention", attention_forward),
              ("causal_forward_matches_F.scaled_dot_product_attention",
               attention_causal_forward),
              ("backward_matches_autograd", attention_backward),
              ("gradcheck_q_k_v", attention_gradcheck))),
    Exercise("lstm_cell", 7, "One LSTM step, forward and backward",
             "LSTMCellStep",
             "Implement LSTMCellStep, a Function whose forward takes x (B, I), h and c (B, H), "
             "W_ih (4H, I), W_hh (4H, H) and b (4H,) and returns (h', c') of an LSTM step with "
             "the gates i, f, g, o stacked in PyTorch's order, and whose backward, given "
             "dL/dh' and dL/dc', returns the gradients of all six inputs, derived by hand.",
             (("forward_matches_numpy", lstm_forward),
              ("forward_matches_nn.LSTMCell", lstm_matches_nn),
              ("backward_matches_autograd", lstm_backward),
              ("gradcheck_all_inputs", lstm_gradcheck))),
    Exercise("layer_norm", 8, "Layer normalisation, backward by hand",
             "LayerNorm",
             "Implement LayerNorm, a Function normalising x (..., D) over its last axis "
             "(biased variance, eps inside the square root) and applying gamma and beta (D,), "
             "with the hand-derived backward dx = (1/sigma)(g - mean(g) - xhat mean(g xhat)) "
             "for g = dy * gamma, and dgamma, dbeta summed over the other axes.",
             (("forward_matches_F.layer_norm", layer_norm_forward),
              ("backward_matches_autograd", layer_norm_backward),
              ("gradcheck_x_gamma_beta", layer_norm_gradcheck))),
    Exercise("top_p_filter", 9, "Nucleus (top-p) filtering",
             "top_p_filter",
             "Implement top_p_filter(logits, p) for logits (V,): keep the smallest set of the "
             "most probable tokens whose probabilities sum to at least p (plus any token tied "
             "with the last one kept; p = 1 keeps all), and set every other logit to -inf.",
             (("keeps_the_smallest_nucleus", top_p_nucleus),
              ("keeps_ties_with_the_last_token", top_p_ties),
              ("p_1_keeps_every_token", top_p_one_keeps_everything),
              ("tiny_p_keeps_the_argmax", top_p_tiny_p_keeps_argmax),
              ("matches_models.sampling.top_p_filter", top_p_matches_sampling))),
    Exercise("distillation_kl", 10, "Knowledge distillation with temperature",
             "DistillationKL",
             "Implement DistillationKL, a Function of student logits s and teacher logits t "
             "(N, C) and a temperature T returning T^2 / N sum_n KL(softmax(t_n/T) || "
             "softmax(s_n/T)), with the gradient dL/ds = T (softmax(s/T) - softmax(t/T)) / N "
             "(the teacher is a fixed target).",
             (("forward_matches_F.distillation_loss", distillation_forward),
              ("backward_matches_F.distillation_loss", distillation_backward),
              ("gradcheck_student_logits", distillation_gradcheck))),
    Exercise("online_softmax", 11, "Online softmax, the FlashAttention trick",
             "online_softmax",
             "Implement online_softmax(x, block) for x (T,): one sweep over blocks of x keeps "
             "a running max m and a running sum l of exp(x - m), rescaling l by exp(m_old - "
             "m_new) whenever the max grows; a second sweep writes exp(x - m) / l block by "
             "block. Never exponentiate the whole row at once.",
             (("matches_softmax_for_every_block_size", online_block_sizes),
              ("stable_for_large_values", online_large_values),
              ("handles_masked_entries", online_masked_entries))),
    Exercise("bleu", 12, "Corpus BLEU",
             "corpus_bleu",
             "Implement corpus_bleu(hypotheses, references, max_n=4): modified n-gram "
             "precisions with counts clipped by the references and pooled over the corpus, "
             "their geometric mean, and the brevity penalty exp(1 - r/c) when the hypotheses "
             "are not longer than the closest references.",
             (("perfect_match_scores_1", bleu_perfect_match),
              ("no_matching_4gram_scores_0", bleu_no_4gram),
              ("clips_repeated_words", bleu_clipped_counts),
              ("papineni_candidate_1", bleu_papineni_candidate),
              ("brevity_penalty", bleu_brevity_penalty),
              ("counts_are_pooled_over_the_corpus", bleu_pooled_counts),
              ("matches_training.evaluation.corpus_bleu", bleu_matches_training))),
]}


def exercises_of_chapter(chapter):
    """The exercises of one chapter, in the table's order."""
    return [e for e in EXERCISES.values() if e.chapter == chapter]
