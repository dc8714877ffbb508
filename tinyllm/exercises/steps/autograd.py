"""Checks of step autograd (chapter 1): unbroadcast, Function.apply, the backward walk.

The checks build small Functions of their own on the student's ``Function`` class (a square,
a product, a broadcasting add), so this step is graded before any op of the next steps exists.
"""

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="autograd", chapter=1, module="autograd",
    title="the autograd engine: Tensor, Function, backward",
    teaches="How reverse mode records a graph in Function.apply and walks it backwards in "
            "topological order, summing the gradients of a tensor used several times, and "
            "how a broadcast gradient is summed back to its input's shape.",
    minutes=120,
    hints=(
        "unbroadcast: compare the shapes from the right, as NumPy broadcasting does. Which "
        "axes did broadcasting add in front, and which did it stretch from size 1?",
        "apply: the output needs a grad_fn only if some input Tensor requires grad and grad "
        "mode is on. The Context must remember the Function class and the inputs, so that "
        "backward can find the parents of a tensor.",
        "topological_order: a tensor may be reached along several paths; visit it once. "
        "Recursion fails on a chain 10,000 ops long: keep an explicit stack of (tensor, "
        "children_done) pairs and append a tensor to the order when its children are done.",
        "backward: keep a dict from tensor (by id) to its summed gradient. Walk the reversed "
        "topological order; when you reach a tensor, its gradient is complete. Call "
        "ctx.function.backward(ctx, g), and add each returned gradient to its input's entry. "
        "Leaves add into .grad (which starts as None).",
        "unbroadcast, the whole recipe: sum over axis 0 while grad has more axes than shape; "
        "then, for every axis i where shape[i] == 1 and grad.shape[i] > 1, sum with "
        "keepdims=True.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


def _functions(c):
    """A few Functions written on the student's Function class (their backward is given)."""
    Function = c.get("Function")
    unbroadcast = c.get("unbroadcast")

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    class Mul(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return unbroadcast(grad * b, np.shape(a)), unbroadcast(grad * a, np.shape(b))

    class Add(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.shapes = (np.shape(a), np.shape(b))
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return unbroadcast(grad, ctx.shapes[0]), unbroadcast(grad, ctx.shapes[1])

    class Sum(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.shape = x.shape
            return np.array(x.sum())

        @staticmethod
        def backward(ctx, grad):
            return np.broadcast_to(grad, ctx.shape).copy()

    return Square, Mul, Add, Sum


# ----- unbroadcast ------------------------------------------------------------------------------
@STEP.check("unbroadcast_sums_added_and_stretched_axes")
def unbroadcast_shapes(c):
    """unbroadcast sums over the axes broadcasting added in front and stretched from 1."""
    unbroadcast = c.get("unbroadcast")
    grad = _rng(0).standard_normal((2, 3, 4))
    for shape in [(2, 3, 4), (4,), (3, 1), (1, 3, 4), (2, 1, 1), (1, 1, 1), ()]:
        c.expect("unbroadcast to %s" % (shape,), unbroadcast(grad, shape),
                 reference=lambda shape=shape: _sum_to(grad, shape))
        c.shape("unbroadcast to %s" % (shape,), unbroadcast(grad, shape), shape)


def _sum_to(grad, shape):
    """An independent computation: the gradient of sum(g * broadcast_to(x, g.shape)) wrt x."""
    x = np.zeros(shape)
    out = np.zeros(shape)
    for index in np.ndindex(grad.shape):
        source = tuple(0 if n == 1 else i for i, n in zip(index[len(index) - len(shape):], shape))
        out[source] += grad[index]
    return out + x


@STEP.check("unbroadcast_rejects_shapes_that_do_not_broadcast")
def unbroadcast_errors(c):
    """A gradient that cannot come from broadcasting ``shape`` is a ValueError naming both."""
    unbroadcast = c.get("unbroadcast")
    grad = np.zeros((2, 3))
    c.raises("unbroadcast of a (2, 3) gradient to (4,)", lambda: unbroadcast(grad, (4,)),
             (ValueError,), contains=("(2, 3)", "(4,)"))
    c.raises("unbroadcast of a (2, 3) gradient to (2, 3, 1)",
             lambda: unbroadcast(grad, (2, 3, 1)), (ValueError,), contains=("(2, 3)",))


# ----- apply ------------------------------------------------------------------------------------
@STEP.check("apply_records_the_graph_only_when_needed")
def apply_records(c):
    """apply sets grad_fn (with .function and .inputs) only for inputs that require grad."""
    Tensor, no_grad = c.get("Tensor"), c.get("no_grad")
    Square, Mul, _, _ = _functions(c)
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = Square.apply(x)
    c.true(isinstance(y, Tensor), "apply should return a Tensor, got %s" % type(y).__name__)
    c.known("Square.apply([1, 2])", y.data, np.array([1.0, 4.0]))
    c.true(y.requires_grad and y.grad_fn is not None,
           "the output of an op on a tensor that requires grad needs requires_grad=True and a "
           "grad_fn")
    c.true(y.grad_fn.function is Square and y.grad_fn.inputs[0] is x,
           "grad_fn.function should be the Function class and grad_fn.inputs its inputs")
    z = Square.apply(Tensor(np.array([3.0])))
    c.true(not z.requires_grad and z.grad_fn is None,
           "an op on tensors that do not require grad should record nothing")
    with no_grad():
        w = Mul.apply(x, 2.0)
    c.true(not w.requires_grad and w.grad_fn is None, "inside no_grad() apply records nothing")
    c.known("Mul.apply(x, 2.0) with a plain number", w.data, np.array([2.0, 4.0]))


# ----- backward ---------------------------------------------------------------------------------
@STEP.check("backward_of_a_chain")
def backward_chain(c):
    """L = sum((x^2)^2): dL/dx = 4 x^3, through three Functions."""
    Tensor = c.get("Tensor")
    Square, _, _, Sum = _functions(c)
    x0 = _rng(1).standard_normal(5)
    x = Tensor(x0.copy(), requires_grad=True)
    Sum.apply(Square.apply(Square.apply(x))).backward()
    c.true(x.grad is not None, "x.grad is None after backward()")
    c.known("dL/dx of sum(x^4)", x.grad, 4 * x0 ** 3)


@STEP.check("backward_sums_over_every_use")
def backward_diamond(c):
    """y = x * x through Mul (x used twice) and z = y * x: dz/dx = 3 x^2, by paths summed."""
    Tensor = c.get("Tensor")
    _, Mul, Add, Sum = _functions(c)
    x0 = _rng(2).standard_normal(4)
    x = Tensor(x0.copy(), requires_grad=True)
    y = Mul.apply(x, x)
    z = Add.apply(Mul.apply(y, x), y)           # x^3 + x^2: y is used twice too
    Sum.apply(z).backward()
    c.known("d/dx sum(x^3 + x^2)", x.grad, 3 * x0 ** 2 + 2 * x0)


@STEP.check("backward_with_an_upstream_gradient_and_broadcasting")
def backward_upstream(c):
    """(a * b + a) with a (3, 1), b (4,): backward(g) with a given g of shape (3, 4)."""
    Tensor = c.get("Tensor")
    _, Mul, Add, _ = _functions(c)
    r = _rng(3)
    a0, b0, g = r.standard_normal((3, 1)), r.standard_normal(4), r.standard_normal((3, 4))
    a, b = Tensor(a0.copy(), requires_grad=True), Tensor(b0.copy(), requires_grad=True)
    Add.apply(Mul.apply(a, b), a).backward(g)
    c.known("dL/da", a.grad, (g * b0).sum(axis=1, keepdims=True) + g.sum(axis=1, keepdims=True))
    c.known("dL/db", b.grad, (g * a0).sum(axis=0))


@STEP.check("leaf_gradients_accumulate_over_two_backward_calls")
def backward_accumulates(c):
    """Two backward passes add into .grad, as in PyTorch; an input without requires_grad
    gets none."""
    Tensor = c.get("Tensor")
    Square, Mul, _, Sum = _functions(c)
    x0 = np.array([1.0, -2.0, 0.5])
    x = Tensor(x0.copy(), requires_grad=True)
    k = Tensor(np.array([3.0, 3.0, 3.0]))
    Sum.apply(Square.apply(x)).backward()
    Sum.apply(Mul.apply(x, k)).backward()
    c.known("x.grad after backward of sum(x^2), then of sum(3 x)", x.grad, 2 * x0 + 3)
    c.true(k.grad is None, "a tensor that does not require grad got a .grad")


@STEP.check("backward_walks_a_graph_10000_ops_deep")
def backward_deep(c):
    """A chain of 10,000 Muls by 1.0001: no RecursionError, the gradient 1.0001^10000."""
    Tensor = c.get("Tensor")
    _, Mul, _, Sum = _functions(c)
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = x
    for _ in range(10000):
        y = Mul.apply(y, 1.0001)
    Sum.apply(y).backward()
    c.known("d/dx of x * 1.0001^10000", x.grad, np.array([1.0001 ** 10000]))


@STEP.check("each_backward_runs_once_per_node")
def backward_once(c):
    """In a graph where one node feeds 20 others, its backward runs once (gradients summed
    first), not once per path."""
    Tensor, Function = c.get("Tensor"), c.get("Function")
    calls = []

    class Counted(Function):
        @staticmethod
        def forward(ctx, x):
            return 3 * x

        @staticmethod
        def backward(ctx, grad):
            calls.append(1)
            return 3 * grad

    _, _, Add, Sum = _functions(c)
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = Counted.apply(x)
    total = h
    for _ in range(19):
        total = Add.apply(total, h)
    Sum.apply(total).backward()
    c.known("dL/dx", x.grad, np.array([60.0, 60.0]))
    c.true(len(calls) == 1, "the shared node's backward ran %d times; it should run once, "
           "after all its uses have added their gradients" % len(calls))


@STEP.check("backward_errors")
def backward_errors(c):
    """backward without a gradient on a non-scalar, or on a tensor without grad: RuntimeError."""
    Tensor = c.get("Tensor")
    Square, _, _, _ = _functions(c)
    y = Square.apply(Tensor(np.ones((2, 3)), requires_grad=True))
    c.raises("backward() of a (2, 3) tensor without grad=", lambda: y.backward(),
             (RuntimeError,), contains=("backward", "(2, 3)"))
    c.raises("backward() of a tensor that does not require grad",
             lambda: Tensor(np.ones(1)).backward(), (RuntimeError,), contains=("grad",))
