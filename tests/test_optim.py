"""Optimizers, learning-rate schedulers and gradient clipping: first steps worked out by hand,
parameter groups, state dicts, schedules against their closed forms, and bad options."""

import copy
import math

import numpy as np
import pytest

import tinyllm
from tinyllm import nn, optim
from tinyllm.optim import lr_scheduler

P0 = [1.0, -2.0, 3.0]
G1 = [0.5, -1.0, 2.0]
G2 = [-0.25, 0.5, 1.0]


def param(values=P0, dtype=np.float64):
    return nn.Parameter(tinyllm.tensor(values, dtype=dtype))


def step_with(opt, p, grad):
    p.grad = np.array(grad, dtype=p.dtype)
    opt.step()
    return p.data.copy()


# ----- SGD ----------------------------------------------------------------------------------
def test_sgd_step_is_p_minus_lr_times_grad():
    p = param()
    p1 = step_with(optim.SGD([p], lr=0.1), p, G1)
    np.testing.assert_allclose(p1, [1 - 0.1 * 0.5, -2 + 0.1 * 1.0, 3 - 0.1 * 2.0])


def test_sgd_momentum_buffer_starts_at_the_first_gradient():
    p = param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    p1 = step_with(opt, p, G1)
    buf1 = np.array(G1)                                  # b = g at step 1: no dampening yet
    np.testing.assert_allclose(p1, np.array(P0) - 0.1 * buf1)
    p2 = step_with(opt, p, G2)
    buf2 = 0.9 * buf1 + (1 - 0.5) * np.array(G2)
    np.testing.assert_allclose(p2, p1 - 0.1 * buf2)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], buf2)


def test_sgd_nesterov_steps_along_gradient_plus_momentum_times_buffer():
    p = param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    p1 = step_with(opt, p, G1)
    np.testing.assert_allclose(p1, np.array(P0) - 0.1 * (1 + 0.9) * np.array(G1))
    p2 = step_with(opt, p, G2)
    buf2 = 0.9 * np.array(G1) + np.array(G2)
    np.testing.assert_allclose(p2, p1 - 0.1 * (np.array(G2) + 0.9 * buf2))


def test_sgd_weight_decay_adds_wd_times_p_to_the_gradient():
    p = param()
    p1 = step_with(optim.SGD([p], lr=0.1, weight_decay=0.01), p, G1)
    np.testing.assert_allclose(p1, np.array(P0) - 0.1 * (np.array(G1) + 0.01 * np.array(P0)))


def test_sgd_maximize_climbs_the_gradient():
    p = param()
    p1 = step_with(optim.SGD([p], lr=0.1, maximize=True), p, G1)
    np.testing.assert_allclose(p1, np.array(P0) + 0.1 * np.array(G1))


# ----- Adam and AdamW ------------------------------------------------------------------------
def test_adam_first_step_moves_each_entry_by_lr_against_the_gradient_sign():
    """At t = 1: m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps)."""
    p = param()
    p1 = step_with(optim.Adam([p], lr=0.1, eps=1e-8), p, G1)
    g = np.array(G1)
    np.testing.assert_allclose(p1, np.array(P0) - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adam_second_step_uses_bias_corrected_moments():
    p = param()
    b1, b2, lr, eps = 0.9, 0.999, 0.1, 1e-8
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    p1 = step_with(opt, p, G1)
    p2 = step_with(opt, p, G2)
    g1, g2 = np.array(G1), np.array(G2)
    m = (1 - b1) * (b1 * g1 + g2)
    v = (1 - b2) * (b2 * g1 ** 2 + g2 ** 2)
    m_hat, v_hat = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
    np.testing.assert_allclose(p2, p1 - lr * m_hat / (np.sqrt(v_hat) + eps), rtol=1e-12)
    assert opt.state[p]["step"] == 2
    np.testing.assert_allclose(opt.state[p]["exp_avg"], m, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], v, rtol=1e-12)


