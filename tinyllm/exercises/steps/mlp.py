"""Checks of step mlp (chapter 4): Linear, MLP, the training loop, and a backward by hand.

Linear and MLP are compared with NumPy written here (x W^T + b, layer by layer); fit's losses
with a NumPy training loop that does the same draws and the hand-derived gradients; a small
network is trained on two spirals, stopping as soon as its loss misses a milestone. The
hand-derived gradients of ``mlp_forward_backward`` are compared with central differences.
"""

import importlib
import math

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import NUMERICAL_ATOL, NUMERICAL_RTOL, TYPICAL_NUMERICAL_ERROR

STEP = Step(
    name="mlp", chapter=4, module="nn",
    title="layers and training: Linear, MLP, fit, and a backward by hand",
    teaches="How a layer owns its parameters and computes y = x W^T + b on any leading axes, "
            "how layers stack into a multi-layer perceptron, what one step of the training "
            "loop does (forward, loss, zero_grad, backward, step), and, by deriving a "
            "two-layer network's gradients by hand, what autograd computes for you.",
    needs=("autograd", "elementwise", "tensor_ops", "losses", "optim"),
    minutes=120,
    hints=(
        "Linear: store weight and bias as Tensors with requires_grad=True, as attributes; "
        "Module.parameters() finds them by itself. Draw the weight first, then the bias, from "
        "the same rng, each with rng.uniform(-bound, bound, size=...).",
        "Linear.forward: x has shape (..., in_features) and W (out_features, in_features), so "
        "the product is x @ W.T; the bias (out_features,) broadcasts over the leading axes. "
        "Test with in_features != out_features: x @ W only fails then.",
        "fit: the order inside one step is batch, forward, loss, optimizer.zero_grad(), "
        "loss.backward(), optimizer.step(). Without zero_grad every backward adds to the "
        "gradients of all the earlier steps.",
        "mlp_forward_backward: go backwards one line of the forward at a time. For a product "
        "C = A B, dA = dC B^T and dB = A^T dC; a bias added to every row gets the sum of the "
        "rows' gradients; tanh'(a) = 1 - tanh(a)^2 = 1 - h^2.",
        "The gradients: dyhat = 2 (yhat - y) / (N K); dW2 = h^T dyhat; db2 = dyhat summed over "
        "n; dh = dyhat W2^T; da = dh * (1 - h^2); dW1 = x^T da; db1 = da summed over n.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


def _optimizer(c, name):
    """The student's mytl.optim.<name> (nn does not import optim, so import it here)."""
    importlib.import_module("mytl.optim")
    return c.get(name, module="optim")


def _set(layer, c, weight, bias):
    """Put given weights in a student Linear (as Tensors that require grad, or as given)."""
    def as_tensor(value):
        if value is None or isinstance(value, c.Tensor()):
            return value
        return c.tensor(value, requires_grad=True)

    layer.weight, layer.bias = as_tensor(weight), as_tensor(bias)
    return layer


def _uniform_init(rng, sizes):
    """PyTorch's Linear initialisation in NumPy: W then b, U(-1/sqrt(in), 1/sqrt(in))."""
    params = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        bound = 1.0 / math.sqrt(n_in)
        weight = rng.uniform(-bound, bound, size=(n_out, n_in))
        params.append((weight, rng.uniform(-bound, bound, size=n_out)))
    return params


# ----- Linear ----------------------------------------------------------------------------------
@STEP.check("linear_init_is_uniform_like_pytorch")
def linear_init(c):
    """Linear draws W (out, in) then b (out,) from U(-1/sqrt(in), 1/sqrt(in)) with its rng."""
    Linear = c.get("Linear")
    layer = Linear(3, 2, rng=_rng(0))
    c.expect("Linear(3, 2, rng=default_rng(0)).weight", layer.weight,
             reference=lambda: _uniform_init(_rng(0), [3, 2])[0][0])
    c.expect("Linear(3, 2, rng=default_rng(0)).bias", layer.bias,
             reference=lambda: _uniform_init(_rng(0), [3, 2])[0][1])
    c.true(layer.weight.requires_grad and layer.bias.requires_grad,
           "weight and bias must be Tensors with requires_grad=True")
    big = Linear(400, 100, rng=_rng(1))
    w = c.array(big.weight)
    c.shape("Linear(400, 100).weight", w, (100, 400), dtype=np.float64)
    c.true(np.abs(w).max() <= 0.05 and np.abs(w).max() > 0.049,
           "the entries of Linear(400, 100).weight should fill [-1/sqrt(400), 1/sqrt(400)] = "
           "[-0.05, 0.05]; the largest |w| is %.4g" % np.abs(w).max())
    c.true(abs(w.std() - 0.05 / math.sqrt(3)) < 0.001,
           "a uniform U(-0.05, 0.05) has standard deviation 0.05 / sqrt(3) = 0.0289; "
           "Linear(400, 100).weight has %.4g" % w.std())
    no_bias = Linear(3, 2, bias=False, rng=_rng(0))
    c.true(no_bias.bias is None, "Linear(3, 2, bias=False).bias should be None")


@STEP.check("parameters_are_found_by_attribute")
def parameters_found(c):
    """named_parameters() lists weight then bias of each layer, in order, with dotted names."""
    Linear, MLP = c.get("Linear"), c.get("MLP")
    layer = Linear(3, 2, rng=_rng(0))
    c.equal("the names of Linear(3, 2)'s parameters",
            [name for name, _ in layer.named_parameters()], ["weight", "bias"])
    c.equal("the names of Linear(3, 2, bias=False)'s parameters",
            [name for name, _ in Linear(3, 2, bias=False, rng=_rng(0)).named_parameters()],
            ["weight"])
    model = MLP([4, 5, 3], rng=_rng(0))
    c.equal("the names of MLP([4, 5, 3])'s parameters",
            [name for name, _ in model.named_parameters()],
            ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
    c.equal("the shapes of MLP([4, 5, 3])'s parameters",
            [tuple(p.shape) for p in model.parameters()], [(5, 4), (5,), (3, 5), (3,)])
    c.true(all(p.requires_grad for p in model.parameters()),
           "every parameter must require grad")


@STEP.check("linear_forward_is_x_WT_plus_b")
def linear_forward(c):
    """y = x W^T + b for x (2, 5, 3) and a non-square W (4, 3); without bias y = x W^T."""
    Linear = c.get("Linear")
    r = _rng(2)
    x, w, b = r.standard_normal((2, 5, 3)), r.standard_normal((4, 3)), r.standard_normal(4)
    layer = _set(Linear(3, 4, rng=_rng(0)), c, w, b)
    y = layer(c.tensor(x))
    c.shape("Linear(3, 4)(x (2, 5, 3))", y, (2, 5, 4), dtype=np.float64)
    c.expect("Linear(3, 4)(x (2, 5, 3))", y, reference=lambda: x @ w.T + b)
    no_bias = _set(Linear(3, 4, bias=False, rng=_rng(0)), c, w, None)
    c.expect("Linear(3, 4, bias=False)(x)", no_bias(c.tensor(x[0])),
             reference=lambda: x[0] @ w.T)


@STEP.check("linear_gradients_match_central_differences")
def linear_gradients(c):
    """dL/dx, dL/dW and dL/db of a Linear(3, 4) against central differences."""
    Linear = c.get("Linear")
    r = _rng(3)

    def run(x, w, b):
        return _set(Linear(3, 4, rng=_rng(0)), c, w, b)(x)

    c.gradcheck(run, [r.standard_normal((2, 5, 3)), r.standard_normal((4, 3)),
                      r.standard_normal(4)], ["dL/dx", "dL/dW", "dL/db"])


# ----- MLP -------------------------------------------------------------------------------------
def _mlp_numpy(x, params, activation):
    act = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0)}[activation]
    for i, (w, b) in enumerate(params):
        x = x @ w.T + b
        if i < len(params) - 1:
            x = act(x)
    return x


@STEP.check("mlp_stacks_linears_with_activations_between")
def mlp_forward(c):
    """MLP([3, 5, 4, 2]): Linear, act, Linear, act, Linear (no activation on the logits)."""
    MLP = c.get("MLP")
    x = _rng(4).standard_normal((6, 3))
    for activation in ("tanh", "relu"):
        model = MLP([3, 5, 4, 2], activation=activation, rng=_rng(5))
        c.equal("len(MLP([3, 5, 4, 2]).layers)", len(model.layers), 3)
        c.expect("MLP([3, 5, 4, 2], %r)(x)" % activation, model(c.tensor(x)),
                 reference=lambda a=activation: _mlp_numpy(
                     x, _uniform_init(_rng(5), [3, 5, 4, 2]), a))
    c.raises("MLP([2, 2], activation='swish')", lambda: MLP([2, 2], activation="swish"),
             (ValueError,), contains=("swish",))


# ----- fit ---------------------------------------------------------------------------------------
def _fit_numpy(X, y, sizes, init_seed, lr, steps, batch_size, batch_seed):
    """fit with SGD in NumPy: same init and batches, gradients of a tanh MLP by hand."""
    params = [list(p) for p in _uniform_init(_rng(init_seed), sizes)]
    rng = _rng(batch_seed)
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(X), size=batch_size)
        hs = [X[idx]]
        for i, (w, b) in enumerate(params):
            z = hs[-1] @ w.T + b
            hs.append(np.tanh(z) if i < len(params) - 1 else z)
        z = hs[-1] - hs[-1].max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        losses.append(-np.mean(np.log(p[np.arange(batch_size), y[idx]])))
        g = p
        g[np.arange(batch_size), y[idx]] -= 1.0
        g /= batch_size
        for i in reversed(range(len(params))):
            w, b = params[i]
            grad_w, grad_b = g.T @ hs[i], g.sum(axis=0)
            if i > 0:
                g = (g @ w) * (1.0 - hs[i] ** 2)
            params[i] = [w - lr * grad_w, b - lr * grad_b]
    return np.array(losses)


