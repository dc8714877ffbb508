"""Optimizers, schedulers and gradient clipping against PyTorch (skipped without torch).

The optimizer tests give both frameworks the same parameters and, at every step, the same
gradient (a noisy quadratic's gradient at tinyllm's current parameters), then compare the
parameters after each of 100 steps to float32 rounding.
"""

import math
import warnings

import numpy as np
import pytest

import tinyllm
from tinyllm import nn, optim
from tinyllm.optim import lr_scheduler

torch = pytest.importorskip("torch")

STEPS = 100
SHAPES = [(3, 4), (4,), (1,)]


def make_params(seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]
    ours = [nn.Parameter(tinyllm.tensor(a)) for a in arrays]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    return ours, theirs


def quadratic_grads(arrays, rng):
    """g = s * (p - 0.5) + noise for each parameter array p: a quadratic bowl with a
    different curvature s per entry, plus noise, so the moments and AMSGrad's maximum see
    changing gradients."""
    grads = []
    for p in arrays:
        scale = np.linspace(0.5, 3.0, p.size, dtype=np.float32).reshape(p.shape)
        noise = rng.normal(scale=0.3, size=p.shape).astype(np.float32)
        grads.append(scale * (p - np.float32(0.5)) + noise)
    return grads


def run_both(make_ours, make_theirs, seed=0, groups=False):
    """Step both optimizers 100 times on identical gradients; compare after every step."""
    ours, theirs = make_params(seed)
    if groups:      # the matrix in one group, the vectors in another
        ours = [{"params": ours[:1]}, {"params": ours[1:], "lr": 0.03, "weight_decay": 0.0}]
        theirs = [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.03,
                                            "weight_decay": 0.0}]
    opt, ref = make_ours(ours), make_theirs(theirs)
    ours = [p for g in opt.param_groups for p in g["params"]]
    theirs = [p for g in ref.param_groups for p in g["params"]]
    rng = np.random.default_rng(seed + 1)
    for step in range(STEPS):
        grads = quadratic_grads([p.data for p in ours], rng)
        if step == 3:               # a step where one parameter gets no gradient
            grads[1] = None
        for p, q, g in zip(ours, theirs, grads):
            p.grad = None if g is None else g.copy()
            q.grad = None if g is None else torch.tensor(g)
        opt.step()
        ref.step()
        for i, (p, q) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg="parameter %d after step %d" % (i, step + 1))


SGD_CONFIGS = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True),
    dict(lr=0.05, momentum=0.5, maximize=True),
]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: ",".join(sorted(c)))
def test_sgd_trajectory_matches_torch(config):
    run_both(lambda ps: optim.SGD(ps, **config),
             lambda ps: torch.optim.SGD(ps, foreach=False, **config))


ADAM_CONFIGS = [
    dict(lr=0.01),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
    dict(lr=0.01, maximize=True),
]


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=lambda c: ",".join(sorted(c)))
def test_adam_trajectory_matches_torch(config):
    run_both(lambda ps: optim.Adam(ps, **config),
             lambda ps: torch.optim.Adam(ps, foreach=False, **config))


ADAMW_CONFIGS = [
    dict(lr=0.01),                                   # the default weight_decay, 0.01
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, weight_decay=0.1, amsgrad=True),
]


@pytest.mark.parametrize("config", ADAMW_CONFIGS, ids=lambda c: ",".join(sorted(c)))
def test_adamw_trajectory_matches_torch(config):
    run_both(lambda ps: optim.AdamW(ps, **config),
             lambda ps: torch.optim.AdamW(ps, foreach=False, **config))


def test_adamw_with_decay_and_no_decay_groups_matches_torch():
    run_both(lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
             lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, foreach=False),
             groups=True)


def test_sgd_with_groups_matches_torch():
    run_both(lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1),
             lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1,
                                        foreach=False),
             groups=True)