def test_adam_weight_decay_is_added_to_the_gradient():
    p = param()
    p1 = step_with(optim.Adam([p], lr=0.1, weight_decay=0.5), p, G1)
    g = np.array(G1) + 0.5 * np.array(P0)
    np.testing.assert_allclose(p1, np.array(P0) - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adamw_decays_the_parameter_itself_then_takes_the_adam_step():
    p = param()
    p1 = step_with(optim.AdamW([p], lr=0.1, weight_decay=0.5), p, G1)
    g = np.array(G1)
    expected = np.array(P0) * (1 - 0.1 * 0.5) - 0.1 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(p1, expected, rtol=1e-12)


def test_adamw_default_weight_decay_is_0_01():
    assert optim.AdamW([param()]).defaults["weight_decay"] == 0.01
    assert optim.Adam([param()]).defaults["weight_decay"] == 0.0


def test_amsgrad_divides_by_the_largest_second_moment_seen():
    p = param([0.0])
    b1, b2, lr, eps = 0.9, 0.5, 0.1, 1e-8
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, amsgrad=True)
    p1 = step_with(opt, p, [10.0])
    p2 = step_with(opt, p, [0.1])
    v1 = (1 - b2) * 100.0
    v2 = b2 * v1 + (1 - b2) * 0.01
    v_max = max(v1, v2)
    m2 = (1 - b1) * (b1 * 10.0 + 0.1)
    expected = p1 - lr * (m2 / (1 - b1 ** 2)) / (np.sqrt(v_max / (1 - b2 ** 2)) + eps)
    np.testing.assert_allclose(p2, expected, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["max_exp_avg_sq"], [v_max])


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1),
                                  lambda ps: optim.AdamW(ps, lr=0.1)],
                         ids=["SGD", "Adam", "AdamW"])
def test_optimizer_minimises_a_quadratic(make):
    """L = sum_i s_i (p_i - c_i)^2 with curvatures s from 0.5 to 4: converges to c (AdamW to
    near c: weight decay pulls slightly towards 0)."""
    target = np.array([1.0, -2.0, 0.5, 3.0])
    scale = tinyllm.tensor([0.5, 1.0, 2.0, 4.0], dtype=np.float64)
    p = param(np.zeros(4))
    opt = make([p])
    for _ in range(300):
        loss = (scale * (p - tinyllm.tensor(target, dtype=np.float64)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(p.data, target, atol=0.05)


# ----- parameter groups -------------------------------------------------------------------
def test_each_group_uses_its_own_options_and_the_defaults_for_the_rest():
    a, b = param(), param()
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.01, "weight_decay": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.0
    a.grad, b.grad = np.array(G1), np.array(G1)
    opt.step()
    np.testing.assert_allclose(a.data, np.array(P0) - 0.1 * np.array(G1))
    np.testing.assert_allclose(b.data, np.array(P0) - 0.01 * (np.array(G1) + 0.5 * np.array(P0)))


def test_adamw_no_decay_group_takes_the_plain_adam_step():
    decay, no_decay = param(), param()
    opt = optim.AdamW([{"params": [decay], "weight_decay": 0.1},
                       {"params": [no_decay], "weight_decay": 0.0}], lr=0.1)
    reference = param()
    adam = optim.Adam([reference], lr=0.1)
    for grad in (G1, G2):
        decay.grad = no_decay.grad = reference.grad = np.array(grad)
        opt.step()
        adam.step()
    np.testing.assert_array_equal(no_decay.data, reference.data)
    assert not np.allclose(decay.data, reference.data)


def test_changing_a_groups_lr_changes_the_next_step():
    p = param()
    opt = optim.SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5
    np.testing.assert_allclose(step_with(opt, p, G1), np.array(P0) - 0.5 * np.array(G1))


def test_add_param_group_adds_parameters_with_defaults():
    a, b = param(), param()
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.2})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["lr"] == 0.2 and opt.param_groups[1]["betas"] == (0.9, 0.999)


