"""Checks of step losses (chapter 2): softmax, log-softmax, cross-entropy, BCE, MSE.

Forward values are compared with recorded values (cross-checked against NumPy written here
when recording), gradients with central differences of the student's own forward.
"""

import math

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="losses", chapter=2, module="losses",
    title="softmax, cross-entropy and the other losses, with hand-derived backward",
    teaches="How softmax is computed without overflow, why softmax followed by the negative "
            "log-likelihood has the one-line gradient (softmax(Z) - onehot(y)) / N, how padding "
            "targets are left out, and the binary cross-entropy of a probability.",
    needs=("autograd", "elementwise", "tensor_ops"),
    minutes=90,
    hints=(
        "Stability: softmax(x) = softmax(x - c) for any constant c. Which c makes every "
        "exponent <= 0? log_softmax: x - c - log(sum(exp(x - c))) never takes the log of 0.",
        "Softmax backward: write dy_i/dx_j = y_i (delta_ij - y_j), then multiply by the "
        "upstream gradient g and sum over i. The Jacobian collapses to y times (g minus one "
        "number per row).",
        "Cross-entropy: L = -(1/N) sum_n log softmax(Z)[n, y_n]. Differentiate "
        "-log softmax(z)_y with respect to z_j: it is softmax(z)_j minus 1 when j = y. Do not "
        "forget the 1/N of the mean, and the upstream gradient (a number) in front.",
        "ignore_index: keep a boolean mask of the rows whose target is not ignore_index; the "
        "mean divides by the number of kept rows, and the ignored rows get a gradient of 0. "
        "Keep the dtype: cast the loss and the gradient to logits.dtype.",
        "The formulas: softmax dL/dx = y * (g - sum(g * y, axis, keepdims=True)); "
        "log_softmax dL/dx = g - softmax(x) * sum(g, axis, keepdims=True); cross-entropy "
        "dL/dZ = g * (softmax(Z) - onehot(y)) / N' on kept rows; BCE dL/dp = g * (p - y) / "
        "(p (1 - p)) / n.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


def _softmax_numpy(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _cross_entropy_numpy(z, y, ignore_index=-100):
    """-(1/N') sum over kept rows of log softmax(z)[n, y_n], by a plain loop."""
    total, count = 0.0, 0
    for row, target in zip(z, y):
        if target == ignore_index:
            continue
        m = row.max()
        total -= row[target] - m - math.log(np.exp(row - m).sum())
        count += 1
    return total / count


def _logits_and_targets(seed, scale=1.0, n=6, classes=5):
    r = _rng(seed)
    return r.standard_normal((n, classes)) * scale, r.integers(0, classes, size=n)


# ----- softmax and log-softmax ------------------------------------------------------------------
@STEP.check("softmax_forward")
def softmax_forward(c):
    """softmax along the last axis and along axis 0, for 1-D and 3-D inputs."""
    softmax = c.get("softmax")
    for shape, axis in (((5,), -1), ((2, 3, 5), -1), ((4, 3), 0)):
        x = _rng(0).standard_normal(shape) * 2
        c.expect("softmax of shape %s along axis %d" % (shape, axis),
                 softmax(c.tensor(x), axis=axis),
                 reference=lambda x=x, axis=axis: _softmax_numpy(x, axis))


@STEP.check("softmax_and_log_softmax_are_stable_near_1000")
def softmax_large(c):
    """Inputs near +-1000: no overflow, no log of 0 (subtract the max first)."""
    softmax, log_softmax = c.get("softmax"), c.get("log_softmax")
    x = _rng(1).standard_normal((3, 4)) * 1000
    x[0] = [1000.0, 1000.0, -1000.0, 999.0]
    c.expect("softmax for x near +-1000", softmax(c.tensor(x)),
             reference=lambda: _softmax_numpy(x),
             hint="exp(1000) overflows: subtract each row's max first")
    c.known("log_softmax of [1000, 1000, -1000, 999]", c.array(log_softmax(c.tensor(x)))[0],
            np.array([0.0, 0.0, -2000.0, -1.0]) - math.log(2 + math.exp(-1)),
            hint="x - max - log(sum(exp(x - max))) is finite")


@STEP.check("softmax_backward")
def softmax_backward(c):
    """Softmax's backward against central differences, along the last axis and axis 0."""
    softmax = c.get("softmax")
    c.gradcheck(lambda x: softmax(x), [_rng(2).standard_normal((3, 4))], ["dx (axis -1)"])
    c.gradcheck(lambda x: softmax(x, axis=0), [_rng(3).standard_normal((3, 2, 2))],
                ["dx (axis 0)"])


@STEP.check("log_softmax_forward")
def log_softmax_forward(c):
    """log_softmax equals the log of softmax, along the last axis and axis 0."""
    log_softmax = c.get("log_softmax")
    for shape, axis in (((2, 5), -1), ((4, 3), 0)):
        x = _rng(4).standard_normal(shape) * 3
        c.expect("log_softmax of shape %s along axis %d" % (shape, axis),
                 log_softmax(c.tensor(x), axis=axis),
                 reference=lambda x=x, axis=axis: np.log(_softmax_numpy(x, axis)))


@STEP.check("log_softmax_backward")
def log_softmax_backward(c):
    """log_softmax's backward against central differences, along the last axis and axis 0."""
    log_softmax = c.get("log_softmax")
    c.gradcheck(lambda x: log_softmax(x), [_rng(5).standard_normal((3, 4))],
                ["dx (axis -1)"])
    c.gradcheck(lambda x: log_softmax(x, axis=0), [_rng(6).standard_normal((3, 2))],
                ["dx (axis 0)"])


# ----- cross-entropy ----------------------------------------------------------------------------
@STEP.check("cross_entropy_forward")
def cross_entropy_forward(c):
    """The mean cross-entropy for logits of scale 1 and 4, targets as an array or a Tensor."""
    cross_entropy = c.get("cross_entropy")
    for seed, scale in ((0, 1.0), (1, 4.0)):
        z, y = _logits_and_targets(seed, scale)
        c.expect("the loss for logits of scale %g" % scale, cross_entropy(c.tensor(z), y),
                 reference=lambda z=z, y=y: _cross_entropy_numpy(z, y))
    z, y = _logits_and_targets(2)
    c.expect("the loss with targets given as an integer Tensor",
             cross_entropy(c.tensor(z), c.tensor(y)),
             reference=lambda: _cross_entropy_numpy(z, y))
    c.known("the loss of uniform logits (log C = log 5)",
            cross_entropy(c.tensor(np.zeros((3, 5))), np.array([0, 4, 2])), math.log(5))


@STEP.check("cross_entropy_is_stable_near_1000")
def cross_entropy_large(c):
    """Logits near +-1000: a finite loss, equal to the exact one (subtract the max first)."""
    cross_entropy = c.get("cross_entropy")
    z, y = _logits_and_targets(3, scale=1000.0)
    c.expect("the loss for logits near +-1000", cross_entropy(c.tensor(z), y),
             reference=lambda: _cross_entropy_numpy(z, y),
             hint="exp(1000) overflows: subtract each row's max first")
    z = np.array([[1000.0, -1000.0, 999.0]])
    c.known("the loss of [1000, -1000, 999] with target 2", cross_entropy(c.tensor(z), [2]),
            1 + math.log(1 + math.exp(-1)))


@STEP.check("cross_entropy_backward")
def cross_entropy_backward(c):
    """dL/dZ against central differences and against the recorded gradient."""
    cross_entropy = c.get("cross_entropy")
    z, y = _logits_and_targets(4)
    c.gradcheck(lambda t: cross_entropy(t, y), [z], ["dL/dZ"])
    grads, (g,) = c.backward(lambda t: cross_entropy(t, y), [z])
    onehot = np.eye(z.shape[1])[y]
    c.expect("dL/dZ for the upstream gradient %.4f" % g, grads[0],
             reference=lambda: g * (_softmax_numpy(z) - onehot) / len(y))


@STEP.check("cross_entropy_ignore_index")
def cross_entropy_ignore(c):
    """Targets equal to ignore_index add nothing to the loss nor to its count; their rows
    get a zero gradient."""
    cross_entropy = c.get("cross_entropy")
    z, y = _logits_and_targets(5, n=7)
    y[[1, 4, 5]] = -100
    c.expect("the loss with 3 of 7 targets ignored", cross_entropy(c.tensor(z), y),
             reference=lambda: _cross_entropy_numpy(z, y))
    c.gradcheck(lambda t: cross_entropy(t, y), [z], ["dL/dZ with ignored targets"])
    y2 = np.where(y == -100, 7, y)
    c.expect("the loss with ignore_index=7", cross_entropy(c.tensor(z), y2, ignore_index=7),
             reference=lambda: _cross_entropy_numpy(z, y2, ignore_index=7))
    grads, _ = c.backward(lambda t: cross_entropy(t, y), [z])
    c.known("dL/dZ of the ignored rows", grads[0][[1, 4, 5]], np.zeros((3, 5)))


@STEP.check("cross_entropy_errors")
def cross_entropy_errors(c):
    """A target outside [0, C), or logits and targets of the wrong shapes: a ValueError
    naming them."""
    cross_entropy = c.get("cross_entropy")
    z = c.tensor(np.zeros((4, 5)))
    c.raises("target 7 with C = 5", lambda: cross_entropy(z, np.array([0, 7, 1, 2])),
             (ValueError,), contains=("7", "5"))
    c.raises("target -3 with C = 5", lambda: cross_entropy(z, np.array([0, 1, -3, 2])),
             (ValueError,), contains=("-3", "5"))
    c.raises("target 5 with C = 5 (one past the end)",
             lambda: cross_entropy(z, np.array([5, 1, 1, 2])), (ValueError,),
             contains=("5",))
    c.raises("logits (4, 5) with targets (3,)", lambda: cross_entropy(z, np.array([0, 1, 2])),
             (ValueError,), contains=("(4, 5)", "(3,)"))
    c.raises("logits (2, 2, 5) with targets (2,)",
             lambda: cross_entropy(c.tensor(np.zeros((2, 2, 5))), np.array([0, 1])),
             (ValueError,), contains=("(2, 2, 5)", "(2,)"))


@STEP.check("cross_entropy_keeps_float32")
def cross_entropy_float32(c):
    """float32 logits give a float32 loss and a float32 gradient."""
    cross_entropy, Tensor = c.get("cross_entropy"), c.Tensor()
    z, y = _logits_and_targets(6)
    logits = Tensor(z.astype(np.float32), requires_grad=True)
    loss = cross_entropy(logits, y)
    c.shape("the loss", loss, (), dtype=np.float32)
    c.known("the float32 loss", loss, _cross_entropy_numpy(z.astype(np.float32), y),
            atol=1e-5, rtol=1e-5)
    loss.backward()
    c.true(logits.grad is not None, "the float32 logits got no gradient")
    c.shape("dL/dZ", logits.grad, z.shape, dtype=np.float32)


# ----- binary cross-entropy and MSE -------------------------------------------------------------
@STEP.check("binary_cross_entropy_worked_examples")
def bce_examples(c):
    """The chapter's worked examples: y = 1, p = 0.9 and y = 0, p = 0.1 both give 0.1053605."""
    bce = c.get("binary_cross_entropy")
    for y, p, value in ((1.0, 0.9, -math.log(0.9)), (0.0, 0.1, -math.log(0.9)),
                        (0.0, 0.9, -math.log(0.1)), (0.0, 0.6, -math.log(0.4))):
        c.known("the loss for y=%g, p=%g (%.7f)" % (y, p, value),
                bce(c.tensor([p]), c.tensor([y])), value)
    c.known("the mean loss of p=(0.9, 0.2), y=(1, 1)",
            bce(c.tensor([0.9, 0.2]), c.tensor([1.0, 1.0])),
            -(math.log(0.9) + math.log(0.2)) / 2)


@STEP.check("binary_cross_entropy_forward_and_backward")
def bce_forward_backward(c):
    """The mean BCE for 0/1 and soft targets, and dL/dp against central differences."""
    bce = c.get("binary_cross_entropy")
    for seed, soft in ((0, False), (1, True)):
        r = _rng(seed)
        p = r.uniform(0.05, 0.95, size=(3, 4))
        y = r.uniform(0, 1, size=(3, 4)) if soft else r.integers(0, 2, size=(3, 4)) * 1.0
        kind = "soft" if soft else "0/1"
        c.expect("the loss (%s targets)" % kind, bce(c.tensor(p), c.tensor(y)),
                 reference=lambda p=p, y=y: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        c.gradcheck(lambda t, y=y: bce(t, c.tensor(y)), [p], ["dL/dp (%s targets)" % kind])
    c.raises("probs (2, 3) with targets (3,)",
             lambda: bce(c.tensor(np.full((2, 3), 0.5)), c.tensor([1.0, 0.0, 1.0])),
             (ValueError,), contains=("(2, 3)", "(3,)"))


@STEP.check("mse_loss")
def mse(c):
    """The mean squared error by hand, its gradients with respect to both inputs, and the
    shape error."""
    mse_loss = c.get("mse_loss")
    c.known("mse_loss([1, 2, 3], [1, 0, 0])",
            mse_loss(c.tensor([1.0, 2.0, 3.0]), c.tensor([1.0, 0.0, 0.0])), 13 / 3)
    r = _rng(7)
    c.gradcheck(lambda a, b: mse_loss(a, b), [r.standard_normal((2, 3)),
                                              r.standard_normal((2, 3))],
                ["dL/dpred", "dL/dtarget"])
    c.raises("pred (2, 3) with target (3,)",
             lambda: mse_loss(c.tensor(np.zeros((2, 3))), c.tensor(np.zeros(3))),
             (ValueError,), contains=("(2, 3)", "(3,)"))
