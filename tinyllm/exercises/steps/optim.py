"""Checks of step optim (chapter 3): SGD, Adam, AdamW, the warm-up cosine schedule, clipping.

The optimizers run 20 steps on the quadratic loss 0.5 p^T A p - b^T p (gradient A p - b) and
their whole trajectory is compared with the recorded one, which was cross-checked against
tinyllm's optimizers (PyTorch's semantics) when recording. First steps, the schedule and the
clipping are also checked against numbers derived by hand.

The parameters here are plain objects with ``.data`` and ``.grad``, so this step needs
nothing but NumPy.
"""

import math

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="optim", chapter=3, module="optim",
    title="optimizers: SGD with momentum, Adam, AdamW, the schedule and clipping",
    teaches="How momentum sums past gradients, why Adam's running moments need bias "
            "correction, how AdamW's decoupled weight decay differs from an L2 term, and how "
            "a warm-up cosine schedule and gradient clipping keep training stable.",
    needs=(),
    minutes=90,
    hints=(
        "Every update is in place: p.data -= ... changes the array the model holds; "
        "p.data = p.data - ... makes a new array the model never sees. Keep each parameter's "
        "buffers (momentum, m, v, its step count t) in its own state dict; skip a parameter "
        "whose grad is None before touching its state.",
        "SGD: at a parameter's first step there is no buffer yet: the buffer is the gradient "
        "itself (not (1 - momentum) g, not 0). Afterwards buf = momentum * buf + g.",
        "Adam: m and v start at 0, so after one step m = (1 - b1) g is far too small. The "
        "bias correction divides by 1 - b1^t; with it the first step is lr * g / (|g| + eps), "
        "about lr * sign(g). Read self.lr at every step: a schedule changes it.",
        "AdamW: Adam adds weight_decay * p to the gradient before m and v; AdamW leaves the "
        "gradient alone and shrinks p itself by lr * weight_decay * p first.",
        "Schedule and clipping: lr = max_lr * (step + 1) / (w + 1) in the warm-up, the cosine "
        "of (step - w) / (T - w) after it, min_lr after T. clip_grad_norm_: one norm over "
        "all gradients together, sqrt(sum of every g^2); multiply by max_norm / (total + "
        "1e-6) only when that factor is < 1; return the norm before clipping.",
    ))


class _Param:
    """A parameter as an optimizer sees it: an array ``data`` and a gradient ``grad``."""

    def __init__(self, data):
        self.data = np.array(data, dtype=np.float64)
        self.grad = None


def _quadratic(seed, n=4):
    """The gradient g(p) = A p - b of 0.5 p^T A p - b^T p (A positive definite), a start."""
    r = np.random.default_rng(seed)
    M = r.standard_normal((n, n))
    A, b = M @ M.T + n * np.eye(n), r.standard_normal(n)
    return (lambda p: A @ p - b), r.standard_normal(n)


def _trajectory(make_optimizer, seed, steps=20):
    """The parameter after each of ``steps`` steps of the student's optimizer, (steps, n)."""
    gradient, start = _quadratic(seed)
    p = _Param(start)
    optimizer = make_optimizer([p])
    path = []
    for _ in range(steps):
        p.grad = gradient(p.data.copy())
        optimizer.step()
        path.append(np.array(p.data, dtype=np.float64))
    return np.array(path)


def _tinyllm_trajectory(name, options, seed, steps=20):
    """The same trajectory with tinyllm's optimizer (PyTorch's update rules)."""
    import tinyllm
    from tinyllm import optim
    gradient, start = _quadratic(seed)
    p = tinyllm.Tensor(start.copy(), requires_grad=True, dtype=np.float64)
    optimizer = getattr(optim, name)([p], **options)
    path = []
    for _ in range(steps):
        p.grad = gradient(p.data.copy())
        optimizer.step()
        path.append(p.data.copy())
    return np.array(path)