def test_a_parameter_in_two_groups_is_an_error():
    a = param()
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_a_parameter_listed_twice_is_an_error():
    a = param()
    with pytest.raises(ValueError, match="same parameter more than once"):
        optim.SGD([a, a], lr=0.1)


def test_a_module_generator_is_accepted():
    class TwoParams(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = param()
            self.bias = param([0.0])

    model = TwoParams()
    opt = optim.SGD(model.parameters(), lr=0.1)
    params = opt.param_groups[0]["params"]
    assert len(params) == 2 and params[0] is model.weight and params[1] is model.bias


# ----- zero_grad, skipped parameters, versions, closures ---------------------------------------
def test_zero_grad_sets_grads_to_none_by_default():
    a, b = param(), param()
    a.grad, b.grad = np.ones(3), np.ones(3)
    opt = optim.SGD([a, b], lr=0.1)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_without_set_to_none_fills_zeros():
    a = param()
    a.grad = np.ones(3)
    optim.SGD([a], lr=0.1).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, np.zeros(3))


def test_parameters_without_grad_are_skipped():
    a, b = param(), param()
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.array(G1)
    opt.step()
    np.testing.assert_array_equal(b.data, P0)
    assert b not in opt.state and a in opt.state


def test_step_bumps_the_version_so_a_stale_graph_cannot_be_backpropagated():
    p = param()
    loss = (p * p).sum()            # the product saves p for its backward
    p.grad = np.array(G1)
    version = p._version
    optim.SGD([p], lr=0.1).step()
    assert p._version > version
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_step_updates_in_place_keeping_the_array():
    p = param()
    array = p.data
    step_with(optim.AdamW([p], lr=0.1), p, G1)
    assert p.data is array


def test_step_runs_the_closure_and_returns_its_loss():
    p = param()
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(1 + 4 + 9)
    np.testing.assert_allclose(p.data, np.array(P0) * (1 - 0.1 * 2))


def test_float32_parameters_stay_float32():
    p = param(dtype=np.float32)
    opt = optim.Adam([p], lr=0.1)
    step_with(opt, p, G1)
    assert p.dtype == np.float32 and opt.state[p]["exp_avg"].dtype == np.float32


def test_a_gradient_of_the_wrong_shape_is_an_error():
    p = param()
    p.grad = np.ones(2)
    with pytest.raises(RuntimeError, match=r"shape \(3,\) but its .grad has shape \(2,\)"):
        optim.SGD([p], lr=0.1).step()


# ----- bad options ----------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), "invalid learning rate"),
    (lambda ps: optim.SGD(ps, momentum=-0.5), "invalid momentum"),
    (lambda ps: optim.SGD(ps, weight_decay=-1.0), "invalid weight_decay"),
    (lambda ps: optim.SGD(ps, nesterov=True), "Nesterov momentum requires"),
    (lambda ps: optim.SGD(ps, momentum=0.9, dampening=0.1, nesterov=True),
     "Nesterov momentum requires"),
    (lambda ps: optim.Adam(ps, lr=-1e-3), "invalid learning rate"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "invalid beta parameter at index 0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), "invalid beta parameter at index 1"),
    (lambda ps: optim.AdamW(ps, eps=-1e-8), "invalid epsilon"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.1), "invalid weight_decay"),
    (lambda ps: optim.Adam([{"params": ps, "lr": -1.0}]), "invalid learning rate"),
    (lambda ps: optim.Adam([{"params": ps, "momentum": 0.9}]), "unknown option.*'momentum'"),
    (lambda ps: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda ps: optim.SGD([{"lr": 0.1}]), "no 'params' entry"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_invalid_options_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make([param()])


def test_params_must_be_an_ordered_collection_of_leaf_tensors():
    p = param()
    with pytest.raises(TypeError, match="got a single tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="got a single dict"):
        optim.SGD({"params": [p]}, lr=0.1)
    with pytest.raises(TypeError, match="not a set"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize tensors.*ndarray"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        optim.SGD([param()], lr=0.1, betas=(0.9, 0.99))


# ----- state dicts ----------------------------------------------------------------------------
def train(opt, params, grads):
    trajectory = []
    for grad in grads:
        for p, g in zip(params, grad):
            p.grad = g.copy()
        opt.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory


def grad_sequence(n, seed):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=3), rng.normal(size=(2, 2))] for _ in range(n)]


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.1, amsgrad=True),
    lambda ps: optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}],
                           lr=0.1),
], ids=["SGD", "Adam", "AdamW-groups"])
def test_state_dict_round_trip_resumes_the_identical_trajectory(make):
    grads = grad_sequence(10, seed=0)
    params = [param(), param(np.ones((2, 2)))]
    opt = make(params)
    train(opt, params, grads[:5])
    saved_params = [p.data.copy() for p in params]
    saved = opt.state_dict()
    expected = train(opt, params, grads[5:])

    resumed = [param(a) for a in saved_params]
    opt2 = make(resumed)                # new tensors and optimizer, same layout
    opt2.load_state_dict(saved)
    got = train(opt2, resumed, grads[5:])
    for step_expected, step_got in zip(expected, got):
        for a, b in zip(step_expected, step_got):
            np.testing.assert_array_equal(a, b)


