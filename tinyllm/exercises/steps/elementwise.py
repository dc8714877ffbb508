"""Checks of step elementwise (chapters 1-2): arithmetic and activations, forward and backward.

Forward values are compared with NumPy (recorded); every backward is compared with central
differences of the student's own forward, for inputs whose shapes broadcast ((3, 1) with (4,)),
so a gradient that is not summed back to its input's shape fails.
"""

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="elementwise", chapter=1, module="elementwise",
    title="elementwise ops: arithmetic and activations with their derivatives",
    teaches="How each elementwise op multiplies the upstream gradient by its local derivative, "
            "how a broadcast input's gradient is summed back to its shape, and how to keep "
            "an op's dtype (float32 in, float32 out).",
    needs=("autograd",),
    minutes=90,
    hints=(
        "Every backward is the chain rule for one op: dL/dx = dL/dy * dy/dx, elementwise. "
        "Write dy/dx on paper first, for y = a * b, y = a / b, y = x ** p, y = ln x.",
        "Save in forward what backward needs (ctx.save_for_backward(a, b)). For exp, tanh and "
        "sigmoid the derivative is cheapest from the output y, so save y, not x.",
        "Broadcasting: if a has shape (3, 1) and b (4,), then a + b has shape (3, 4) and so "
        "does the upstream gradient. Return unbroadcast(grad_a, a.shape), so each gradient has "
        "its input's shape. A plain number has shape ().",
        "Sigmoid without overflow: for x >= 0 use 1 / (1 + e^-x); for x < 0 use e^x / (1 + e^x). "
        "With e = exp(-|x|) both are one np.where. Keep the dtype: a Python number next to a "
        "float32 array must not turn it into float64 (_as_operand does this).",
        "The derivatives: add g, g; sub g, -g; neg -g; mul g*b, g*a; div g/b, -g*a/b^2; "
        "pow g*p*x^(p-1); exp g*y; log g/x; tanh g*(1 - y^2); relu g*(x > 0); "
        "sigmoid g*y*(1 - y).",
    ))


# The upstream weights of the gradient checks: none is near 0, so that no gradient element is
# tiny and the relative errors printed stay near 1e-9.
_SEED = 20


def _rng(seed):
    return np.random.default_rng(seed)


def _away_from_zero(x):
    """Move entries at least 0.1 away from 0 (relu's kink; log and div need no zeros)."""
    return x + 0.1 * np.sign(x)


@STEP.check("forward_values_match_numpy")
def forward_values(c):
    """Each op's forward equals NumPy's, for Tensors, arrays and plain numbers broadcast."""
    r = _rng(0)
    a0, b0 = r.standard_normal((3, 1)), r.standard_normal(4)
    x0 = r.standard_normal((2, 3))
    p0 = np.abs(x0) + 0.5
    a, b, x, p = c.tensor(a0), c.tensor(b0), c.tensor(x0), c.tensor(p0)
    get = c.get
    cases = [
        ("add(a, b)", lambda: get("add")(a, b), lambda: a0 + b0),
        ("sub(a, b)", lambda: get("sub")(a, b), lambda: a0 - b0),
        ("mul(a, b)", lambda: get("mul")(a, b), lambda: a0 * b0),
        ("div(a, b)", lambda: get("div")(a, b), lambda: a0 / b0),
        ("neg(x)", lambda: get("neg")(x), lambda: -x0),
        ("add(2.0, x) with a number", lambda: get("add")(2.0, x), lambda: 2.0 + x0),
        ("sub(1.0, x) with a number", lambda: get("sub")(1.0, x), lambda: 1.0 - x0),
        ("div(x, an array) with an array", lambda: get("div")(x, b0[:3]), lambda: x0 / b0[:3]),
        ("pow(p, 3)", lambda: get("pow")(p, 3), lambda: p0 ** 3),
        ("pow(p, -0.5)", lambda: get("pow")(p, -0.5), lambda: p0 ** -0.5),
        ("exp(x)", lambda: get("exp")(x), lambda: np.exp(x0)),
        ("log(p)", lambda: get("log")(p), lambda: np.log(p0)),
        ("tanh(x)", lambda: get("tanh")(x), lambda: np.tanh(x0)),
        ("relu(x)", lambda: get("relu")(x), lambda: np.maximum(x0, 0.0)),
        ("sigmoid(x)", lambda: get("sigmoid")(x), lambda: 1 / (1 + np.exp(-x0))),
    ]
    for label, run, reference in cases:
        c.expect(label, run(), reference=reference)


@STEP.check("broadcast_binary_gradients")
def binary_gradients(c):
    """add, sub, mul, div of a (3, 1) and a (4,): each gradient summed back to its shape."""
    r = _rng(1)
    a0, b0 = r.standard_normal((3, 1)), _away_from_zero(r.standard_normal(4))
    for name in ("add", "sub", "mul", "div"):
        op = c.get(name)
        c.gradcheck(lambda a, b, op=op: op(a, b), [a0, b0],
                    ["d%s/da (3, 1)" % name, "d%s/db (4,)" % name], seed=_SEED)
    # a (2, 3, 4) with b (3, 1): an axis added in front and one stretched from 1
    x0, y0 = r.standard_normal((2, 3, 4)), _away_from_zero(r.standard_normal((3, 1)))
    c.gradcheck(lambda x, y: c.get("div")(c.get("mul")(x, y), c.get("sub")(y, x)),
                [x0, y0 + 3.0], ["d/dx (2, 3, 4)", "d/dy (3, 1)"], seed=_SEED)


