"""Checks of step tensor_ops (chapters 1-2): matmul, reductions, reshaping, indexing, stacking.

Forward values are compared with NumPy (recorded); every backward with central differences of
the student's own forward, with shapes chosen so that a gradient sent to the wrong element
fails: a 3-axis permutation (1, 2, 0), batch axes that broadcast, indices that repeat.
"""

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="tensor_ops", chapter=1, module="tensor_ops",
    title="tensor ops: matmul, sum and mean, reshape and transpose, indexing, masking, stack",
    teaches="How the gradient of an op that moves or combines elements goes back to the "
            "elements it came from: transposed matrices for matmul, a broadcast for sum and "
            "mean, the inverse permutation for transpose, a scatter-add for indexing.",
    needs=("autograd", "elementwise"),
    minutes=120,
    hints=(
        "For each op ask: which output elements did input element x[i] reach, and with which "
        "weight? Its gradient is the sum of the upstream gradients of those outputs times the "
        "weights. Check every gradient's shape: it is its input's shape.",
        "matmul: write y = a @ b for 2-D a (n, k), b (k, m) as y[i, j] = sum_l a[i, l] b[l, j] "
        "and differentiate by a[i, l]. With batch axes, swap only the last two axes "
        "(np.swapaxes(b, -1, -2)), not all of them (.T), and unbroadcast over the batch axes.",
        "sum: every x element reached one output with weight 1. With keepdims=False the summed "
        "axes are gone from grad: put them back (np.expand_dims) before broadcasting to x's "
        "shape. mean is sum divided by the number of elements averaged over.",
        "transpose(x, axes) moves x's axis axes[i] to place i; to go back, transpose grad with "
        "the permutation that undoes it (np.argsort(axes)). getitem: start from zeros of x's "
        "shape and add grad into the indexed places; x[[0, 0]] picks x[0] twice, and "
        "grad_x[index] += grad adds only once: use np.add.at.",
        "The backwards: matmul g @ b^T and a^T @ g (^T swaps the last two axes), each "
        "unbroadcast; sum broadcast_to(expand_dims(g, axes), x.shape); mean the same divided "
        "by n; reshape g.reshape(x.shape); transpose transpose(g, argsort(axes)); getitem "
        "np.add.at(zeros, index, g); masked_fill where(mask, 0, g); stack: the slices of g "
        "along axis, one per input.",
    ))


# The upstream weights of the gradient checks: none is near 0, so that no gradient element is
# tiny and the relative errors printed stay near 1e-9.
_SEED = 20


def _rng(seed):
    return np.random.default_rng(seed)


# ----- matmul ----------------------------------------------------------------------------------
@STEP.check("matmul_2d_values_and_gradients")
def matmul_2d(c):
    """(3, 4) @ (4, 2): the product, and both gradients against central differences."""
    matmul = c.get("matmul")
    r = _rng(0)
    a0, b0 = r.standard_normal((3, 4)), r.standard_normal((4, 2))
    c.expect("matmul((3, 4), (4, 2))", matmul(c.tensor(a0), c.tensor(b0)),
             reference=lambda: a0 @ b0)
    c.expect("the @ operator", c.tensor(a0) @ c.tensor(b0), reference=lambda: a0 @ b0)
    c.gradcheck(matmul, [a0, b0], ["dL/da (3, 4)", "dL/db (4, 2)"], seed=_SEED)
    x0 = r.standard_normal((1, 4))          # a row vector times a matrix
    c.gradcheck(matmul, [x0, b0], ["dL/dx (1, 4)", "dL/dW (4, 2)"], seed=_SEED)


@STEP.check("batched_matmul_broadcasts_batch_axes")
def matmul_batched(c):
    """(2, 1, 3, 4) @ (5, 4, 2) -> (2, 5, 3, 2); gradients summed back to each input's shape."""
    matmul = c.get("matmul")
    r = _rng(1)
    a0, b0 = r.standard_normal((2, 1, 3, 4)), r.standard_normal((5, 4, 2))
    c.expect("matmul((2, 1, 3, 4), (5, 4, 2))", matmul(c.tensor(a0), c.tensor(b0)),
             reference=lambda: np.array([[a0[i, 0] @ b0[j] for j in range(5)] for i in range(2)]))
    c.gradcheck(matmul, [a0, b0], ["dL/da (2, 1, 3, 4)", "dL/db (5, 4, 2)"], seed=_SEED)
    w0 = r.standard_normal((4, 3))          # (B, T, C) @ (C, C'), as in a Linear layer
    c.gradcheck(matmul, [a0[:, 0], w0], ["dL/dx (2, 3, 4)", "dL/dW (4, 3)"], seed=_SEED)