# ----- SGD --------------------------------------------------------------------------------------
@STEP.check("sgd_first_steps_by_hand")
def sgd_by_hand(c):
    """Plain SGD is p - lr g; with momentum the second step is p - lr (momentum g1 + g2)."""
    SGD = c.get("SGD")
    p = _Param([1.0, -2.0])
    optimizer = SGD([p], lr=0.1)
    p.grad = np.array([0.5, 1.0])
    optimizer.step()
    c.known("plain SGD, one step", p.data, [0.95, -2.1])
    p = _Param([1.0, -2.0])
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([0.5, 1.0])
    optimizer.step()
    c.known("momentum 0.9, step 1 (the buffer starts at g1)", p.data, [0.95, -2.1])
    p.grad = np.array([1.0, -1.0])
    optimizer.step()
    c.known("momentum 0.9, step 2: p1 - 0.1 (0.9 g1 + g2)", p.data,
            [0.95 - 0.1 * (0.45 + 1.0), -2.1 - 0.1 * (0.9 - 1.0)])
    p = _Param([1.0, -2.0])
    optimizer = SGD([p], lr=0.1, weight_decay=0.5)
    p.grad = np.array([0.5, 1.0])
    optimizer.step()
    c.known("weight_decay 0.5: p - 0.1 (g + 0.5 p)", p.data, [0.9, -2.0])


@STEP.check("sgd_momentum_trajectory")
def sgd_trajectory(c):
    """20 steps of SGD (momentum 0.9, weight_decay 0.01) on a quadratic, as PyTorch's."""
    SGD = c.get("SGD")
    options = dict(lr=0.02, momentum=0.9, weight_decay=0.01)
    c.expect("the parameter after each step (step - 1, element)",
             _trajectory(lambda params: SGD(params, **options), seed=1),
             reference=lambda: _tinyllm_trajectory("SGD", options, seed=1))


# ----- Adam and AdamW ---------------------------------------------------------------------------
@STEP.check("adam_first_step_is_lr_times_sign_of_g")
def adam_first_step(c):
    """With bias correction Adam's first step is lr g / (|g| + eps), about lr sign(g); AdamW
    shrinks p by lr * weight_decay first."""
    Adam, AdamW = c.get("Adam"), c.get("AdamW")
    r = np.random.default_rng(0)
    start, g = r.standard_normal(5), r.standard_normal(5)
    lr, eps = 0.1, 1e-8
    p = _Param(start)
    optimizer = Adam([p], lr=lr, eps=eps)
    p.grad = g.copy()
    optimizer.step()
    c.known("Adam, step 1", p.data, start - lr * g / (np.abs(g) + eps))
    p = _Param(start)
    optimizer = AdamW([p], lr=lr, eps=eps, weight_decay=0.5)
    p.grad = g.copy()
    optimizer.step()
    c.known("AdamW (weight_decay 0.5), step 1", p.data,
            start * (1 - lr * 0.5) - lr * g / (np.abs(g) + eps))


@STEP.check("adam_trajectory_with_l2_weight_decay")
def adam_trajectory(c):
    """20 steps of Adam (betas (0.9, 0.99), weight_decay 0.1 added to g), as PyTorch's."""
    Adam = c.get("Adam")
    options = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    c.expect("the parameter after each step (step - 1, element)",
             _trajectory(lambda params: Adam(params, **options), seed=2),
             reference=lambda: _tinyllm_trajectory("Adam", options, seed=2))


@STEP.check("adamw_trajectory_with_decoupled_weight_decay")
def adamw_trajectory(c):
    """20 steps of AdamW (betas (0.9, 0.99), decoupled weight_decay 0.1), as PyTorch's."""
    AdamW = c.get("AdamW")
    options = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    c.expect("the parameter after each step (step - 1, element)",
             _trajectory(lambda params: AdamW(params, **options), seed=3),
             reference=lambda: _tinyllm_trajectory("AdamW", options, seed=3))


# ----- what every optimizer shares --------------------------------------------------------------
def _optimizers(c):
    SGD, Adam, AdamW = c.get("SGD"), c.get("Adam"), c.get("AdamW")
    return (("SGD", lambda ps: SGD(ps, lr=0.1, momentum=0.9)),
            ("Adam", lambda ps: Adam(ps, lr=0.1)),
            ("AdamW", lambda ps: AdamW(ps, lr=0.1)))