@STEP.check("fit_returns_the_loss_of_every_step")
def fit_losses(c):
    """Six steps of fit with SGD(lr=0.5), batches of 5 of 12 points: the six losses."""
    MLP, fit, SGD = c.get("MLP"), c.get("fit"), _optimizer(c, "SGD")
    r = _rng(6)
    X, y = r.standard_normal((12, 2)), r.integers(0, 3, size=12)
    model = MLP([2, 4, 3], rng=_rng(7))
    losses = fit(model, X, y, SGD(model.parameters(), lr=0.5), steps=6, batch_size=5,
                 rng=_rng(8))
    c.true(isinstance(losses, list) and len(losses) == 6,
           "fit should return a list of the 6 losses, got %r" % (losses,))
    c.expect("the losses of fit", np.array([float(v) for v in losses]),
             reference=lambda: _fit_numpy(X, y, [2, 4, 3], 7, 0.5, 6, 5, 8))


def _two_spirals(n, rng):
    """Two interleaved spirals of 1.5 turns, n points, labels 0 and 1 alternating."""
    labels = np.arange(n) % 2
    radius = rng.uniform(0.1, 1.0, size=n)
    angle = 3 * np.pi * radius + np.pi * labels
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return points + 0.02 * rng.standard_normal((n, 2)), labels