@STEP.check("matmul_shape_errors")
def matmul_errors(c):
    """Inner sizes that differ, or an input with fewer than 2 axes: ValueError naming
    matmul and both shapes."""
    matmul = c.get("matmul")
    c.raises("matmul of (4, 3) and (5, 2)",
             lambda: matmul(c.tensor(np.ones((4, 3))), c.tensor(np.ones((5, 2)))),
             (ValueError,), contains=("matmul", "(4, 3)", "(5, 2)"))
    c.raises("matmul of (2, 3, 4) and (2, 3, 4)",
             lambda: matmul(c.tensor(np.ones((2, 3, 4))), c.tensor(np.ones((2, 3, 4)))),
             (ValueError,), contains=("matmul", "(2, 3, 4)"))
    c.raises("matmul of (3,) and (3, 2)",
             lambda: matmul(c.tensor(np.ones(3)), c.tensor(np.ones((3, 2)))),
             (ValueError,), contains=("matmul", "(3,)", "(3, 2)"))


# ----- reductions ------------------------------------------------------------------------------
@STEP.check("sum_and_mean_over_any_axes")
def sum_and_mean(c):
    """sum and mean over None, 1, -1, (0, 2), with and without keepdims: values and
    gradients."""
    r = _rng(2)
    x0 = r.standard_normal((2, 3, 4))
    for name, numpy_op in (("sum", np.sum), ("mean", np.mean)):
        op = c.get(name)
        for axis in (None, 1, -1, (0, 2)):
            for keepdims in (False, True):
                label = "%s(x (2, 3, 4), axis=%s, keepdims=%s)" % (name, axis, keepdims)
                c.expect(label, op(c.tensor(x0), axis=axis, keepdims=keepdims),
                         reference=lambda f=numpy_op, a=axis, k=keepdims: f(x0, axis=a,
                                                                            keepdims=k))
                c.gradcheck(lambda x, op=op, a=axis, k=keepdims: op(x, axis=a, keepdims=k),
                            [x0], ["d " + label], seed=_SEED)
    c.expect("x.sum() of the Tensor method", c.tensor(x0).sum(), reference=lambda: x0.sum())
    c.expect("x.mean(axis=0) of the Tensor method", c.tensor(x0).mean(axis=0),
             reference=lambda: x0.mean(axis=0))


# ----- moving elements -------------------------------------------------------------------------
@STEP.check("reshape_and_transpose_gradients")
def reshape_transpose(c):
    """transpose by (1, 2, 0), by None (reversed) and reshape to (4, -1): values and
    gradients."""
    transpose, reshape = c.get("transpose"), c.get("reshape")
    x0 = _rng(3).standard_normal((2, 3, 4))
    c.expect("transpose(x (2, 3, 4), (1, 2, 0))", transpose(c.tensor(x0), (1, 2, 0)),
             reference=lambda: np.transpose(x0, (1, 2, 0)))
    c.expect("transpose(x, None)", transpose(c.tensor(x0)),
             reference=lambda: np.transpose(x0))
    c.expect("transpose(x, (-1, 0, 1))", transpose(c.tensor(x0), (-1, 0, 1)),
             reference=lambda: np.transpose(x0, (2, 0, 1)))
    c.expect("reshape(x, (4, -1))", reshape(c.tensor(x0), (4, -1)),
             reference=lambda: x0.reshape(4, 6))
    c.gradcheck(lambda x: transpose(x, (1, 2, 0)), [x0], ["d transpose(x, (1, 2, 0))"], seed=_SEED)
    c.gradcheck(lambda x: transpose(x, (2, 0, 1)), [x0], ["d transpose(x, (2, 0, 1))"], seed=_SEED)
    c.gradcheck(lambda x: transpose(x), [x0], ["d transpose(x)"], seed=_SEED)
    c.gradcheck(lambda x: transpose(reshape(x, (4, -1)), (1, 0)), [x0],
                ["d transpose(reshape(x, (4, -1)))"], seed=_SEED)
    c.gradcheck(lambda x: x.transpose(0, 2, 1).reshape(2, 12).T, [x0],
                ["d of the Tensor methods x.transpose(0, 2, 1).reshape(2, 12).T"], seed=_SEED)