@STEP.check("step_updates_the_parameter_arrays_in_place")
def in_place(c):
    """step() changes p.data in place: the array a model holds (float32 too) sees the update."""
    for name, make in _optimizers(c):
        for dtype in (np.float64, np.float32):
            p = _Param([1.0, 2.0, 3.0])
            p.data = p.data.astype(dtype)
            held = p.data                       # what a model's layer keeps
            optimizer = make([p])
            for _ in range(2):
                p.grad = np.array([0.5, -0.5, 1.0], dtype=dtype)
                optimizer.step()
            c.true(p.data is held, "%s.step() replaced p.data by a new array (p.data = ...); "
                   "update it in place (p.data -= ...) so the model sees the change" % name)
            c.true(held.dtype == dtype, "%s.step() changed the dtype of a %s parameter"
                   % (name, np.dtype(dtype).name))
            c.true(not np.array_equal(held, [1.0, 2.0, 3.0]),
                   "%s.step() left the parameter unchanged" % name)


@STEP.check("parameters_without_grad_are_skipped")
def skipped(c):
    """A parameter whose grad is None is not changed, and its step count does not advance."""
    for name, make in _optimizers(c):
        a, b = _Param([1.0, -1.0]), _Param([2.0, 3.0])
        optimizer = make([a, b])
        for _ in range(3):
            a.grad, b.grad = np.array([0.5, 0.5]), None
            optimizer.step()
        c.known("%s: the parameter without grad after 3 steps" % name, b.data, [2.0, 3.0])
        c.true(not np.array_equal(a.data, [1.0, -1.0]),
               "%s: the parameter with a grad was not updated" % name)
        if name == "Adam":                    # b's first step: t = 1 for b, not 4
            b.grad = np.array([0.2, -4.0])
            a.grad = None
            optimizer.step()
            c.known("Adam: the first step of a parameter skipped 3 times (its t is 1)",
                    b.data, [2.0 - 0.1 * 0.2 / (0.2 + 1e-8), 3.0 + 0.1 * 4.0 / (4.0 + 1e-8)])


@STEP.check("zero_grad_clears_the_gradients")
def zero_grad(c):
    """zero_grad() sets every parameter's grad to None (PyTorch's default)."""
    for name, make in _optimizers(c):
        params = [_Param([1.0]), _Param([2.0, 3.0])]
        optimizer = make(params)
        for p in params:
            p.grad = np.ones_like(p.data)
        optimizer.zero_grad()
        c.true(all(p.grad is None for p in params),
               "%s.zero_grad() left grads %s; set them to None"
               % (name, [None if p.grad is None else p.grad.tolist() for p in params]))


@STEP.check("lr_is_read_at_every_step")
def lr_attribute(c):
    """Setting optimizer.lr between steps (a schedule) changes the next step."""
    for name, make in _optimizers(c):
        p = _Param([1.0, -1.0])
        optimizer = make([p])
        p.grad = np.array([0.5, 0.25])
        optimizer.step()
        after_one = p.data.copy()
        optimizer.lr = 0.0
        p.grad = np.array([0.5, 0.25])
        optimizer.step()
        c.known("%s: the parameter after a step with lr set to 0" % name, p.data, after_one)
    SGD = c.get("SGD")
    p = _Param([1.0])
    optimizer = SGD([p], lr=0.1)
    p.grad = np.array([1.0])
    optimizer.step()
    optimizer.lr = 0.01
    optimizer.step()
    c.known("SGD: lr 0.1, then 0.01", p.data, [1.0 - 0.1 - 0.01])