def test_mlp_training_with_each_frameworks_autograd_matches_torch():
    """End to end: a small tanh MLP, gradients from each framework's own backward pass."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    arrays = [rng.normal(scale=0.5, size=s).astype(np.float32) for s in [(3, 8), (8,), (8, 1)]]
    ours = [nn.Parameter(tinyllm.tensor(a)) for a in arrays]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    opt = optim.AdamW(ours, lr=1e-3, weight_decay=0.1)
    ref = torch.optim.AdamW(theirs, lr=1e-3, weight_decay=0.1, foreach=False)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for step in range(STEPS):
        w1, b1, w2 = ours
        loss = (((tinyllm.tensor(x) @ w1 + b1).tanh() @ w2 - tinyllm.tensor(y)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        v1, c1, v2 = theirs
        ref_loss = ((torch.tanh(xt @ v1 + c1) @ v2 - yt) ** 2).mean()
        ref.zero_grad()
        ref_loss.backward()
        ref.step()
        np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-5)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg="after step %d" % (step + 1))


# ----- state dicts ---------------------------------------------------------------------------
def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_numpy(v) for v in value]
    return value


@pytest.mark.parametrize("make_ours, make_theirs", [
    (lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
     lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True, foreach=False)),
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, foreach=False)),
], ids=["Adam", "SGD"])
def test_torch_state_dict_loads_and_training_continues_identically(make_ours, make_theirs):
    _, theirs = make_params(5)
    ref = make_theirs(theirs)
    rng = np.random.default_rng(6)
    for _ in range(5):
        for q, g in zip(theirs, quadratic_grads([q.detach().numpy() for q in theirs], rng)):
            q.grad = torch.tensor(g)
        ref.step()

    ours = [nn.Parameter(tinyllm.tensor(q.detach().numpy().copy())) for q in theirs]
    opt = make_ours(ours)
    opt.load_state_dict(to_numpy(ref.state_dict()))
    for step in range(20):
        grads = quadratic_grads([p.data for p in ours], rng)
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.copy(), torch.tensor(g)
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg="step %d after loading" % (step + 1))


# ----- schedulers -----------------------------------------------------------------------------
def scheduler_pair(make_ours, make_theirs, lrs=(0.1, 0.02)):
    """Optimizers with two groups (different base lrs) and a scheduler on each side."""
    ours = optim.SGD([{"params": [nn.Parameter(tinyllm.zeros(1))], "lr": lr} for lr in lrs])
    theirs = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr}
                              for lr in lrs])
    return make_ours(ours), make_theirs(theirs), ours, theirs


def compare_schedules(make_ours, make_theirs, steps=STEPS + 20):
    sched, ref, opt, ref_opt = scheduler_pair(make_ours, make_theirs)
    for step in range(steps):
        np.testing.assert_allclose(sched.get_last_lr(), ref.get_last_lr(), rtol=1e-9,
                                   atol=1e-15, err_msg="lr at step %d" % step)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        opt.step()
        ref_opt.step()
        sched.step()
        ref.step()


def test_step_lr_matches_torch():
    compare_schedules(lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
                      lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5))


def test_multistep_lr_matches_torch():
    compare_schedules(
        lambda o: lr_scheduler.MultiStepLR(o, milestones=[10, 30, 30, 80], gamma=0.3),
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[10, 30, 30, 80],
                                                       gamma=0.3))


def test_exponential_lr_matches_torch():
    compare_schedules(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.97),
                      lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.97))


def test_linear_lr_matches_torch():
    compare_schedules(
        lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=37),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=0.9,
                                                    total_iters=37))


@pytest.mark.parametrize("T_max, eta_min", [(100, 0.0), (30, 0.001)])
def test_cosine_annealing_lr_matches_torch(T_max, eta_min):
    """Over 120 steps, past T_max (where both climb back up the cosine)."""
    compare_schedules(
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=T_max, eta_min=eta_min),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=T_max, eta_min=eta_min))


def test_lambda_lr_matches_torch():
    def rsqrt_warmup(step):
        return min((step + 1) / 10, 1 / math.sqrt(max(step, 1)))
    compare_schedules(lambda o: lr_scheduler.LambdaLR(o, [rsqrt_warmup, lambda s: 0.9 ** s]),
                      lambda o: torch.optim.lr_scheduler.LambdaLR(o, [rsqrt_warmup,
                                                                      lambda s: 0.9 ** s]))


def test_warmup_cosine_lr_matches_torch_linear_then_cosine():
    """The same schedule from torch's pieces: LinearLR over the warm-up steps (factor from
    1/(w+1) to w/(w+1)), then CosineAnnealingLR from the base lr down to min_lr."""
    w, total, min_lr = 10, 100, 0.001

    def torch_schedule(o):
        warmup = torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / (w + 1),
                                                   end_factor=w / (w + 1), total_iters=w - 1)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - w, eta_min=min_lr)
        return torch.optim.lr_scheduler.SequentialLR(o, [warmup, cosine], milestones=[w])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # SequentialLR passes an epoch to step()
        compare_schedules(lambda o: lr_scheduler.WarmupCosineLR(o, w, total, min_lr),
                          torch_schedule, steps=total + 1)


# ----- gradient clipping ----------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(7)
    grads = [rng.normal(size=s).astype(np.float32) for s in [(3, 4), (5,), (2, 2, 2)]]
    ours = [nn.Parameter(tinyllm.zeros(*g.shape)) for g in grads] + \
        [nn.Parameter(tinyllm.zeros(2))]             # no gradient: skipped
    theirs = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads] + \
        [torch.nn.Parameter(torch.zeros(2))]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type,
                                               foreach=False)
    np.testing.assert_allclose(total.item(), ref_total.item(), rtol=1e-6)
    for p, q in zip(ours[:-1], theirs[:-1]):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert ours[-1].grad is None


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(8)
    g = rng.normal(size=(4, 5)).astype(np.float32)
    p, q = nn.Parameter(tinyllm.zeros(4, 5)), torch.nn.Parameter(torch.zeros(4, 5))
    p.grad, q.grad = g.copy(), torch.tensor(g)
    nn.utils.clip_grad_value_([p], 0.7)
    torch.nn.utils.clip_grad_value_([q], 0.7, foreach=False)
    np.testing.assert_array_equal(p.grad, q.grad.numpy())