@STEP.check("getitem_gradients_add_up_over_repeated_indices")
def getitem(c):
    """x[[0, 2, 0, 0]] sends three gradients to row 0, which add up; slices and ints too."""
    getitem = c.get("getitem")
    r = _rng(4)
    x0 = r.standard_normal((3, 4))
    rows = np.array([0, 2, 0, 0])
    c.expect("x[[0, 2, 0, 0]]", getitem(c.tensor(x0), rows), reference=lambda: x0[rows])
    grads, weights = c.backward(lambda x: getitem(x, rows), [x0])
    g = weights[0]
    c.known("d x[[0, 2, 0, 0]] / dx: row 0 gets the sum of 3 rows", grads[0],
            np.stack([g[0] + g[2] + g[3], np.zeros(4), g[1]]))
    pairs = (np.array([1, 1, 2, 1]), np.array([3, 3, 0, 3]))
    c.gradcheck(lambda x: getitem(x, pairs), [x0], ["d x[[1, 1, 2, 1], [3, 3, 0, 3]]"], seed=_SEED)
    c.gradcheck(lambda x: getitem(x, (slice(1, None), slice(None, None, 2))), [x0],
                ["d x[1:, ::2]"], seed=_SEED)
    c.gradcheck(lambda x: getitem(x, (1, slice(None, 3))), [x0], ["d x[1, :3]"], seed=_SEED)
    c.gradcheck(lambda x: x[:, np.array([3, 3, 1])], [x0], ["d x[:, [3, 3, 1]] (operator)"],
                seed=_SEED)


@STEP.check("masked_fill_blocks_the_gradient")
def masked_fill(c):
    """A causal mask (4, 4) on (2, 4, 4): value where True, x elsewhere; no gradient where
    True."""
    masked_fill = c.get("masked_fill")
    x0 = _rng(5).standard_normal((2, 4, 4))
    mask = ~np.tril(np.ones((4, 4), dtype=bool))        # True above the diagonal: the future
    c.expect("masked_fill(x, mask, -1e9)", masked_fill(c.tensor(x0), mask, -1e9),
             reference=lambda: np.where(mask, -1e9, x0))
    grads, weights = c.backward(lambda x: masked_fill(x, mask, -5.0), [x0])
    c.known("d masked_fill(x, mask, -5.0) / dx", grads[0], np.where(mask, 0.0, weights[0]))
    column = np.array([[True], [False], [False], [True]])  # a mask that broadcasts along rows
    c.gradcheck(lambda x: masked_fill(x, column, 2.0), [x0], ["d masked_fill(x, (4, 1) mask)"],
                seed=_SEED)


@STEP.check("stack_splits_the_gradient_along_its_axis")
def stack(c):
    """stack of three (3, 4) tensors along axis 0, 1 and -1: values and one gradient each."""
    stack = c.get("stack")
    r = _rng(6)
    arrays = [r.standard_normal((3, 4)) for _ in range(3)]
    for axis in (0, 1, -1):
        c.expect("stack(3 x (3, 4), axis=%d)" % axis,
                 stack([c.tensor(a) for a in arrays], axis=axis),
                 reference=lambda axis=axis: np.stack(arrays, axis=axis))
        c.gradcheck(lambda *xs, axis=axis: stack(list(xs), axis=axis), arrays,
                    ["d stack(axis=%d) / d input %d" % (axis, i) for i in range(3)], seed=_SEED)


@STEP.check("float32_stays_float32")
def float32_dtype(c):
    """float32 inputs give float32 outputs and float32 gradients."""
    Tensor = c.Tensor()
    r = _rng(7)
    x = Tensor(r.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(r.standard_normal((4, 2)).astype(np.float32), requires_grad=True)
    mask = np.array([True, False, False])
    steps = [
        ("matmul", lambda: c.get("matmul")(x, w)),
        ("sum", lambda: c.get("sum")(x, axis=1)),
        ("mean", lambda: c.get("mean")(x, axis=(0, 2), keepdims=True)),
        ("reshape", lambda: c.get("reshape")(x, (6, 4))),
        ("transpose", lambda: c.get("transpose")(x, (1, 2, 0))),
        ("getitem", lambda: c.get("getitem")(x, np.array([1, 1, 0]))),
        ("getitem with a slice", lambda: c.get("getitem")(x, (0, slice(1, 3)))),
        ("masked_fill", lambda: c.get("masked_fill")(x, mask[:, None], -np.inf)),
        ("stack", lambda: c.get("stack")([x, x], axis=1)),
    ]
    for name, run in steps:
        y = run()
        c.shape("%s of float32" % name, y, c.array(y).shape, dtype=np.float32)
        y.backward(np.ones(y.shape, dtype=np.float32))
        c.shape("x.grad after %s" % name, x.grad, (2, 3, 4), dtype=np.float32)
        x.grad = None