# ----- the schedule -----------------------------------------------------------------------------
@STEP.check("warmup_cosine_lr_at_hand_computed_steps")
def schedule(c):
    """w = 10, T = 110, max_lr 1, min_lr 0.1: warm-up (s + 1) / 11, cosine, then min_lr."""
    lr = c.get("warmup_cosine_lr")
    points = {0: 1 / 11, 4: 5 / 11, 9: 10 / 11, 10: 1.0,
              35: 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 60: 0.55,
              85: 0.1 + 0.9 * (1 + math.cos(3 * math.pi / 4)) / 2, 110: 0.1, 111: 0.1,
              300: 0.1}
    for step, value in points.items():
        c.known("lr at step %d" % step, lr(step, 10, 110, 1.0, 0.1), value)
    c.known("lr at step 0 without warm-up", lr(0, 0, 50, 3e-4, 3e-5), 3e-4)
    c.known("lr at step 25 of 50 without warm-up", lr(25, 0, 50, 3e-4, 3e-5), 1.65e-4)

    def curve():
        from tinyllm.optim.lr_scheduler import warmup_cosine_lr
        return [warmup_cosine_lr(s, 6e-4, 20, 200, 6e-5) for s in range(0, 230, 3)]

    c.expect("lr at steps 0, 3, ..., 228 (w = 20, T = 200)",
             [lr(s, 20, 200, 6e-4, 6e-5) for s in range(0, 230, 3)], reference=curve)


@STEP.check("warmup_cosine_lr_errors")
def schedule_errors(c):
    """warmup_steps must satisfy 0 <= warmup_steps < max_steps: else a ValueError naming both."""
    lr = c.get("warmup_cosine_lr")
    c.raises("warmup_steps=10, max_steps=5", lambda: lr(0, 10, 5, 1.0, 0.1), (ValueError,),
             contains=("10", "5"))
    c.raises("warmup_steps=7, max_steps=7", lambda: lr(7, 7, 7, 1.0, 0.1), (ValueError,),
             contains=("7",))


# ----- clipping ---------------------------------------------------------------------------------
@STEP.check("clip_grad_norm_scales_a_large_gradient")
def clip_large(c):
    """Gradients (3, 4) and (12,) have total norm 13: clipped to 6.5 they are halved; a
    parameter without grad is skipped."""
    clip_grad_norm_ = c.get("clip_grad_norm_")
    a, b, none = _Param([0.0, 0.0]), _Param([0.0]), _Param([1.0])
    a.grad, b.grad = np.array([3.0, 4.0]), np.array([12.0])
    total = clip_grad_norm_([a, b, none], 6.5)
    c.known("the returned total norm (before clipping)", float(total), 13.0)
    scale = 6.5 / (13.0 + 1e-6)
    c.known("the first gradient after clipping", a.grad, [3.0 * scale, 4.0 * scale])
    c.known("the second gradient after clipping", b.grad, [12.0 * scale])
    c.true(none.grad is None, "a parameter whose grad was None got a grad")
    r = np.random.default_rng(4)
    params = [_Param(np.zeros(s)) for s in ((3, 4), (4,), (2, 2, 2))]
    for p in params:
        p.grad = r.standard_normal(p.data.shape) * 5
    originals = [p.grad.copy() for p in params]
    total = clip_grad_norm_(params, 1.0)
    c.expect("the total norm of three random gradients", float(total),
             reference=lambda: math.sqrt(sum(float(np.sum(g ** 2)) for g in originals)))
    before = math.sqrt(sum(float(np.sum(g ** 2)) for g in originals))
    c.known("their total norm after clipping to 1: total / (total + 1e-6)",
            math.sqrt(sum(float(np.sum(p.grad ** 2)) for p in params)), before / (before + 1e-6))


@STEP.check("clip_grad_norm_leaves_a_small_gradient_alone")
def clip_small(c):
    """A total norm below max_norm: the gradients are not changed (never scaled up)."""
    clip_grad_norm_ = c.get("clip_grad_norm_")
    a, b = _Param([0.0, 0.0]), _Param([0.0])
    a.grad, b.grad = np.array([3.0, 4.0]), np.array([12.0])
    total = clip_grad_norm_([a, b], 20.0)
    c.known("the returned total norm", float(total), 13.0)
    c.known("the first gradient", a.grad, [3.0, 4.0])
    c.known("the second gradient", b.grad, [12.0])