@STEP.check("fit_trains_an_mlp_on_two_spirals")
def fit_spirals(c):
    """An MLP([2, 32, 32, 2], relu) with Adam(lr=0.03) separates two spirals: accuracy >= 98%;
    stops at the first milestone missed (mean loss of the last 20 steps)."""
    MLP, fit, Adam = c.get("MLP"), c.get("fit"), _optimizer(c, "Adam")
    X, y = _two_spirals(200, _rng(0))
    model = MLP([2, 32, 32, 2], activation="relu", rng=_rng(0))
    optimizer, batches = Adam(model.parameters(), lr=0.03), _rng(1)
    for steps_done, milestone in ((100, 0.6), (200, 0.25), (300, 0.1)):
        losses = fit(model, X, y, optimizer, steps=100, batch_size=64, rng=batches)
        recent = float(np.mean(losses[-20:]))
        c.true(np.isfinite(recent) and recent < milestone,
               "after %d steps the mean loss of the last 20 is %.4g; it should be below %g "
               "(a training loop that works gets about a third of that)"
               % (steps_done, recent, milestone))
    logits = c.array(model(c.tensor(X)))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
    c.true(accuracy >= 0.98, "the trained MLP classifies %.1f%% of the 200 points right; "
           "expected at least 98%%" % (100 * accuracy))
    c.note("accuracy %.1f%%, final loss %.3g" % (100 * accuracy, recent))


# ----- mlp_forward_backward: the gradients by hand ----------------------------------------------
PARAMETERS = ("W1", "b1", "W2", "b2")


def _mlp_data(seed, N=5, D=3, H=4, K=2):
    r = _rng(seed)
    return {"x": r.standard_normal((N, D)), "W1": r.standard_normal((D, H)) * 0.7,
            "b1": r.standard_normal(H) * 0.1, "W2": r.standard_normal((H, K)) * 0.7,
            "b2": r.standard_normal(K) * 0.1, "y": r.standard_normal((N, K))}


def _mse_numpy(x, W1, b1, W2, b2, y):
    return np.mean((np.tanh(x @ W1 + b1) @ W2 + b2 - y) ** 2)


def _central_differences(loss, data, name, eps=1e-6):
    grad = np.zeros_like(data[name])
    for index in np.ndindex(grad.shape):
        plus, minus = dict(data), dict(data)
        plus[name], minus[name] = data[name].copy(), data[name].copy()
        plus[name][index] += eps
        minus[name][index] -= eps
        grad[index] = (loss(**plus) - loss(**minus)) / (2 * eps)
    return grad


def _hand_grads(c, data):
    mlp_forward_backward = c.get("mlp_forward_backward")
    result = mlp_forward_backward(**{k: v.copy() for k, v in data.items()})
    c.true(isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict),
           "mlp_forward_backward must return (loss, grads) with grads a dict")
    loss, grads = result
    missing = [k for k in PARAMETERS if k not in grads]
    c.true(not missing, "grads has no key %s (expected keys W1, b1, W2, b2)"
           % ", ".join(repr(k) for k in missing))
    return loss, grads


@STEP.check("mlp_forward_backward_loss")
def hand_loss(c):
    """The loss of mlp_forward_backward is mean((tanh(x W1 + b1) W2 + b2 - y)^2)."""
    data = _mlp_data(0)
    loss, _ = _hand_grads(c, data)
    c.expect("the loss", np.asarray(loss, dtype=np.float64),
             reference=lambda: _mse_numpy(**data))


@STEP.check("mlp_forward_backward_gradients_match_central_differences")
def hand_gradients(c):
    """dW1, db1, dW2, db2 by hand against central differences of the loss (N=5, D=3, H=4,
    K=2)."""
    data = _mlp_data(1)
    _, grads = _hand_grads(c, data)
    for name in PARAMETERS:
        c.known("d" + name, grads[name], _central_differences(_mse_numpy, data, name),
                atol=NUMERICAL_ATOL, rtol=NUMERICAL_RTOL, typical=TYPICAL_NUMERICAL_ERROR)