def test_state_dict_uses_parameter_indices_and_copies_arrays():
    a, b = param(), param(np.ones((2, 2)))
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones((2, 2))
    opt.step()
    saved = opt.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1]]
    assert saved["param_groups"][1]["lr"] == 0.5
    assert set(saved["state"]) == {0, 1}
    assert saved["state"][0]["step"] == 1
    before = saved["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], before)


def test_load_state_dict_restores_group_options():
    a = param()
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    saved = copy.deepcopy(opt.state_dict())
    opt.param_groups[0]["lr"] = 0.7
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.1
    assert len(opt.param_groups[0]["params"]) == 1 and opt.param_groups[0]["params"][0] is a


def test_load_state_dict_with_another_group_count_is_an_error():
    opt = optim.SGD([{"params": [param()]}, {"params": [param()]}], lr=0.1)
    saved = optim.SGD([param(), param()], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="1 parameter group.*this optimizer has 2"):
        opt.load_state_dict(saved)


def test_load_state_dict_with_another_group_size_is_an_error():
    opt = optim.SGD([param(), param()], lr=0.1)
    saved = optim.SGD([param()], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="saved parameter group 0 has 1 parameter.*has 2"):
        opt.load_state_dict(saved)


def test_load_state_dict_with_another_parameter_shape_is_an_error():
    source = param(np.zeros(4))
    other = optim.Adam([source], lr=0.1)
    source.grad = np.ones(4)
    other.step()
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(4,\).*\(3,\)"):
        optim.Adam([param()], lr=0.1).load_state_dict(other.state_dict())


# ----- schedulers ------------------------------------------------------------------------------
def lrs_over(make_scheduler, steps, base_lrs=(0.1, 0.02)):
    """The lr of each group at steps 0 .. steps-1 (as used by optimizer.step at that step)."""
    opt = optim.SGD([{"params": [param()], "lr": lr} for lr in base_lrs])
    scheduler = make_scheduler(opt)
    history = []
    for _ in range(steps):
        history.append([g["lr"] for g in opt.param_groups])
        assert scheduler.get_last_lr() == history[-1]
        opt.step()
        scheduler.step()
    return np.array(history)


def closed_form(fn, steps, base_lrs=(0.1, 0.02)):
    return np.array([[fn(s, base) for base in base_lrs] for s in range(steps)])


def test_step_lr_multiplies_by_gamma_every_step_size_steps():
    got = lrs_over(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 12)
    np.testing.assert_allclose(got, closed_form(lambda s, b: b * 0.5 ** (s // 3), 12))


def test_multistep_lr_multiplies_by_gamma_at_each_milestone():
    got = lrs_over(lambda o: lr_scheduler.MultiStepLR(o, milestones=[5, 2], gamma=0.1), 8)
    expected = closed_form(lambda s, b: b * 0.1 ** ((s >= 2) + (s >= 5)), 8)
    np.testing.assert_allclose(got, expected)


def test_exponential_lr():
    got = lrs_over(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 10)
    np.testing.assert_allclose(got, closed_form(lambda s, b: b * 0.9 ** s, 10))


def test_linear_lr_goes_from_start_to_end_factor_and_stays():
    got = lrs_over(lambda o: lr_scheduler.LinearLR(o, start_factor=0.25, end_factor=1.0,
                                                   total_iters=4), 8)
    factors = [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(got, closed_form(lambda s, b: b * factors[s], 8))


def test_cosine_annealing_lr_follows_half_a_cosine_to_eta_min():
    got = lrs_over(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 11)
    expected = closed_form(
        lambda s, b: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * s / 10)) / 2, 11)
    np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose(got[10], [0.001, 0.001])     # eta_min at T_max
    np.testing.assert_allclose(got[5], [(0.1 + 0.001) / 2, (0.02 + 0.001) / 2])


def test_lambda_lr_scales_each_groups_base_lr():
    got = lrs_over(lambda o: lr_scheduler.LambdaLR(o, [lambda s: 1 / (s + 1), lambda s: s]), 5)
    np.testing.assert_allclose(got[:, 0], [0.1 / (s + 1) for s in range(5)])
    np.testing.assert_allclose(got[:, 1], [0.02 * s for s in range(5)])


def nanogpt_get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    """nanoGPT's train.py schedule, written out as it is there."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_warmup_cosine_lr_is_nanogpts_schedule():
    for step in range(130):
        assert lr_scheduler.warmup_cosine_lr(step, 6e-4, 10, 100, 6e-5) == pytest.approx(
            nanogpt_get_lr(step, 6e-4, 10, 100, 6e-5), rel=1e-12)


def test_warmup_cosine_lr_shape():
    lrs = [lr_scheduler.warmup_cosine_lr(s, 1.0, 4, 20, 0.1) for s in range(25)]
    assert lrs[0] == pytest.approx(1 / 5)                    # the first step already learns
    assert np.all(np.diff(lrs[:5]) > 0)                       # linear warm-up ...
    assert lrs[4] == pytest.approx(1.0)                       # ... reaches the base lr at w
    assert np.all(np.diff(lrs[4:21]) < 0)                     # cosine decay ...
    assert lrs[20] == pytest.approx(0.1) and lrs[24] == 0.1   # ... to min_lr, then flat


def test_warmup_cosine_scheduler_sets_the_function_values_for_each_group():
    got = lrs_over(lambda o: lr_scheduler.WarmupCosineLR(o, warmup_steps=5, total_steps=30,
                                                         min_lr=1e-3), 40)
    expected = closed_form(lambda s, b: nanogpt_get_lr(s, b, 5, 30, 1e-3), 40)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_scheduler_records_initial_lr_and_counts_last_epoch_from_minus_one():
    opt = optim.SGD([param()], lr=0.1)
    scheduler = lr_scheduler.StepLR(opt, step_size=2)
    assert opt.param_groups[0]["initial_lr"] == 0.1
    assert scheduler.last_epoch == 0 and scheduler.base_lrs == [0.1]
    scheduler.step()
    assert scheduler.last_epoch == 1


def test_scheduler_state_dict_resumes_the_schedule():
    def make(opt):
        return lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)

    opt = optim.SGD([param()], lr=0.1)
    scheduler = make(opt)
    for _ in range(7):
        opt.step()
        scheduler.step()
    saved_opt, saved = opt.state_dict(), scheduler.state_dict()
    expected = []
    for _ in range(5):
        opt.step()
        scheduler.step()
        expected.append(scheduler.get_last_lr()[0])

    opt2 = optim.SGD([param()], lr=0.1)
    opt2.load_state_dict(saved_opt)
    scheduler2 = make(opt2)
    scheduler2.load_state_dict(saved)
    got = []
    for _ in range(5):
        opt2.step()
        scheduler2.step()
        got.append(opt2.param_groups[0]["lr"])
    assert got == expected


def test_resuming_with_last_epoch_needs_initial_lr():
    opt = optim.SGD([param()], lr=0.1)
    with pytest.raises(KeyError, match="'initial_lr' is not set in param_groups\\[0\\]"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=5)


def test_resuming_with_last_epoch_continues_from_there():
    opt = optim.SGD([param()], lr=0.1)
    opt.param_groups[0]["initial_lr"] = 0.1
    scheduler = lr_scheduler.ExponentialLR(opt, gamma=0.5, last_epoch=2)
    assert scheduler.last_epoch == 3
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)


@pytest.mark.parametrize("make, match", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), "step_size must be a positive integer"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.0), "start_factor must lie in"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=1.5), "end_factor must lie in"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), "T_max must be positive"),
    (lambda o: lr_scheduler.WarmupCosineLR(o, 10, 10), "warmup_steps < total_steps"),
    (lambda o: lr_scheduler.WarmupCosineLR(o, 1, 10, min_lr=-1.0), "min_lr must be >= 0"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda s: 1.0] * 2), "expected 1 lr_lambdas"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_invalid_scheduler_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make(optim.SGD([param()], lr=0.1))


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="expected an Optimizer"):
        lr_scheduler.StepLR([param()], step_size=2)


# ----- gradient clipping -----------------------------------------------------------------------
def with_grads(*grads):
    params = []
    for g in grads:
        p = param(np.zeros(np.shape(g)))
        p.grad = np.array(g, dtype=np.float64)
        params.append(p)
    return params


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    a, b = with_grads([3.0, 0.0], [0.0, 4.0])          # together: a vector of length 5
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3.0 * coef, 0.0])
    np.testing.assert_allclose(b.grad, [0.0, 4.0 * coef])


def test_clip_grad_norm_leaves_small_gradients_alone():
    (a,) = with_grads([0.3, -0.4])
    total = nn.utils.clip_grad_norm_(a, max_norm=1.0)       # a single tensor works too
    assert total.item() == pytest.approx(0.5)
    np.testing.assert_array_equal(a.grad, [0.3, -0.4])


def test_clip_grad_norm_with_inf_and_one_norms():
    a, b = with_grads([1.0, -6.0], [2.0])
    assert nn.utils.clip_grad_norm_([a, b], max_norm=100.0, norm_type=1).item() == \
        pytest.approx(9.0)
    total = nn.utils.clip_grad_norm_([a, b], max_norm=3.0, norm_type=math.inf)
    assert total.item() == pytest.approx(6.0)
    np.testing.assert_allclose(a.grad, np.array([1.0, -6.0]) * 3.0 / (6.0 + 1e-6))


def test_clip_grad_norm_skips_missing_grads_and_returns_zero_without_any():
    p = param()
    assert nn.utils.clip_grad_norm_([p], max_norm=1.0).item() == 0.0
    assert p.grad is None


def test_clip_grad_norm_error_if_nonfinite():
    (a,) = with_grads([1.0, np.nan])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([a], max_norm=1.0, error_if_nonfinite=True)


def test_clip_grad_norm_rejects_bad_arguments():
    (a,) = with_grads([1.0])
    with pytest.raises(ValueError, match="norm_type must be positive"):
        nn.utils.clip_grad_norm_([a], 1.0, norm_type=0)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        nn.utils.clip_grad_norm_([a], -1.0)


def test_clip_grad_value_clamps_each_entry():
    a, b = with_grads([0.5, -3.0], [2.0])
    nn.utils.clip_grad_value_([a, b], 1.0)
    np.testing.assert_array_equal(a.grad, [0.5, -1.0])
    np.testing.assert_array_equal(b.grad, [1.0])
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        nn.utils.clip_grad_value_([a], -1.0)