@STEP.check("unary_gradients")
def unary_gradients(c):
    """neg, pow (p = 3, 0.5, -1), exp, log, tanh, relu and sigmoid against central differences."""
    r = _rng(2)
    x0 = _away_from_zero(r.standard_normal((3, 4)))
    p0 = np.abs(x0) + 0.2
    for name in ("neg", "exp", "tanh", "relu", "sigmoid"):
        c.gradcheck(c.get(name), [x0], ["d%s/dx" % name], seed=_SEED)
    c.gradcheck(c.get("log"), [p0], ["dlog/dx"], seed=_SEED)
    for exponent in (3, 0.5, -1):
        c.gradcheck(lambda x, e=exponent: c.get("pow")(x, e), [p0], ["dpow(x, %s)/dx" % exponent],
                    seed=_SEED)


@STEP.check("relu_gradient_is_zero_at_zero")
def relu_at_zero(c):
    """relu passes the gradient where x > 0 only (0 at x = 0, as in PyTorch)."""
    grads, weights = c.backward(c.get("relu"), [np.array([-2.0, -0.5, 0.0, 0.5, 3.0])])
    c.known("drelu/dx at [-2, -0.5, 0, 0.5, 3]", grads[0],
            weights[0] * np.array([0.0, 0.0, 0.0, 1.0, 1.0]))


@STEP.check("tensor_operators_compose")
def operators_compose(c):
    """The Tensor operators (+ - * / ** unary -) with numbers on either side, in one graph."""
    r = _rng(3)
    a0, b0 = r.standard_normal((2, 3)), r.standard_normal(3)

    def expression(a, b):
        y = (1.0 - a) * b / (b ** 2 + 1) + 2 * a - a / 4
        return (-y).exp() + (a * b).tanh() - y.sigmoid()

    a, b = c.tensor(a0), c.tensor(b0)
    y = (1.0 - a0) * b0 / (b0 ** 2 + 1) + 2 * a0 - a0 / 4
    c.expect("the value of the expression", expression(a, b),
             reference=lambda: np.exp(-y) + np.tanh(a0 * b0) - 1 / (1 + np.exp(-y)))
    c.gradcheck(expression, [a0, b0], ["dL/da", "dL/db"], seed=_SEED)


@STEP.check("sigmoid_is_stable_for_large_inputs")
def sigmoid_stable(c):
    """sigmoid of +-800 is 1 and 0 (no NaN, no overflow), its gradient there 0."""
    x0 = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    c.expect("sigmoid([-800, -30, 0, 30, 800])", c.get("sigmoid")(c.tensor(x0)),
             reference=lambda: np.exp(-np.logaddexp(0.0, -x0)), atol=1e-20)
    grads, weights = c.backward(c.get("sigmoid"), [x0])
    c.true(np.all(np.isfinite(c.array(grads[0]))), "the gradient of sigmoid at +-800 holds "
           "NaN or inf: %s" % (c.array(grads[0]),))
    c.known("dsigmoid/dx at 0", c.array(grads[0])[2], weights[0][2] * 0.25)


@STEP.check("shape_errors_name_the_op_and_shapes")
def shape_errors(c):
    """Shapes that do not broadcast: ValueError naming the op and both shapes."""
    x, y = c.tensor(np.zeros((2, 3))), c.tensor(np.zeros(4))
    for name in ("add", "sub", "mul", "div"):
        c.raises("%s of (2, 3) and (4,)" % name, lambda op=c.get(name): op(x, y),
                 (ValueError,), contains=(name, "(2, 3)", "(4,)"))


@STEP.check("float32_stays_float32")
def float32_dtype(c):
    """float32 inputs give float32 outputs and gradients, even beside a Python float."""
    Tensor = c.Tensor()
    x0 = _away_from_zero(_rng(4).standard_normal((2, 3))).astype(np.float32)
    x = Tensor(x0.copy(), requires_grad=True)
    get = c.get
    y = get("mul")(x, 0.5)
    c.shape("x * 0.5", y, (2, 3), dtype=np.float32)
    results = [
        ("0.5 - x", get("sub")(0.5, x)),
        ("x / 3.0", get("div")(x, 3.0)),
        ("x / np.sqrt(2.0)", get("div")(x, np.sqrt(2.0))),
        ("x + 1", get("add")(x, 1)),
        ("x ** 2", get("pow")(x, 2)),
        ("exp(x)", get("exp")(x)), ("log(x * x)", get("log")(get("mul")(x, x))),
        ("tanh(x)", get("tanh")(x)), ("relu(x)", get("relu")(x)),
        ("sigmoid(x)", get("sigmoid")(x)),
    ]
    for label, result in results:
        c.shape(label, result, (2, 3), dtype=np.float32)
    total = results[0][1]
    for _, result in results[1:]:
        total = get("add")(total, result)
    total.backward(np.ones((2, 3), dtype=np.float32))
    c.shape("x.grad", x.grad, (2, 3), dtype=np.float32)
