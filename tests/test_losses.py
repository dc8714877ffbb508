"""The losses: forward values against NumPy formulas written out here, float64 gradient checks
for every option, values worked out by hand, numerical stability, and the errors for bad
targets and shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
import tinyllm.functional as F
from tinyllm import nn
from conftest import FAST, check_grad, leaf, rng_for, seeds

REDUCTIONS = ["none", "mean", "sum"]


# ----- NumPy references -------------------------------------------------------------------------
def np_log_softmax_rows(z):
    """log softmax of each row of a (M, C) array."""
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def rows(z):
    """(N, C, d1, ...) -> (N * d1 * ..., C): one row per prediction, classes along axis 1."""
    return np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])


def np_reduce(losses, reduction, denominator):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / denominator


def np_cross_entropy(z, y, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """Row by row: q = (1 - eps) w_y onehot(y) + eps w / C, loss = -sum q log p."""
    n_classes = z.shape[1]
    w = np.ones(n_classes) if weight is None else weight
    losses, denominator = [], 0.0
    for log_p, target in zip(np_log_softmax_rows(rows(z)), y.reshape(-1)):
        if target == ignore_index:
            losses.append(0.0)
            continue
        q = (1 - eps) * w[target] * (np.arange(n_classes) == target) + eps * w / n_classes
        losses.append(-np.sum(q * log_p))
        denominator += w[target]
    losses = np.array(losses).reshape(y.shape)
    return np_reduce(losses, reduction, denominator)


def np_soft_cross_entropy(z, t, weight=None, reduction="mean", eps=0.0):
    n_classes = z.shape[1]
    w = np.ones(n_classes) if weight is None else weight
    q = w * ((1 - eps) * rows(t) + eps / n_classes)
    losses = -np.sum(q * np_log_softmax_rows(rows(z)), axis=1)
    losses = losses.reshape(z.shape[:1] + z.shape[2:])
    return np_reduce(losses, reduction, losses.size)


def np_nll(log_p, y, weight=None, ignore_index=-100, reduction="mean"):
    w = np.ones(log_p.shape[1]) if weight is None else weight
    losses, denominator = [], 0.0
    for row, target in zip(rows(log_p), y.reshape(-1)):
        keep = target != ignore_index
        losses.append(-w[target] * row[target] if keep else 0.0)
        denominator += w[target] if keep else 0.0
    return np_reduce(np.array(losses).reshape(y.shape), reduction, denominator)


def np_bce(x, y, weight=1.0, reduction="mean"):
    losses = -weight * (y * np.log(x) + (1 - y) * np.log(1 - x))
    return np_reduce(losses, reduction, losses.size)


def np_bce_with_logits(x, y, weight=1.0, pos_weight=1.0, reduction="mean"):
    s = 1 / (1 + np.exp(-x))
    losses = -weight * (pos_weight * y * np.log(s) + (1 - y) * np.log(1 - s))
    return np_reduce(losses, reduction, losses.size)


def np_kl(log_q, p, reduction="mean"):
    losses = p * (np.log(p) - log_q)
    if reduction == "batchmean":
        return losses.sum() / log_q.shape[0]
    return np_reduce(losses, reduction, losses.size)


# ----- inputs -----------------------------------------------------------------------------------
def class_problem(seed, shape=(4, 3), ignore=True):
    """Logits of ``shape`` (N, C, d1, ...), integer targets (N, d1, ...) with one ignored."""
    rng = rng_for(seed)
    z = rng.normal(size=shape)
    y = rng.integers(0, shape[1], size=shape[:1] + shape[2:])
    if ignore:
        y.reshape(-1)[1] = -100
    return z, y, rng.uniform(0.5, 2.0, size=shape[1])


def probabilities(rng, shape):
    """Class probabilities with the classes along axis 1, all > 0."""
    p = rng.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=1, keepdims=True)


# ----- cross-entropy: forward -------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(4, 3), (3, 4, 2)])
def test_cross_entropy_matches_numpy(reduction, label_smoothing, weighted, shape):
    z, y, w = class_problem(0, shape)
    w = w if weighted else None
    out = F.cross_entropy(leaf(z), y, weight=w, reduction=reduction,
                          label_smoothing=label_smoothing)
    expected = np_cross_entropy(z, y, w, reduction=reduction, eps=label_smoothing)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_probability_targets_matches_numpy(reduction, label_smoothing,
                                                              weighted):
    rng = rng_for(1)
    z, t, w = rng.normal(size=(3, 4, 2)), probabilities(rng, (3, 4, 2)), rng.uniform(0.5, 2, 4)
    w = w if weighted else None
    out = F.cross_entropy(leaf(z), leaf(t), weight=w, reduction=reduction,
                          label_smoothing=label_smoothing)
    np.testing.assert_allclose(out.data, np_soft_cross_entropy(z, t, w, reduction,
                                                               label_smoothing), rtol=1e-12)


@FAST
@given(n=st.integers(1, 4), n_classes=st.integers(1, 5), extra=st.lists(st.integers(1, 3),
                                                                          max_size=2), seed=seeds)
def test_cross_entropy_matches_numpy_for_any_shape(n, n_classes, extra, seed):
    z, y, _ = class_problem(seed, (n, n_classes, *extra), ignore=False)
    np.testing.assert_allclose(F.cross_entropy(leaf(z), y, reduction="none").data,
                               np_cross_entropy(z, y, reduction="none"), rtol=1e-12, atol=1e-14)


def test_cross_entropy_of_one_sample_with_class_axis_0():
    z = np.array([1.0, 2.0, 0.5])
    out = F.cross_entropy(leaf(z), np.array(1), reduction="none")
    assert out.shape == ()
    np.testing.assert_allclose(out.data, -np_log_softmax_rows(z[None])[0, 1], rtol=1e-14)


def test_cross_entropy_of_equal_logits_is_log_of_the_class_count():
    out = F.cross_entropy(leaf(np.zeros((2, 7))), np.array([3, 5]))
    np.testing.assert_allclose(out.item(), np.log(7), rtol=1e-14)


def test_cross_entropy_equals_nll_of_log_softmax():
    z, y, w = class_problem(2, (3, 5, 2))
    direct = F.cross_entropy(leaf(z), y, weight=w)
    two_steps = F.nll_loss(F.log_softmax(leaf(z), dim=1), y, weight=w)
    np.testing.assert_allclose(direct.data, two_steps.data, rtol=1e-13)


def test_ignored_targets_leave_the_loss_and_the_mean_denominator():
    z, y, _ = class_problem(3, (4, 3), ignore=False)
    y_ignored = y.copy()
    y_ignored[0] = -100
    full = F.cross_entropy(leaf(z), y, reduction="none").data
    out = F.cross_entropy(leaf(z), y_ignored)
    np.testing.assert_allclose(out.item(), full[1:].mean(), rtol=1e-13)


def test_weighted_mean_divides_by_the_weights_of_the_targets():
    z, y, w = class_problem(4, (5, 3))
    per_sample = F.cross_entropy(leaf(z), y, weight=w, reduction="none").data
    kept = y != -100
    out = F.cross_entropy(leaf(z), y, weight=w)
    np.testing.assert_allclose(out.item(), per_sample.sum() / w[y[kept]].sum(), rtol=1e-13)


def test_a_custom_ignore_index_is_ignored():
    z, y, _ = class_problem(5, (4, 3), ignore=False)
    y[2] = 1
    out = F.cross_entropy(leaf(z), y, ignore_index=1, reduction="none")
    np.testing.assert_allclose(out.data, np_cross_entropy(z, y, ignore_index=1,
                                                          reduction="none"), rtol=1e-13)
    assert out.data[2] == 0


def test_every_target_ignored_gives_nan_mean_and_zero_gradient():
    z = leaf(np.random.default_rng(6).normal(size=(3, 4)))
    for smoothing in (0.0, 0.1):
        z.grad = None
        loss = F.cross_entropy(z, np.full(3, -100), label_smoothing=smoothing)
        assert np.isnan(loss.item())
        loss.backward()
        np.testing.assert_array_equal(z.grad, np.zeros((3, 4)))
    assert F.cross_entropy(z, np.full(3, -100), reduction="sum").item() == 0


def test_nan_logits_give_a_nan_loss():
    z = np.zeros((2, 3))
    z[1, 2] = np.nan
    out = F.cross_entropy(leaf(z), np.array([0, 1]), reduction="none")
    assert not np.isnan(out.data[0]) and np.isnan(out.data[1])


def test_cross_entropy_keeps_float32():
    z = tinyllm.tensor(np.random.default_rng(7).normal(size=(3, 4)), requires_grad=True,
                       dtype=np.float32)
    loss = F.cross_entropy(z, np.array([0, 1, 2]), weight=np.ones(4), label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32


# ----- cross-entropy: gradients -----------------------------------------------------------------
def test_gradient_of_one_row_is_softmax_minus_onehot():
    z = np.array([[2.0, -1.0, 0.5, 0.0]])
    logits = leaf(z)
    F.cross_entropy(logits, np.array([2])).backward()
    softmax = np.exp(z) / np.exp(z).sum()
    onehot = np.array([[0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_allclose(logits.grad, softmax - onehot, rtol=1e-13)
    numerical = tinyllm.numerical_grad(lambda x: F.cross_entropy(x, np.array([2])), leaf(z))
    np.testing.assert_allclose(numerical, softmax - onehot, rtol=1e-8, atol=1e-10)


def test_gradient_with_label_smoothing_is_softmax_minus_smoothed_target():
    z, eps = np.array([[0.3, -1.2, 2.0]]), 0.3
    logits = leaf(z)
    F.cross_entropy(logits, np.array([0]), label_smoothing=eps).backward()
    softmax = np.exp(z) / np.exp(z).sum()
    target = (1 - eps) * np.array([[1.0, 0.0, 0.0]]) + eps / 3
    np.testing.assert_allclose(logits.grad, softmax - target, rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(4, 3), (3, 4, 2)])
def test_cross_entropy_gradcheck(reduction, label_smoothing, weighted, shape):
    z, y, w = class_problem(8, shape)
    w = w if weighted else None
    assert check_grad(lambda x: F.cross_entropy(x, y, weight=w, reduction=reduction,
                                                label_smoothing=label_smoothing), leaf(z))


def test_cross_entropy_gradcheck_for_one_sample():
    assert check_grad(lambda x: F.cross_entropy(x, np.array(2), label_smoothing=0.1),
                      leaf([0.5, -0.3, 1.0, 0.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_gradcheck_with_probability_targets(reduction, label_smoothing):
    rng = rng_for(9)
    z, t, w = rng.normal(size=(3, 4, 2)), probabilities(rng, (3, 4, 2)), rng.uniform(0.5, 2, 4)
    assert check_grad(lambda x, p: F.cross_entropy(x, p, weight=w, reduction=reduction,
                                                   label_smoothing=label_smoothing),
                      leaf(z), leaf(t))


# ----- cross-entropy: stability -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_logits_of_1000(dtype):
    logits = tinyllm.tensor([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]],
                            requires_grad=True, dtype=dtype)
    loss = F.cross_entropy(logits, np.array([0, 2]), reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 2000.0], atol=1e-6)
    loss.sum().backward()
    assert np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(logits.grad, [[0, 0, 0], [1, 0, -1]], atol=1e-6)


# ----- nll_loss ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(4, 3), (3, 4, 2)])
def test_nll_loss_matches_numpy_and_gradcheck(reduction, weighted, shape):
    z, y, w = class_problem(10, shape)
    log_p = np.log(probabilities(rng_for(10), shape))
    w = w if weighted else None
    out = F.nll_loss(leaf(log_p), y, weight=w, reduction=reduction)
    np.testing.assert_allclose(out.data, np_nll(log_p, y, w, reduction=reduction), rtol=1e-13)
    assert check_grad(lambda x: F.nll_loss(x, y, weight=w, reduction=reduction), leaf(log_p))


# ----- binary cross-entropy ---------------------------------------------------------------------
def test_binary_cross_entropy_hand_values():
    """-log 0.9 = 0.1053605 for a confident right answer, whichever the class."""
    out = F.binary_cross_entropy(leaf([0.9, 0.1]), leaf([1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(out.data, [0.1053605157, 0.1053605157], rtol=1e-9)
    wrong = F.binary_cross_entropy(leaf([0.1]), leaf([1.0]))
    np.testing.assert_allclose(wrong.item(), 2.302585093, rtol=1e-9)


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    out = F.binary_cross_entropy(leaf([0.0, 1.0, 0.0]), leaf([1.0, 0.0, 0.0]),
                                 reduction="none")
    np.testing.assert_array_equal(out.data, [100.0, 100.0, 0.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_numpy_and_gradcheck(reduction, weighted):
    rng = rng_for(11)
    x, y = rng.uniform(0.1, 0.9, size=(3, 4)), rng.uniform(0, 1, size=(3, 4))
    w = rng.uniform(0.5, 2, size=4) if weighted else None
    out = F.binary_cross_entropy(leaf(x), leaf(y), weight=w, reduction=reduction)
    np.testing.assert_allclose(out.data, np_bce(x, y, 1.0 if w is None else w, reduction),
                               rtol=1e-13)
    assert check_grad(lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction=reduction),
                      leaf(x), leaf(y))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_bce_with_logits_matches_numpy_and_gradcheck(reduction, weighted, pos_weighted):
    rng = rng_for(12)
    x, y = rng.normal(0, 2, size=(3, 4)), rng.uniform(0, 1, size=(3, 4))
    w = rng.uniform(0.5, 2, size=(3, 1)) if weighted else None
    pw = rng.uniform(0.5, 3, size=4) if pos_weighted else None
    out = F.binary_cross_entropy_with_logits(leaf(x), leaf(y), weight=w, reduction=reduction,
                                             pos_weight=pw)
    expected = np_bce_with_logits(x, y, 1.0 if w is None else w, 1.0 if pw is None else pw,
                                  reduction)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert check_grad(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, weight=w, reduction=reduction, pos_weight=pw), leaf(x), leaf(y))


def test_bce_with_logits_gradient_is_sigmoid_minus_target():
    x, y = np.array([-2.0, 0.3, 4.0]), np.array([1.0, 0.0, 1.0])
    logits = leaf(x)
    F.binary_cross_entropy_with_logits(logits, leaf(y, False), reduction="sum").backward()
    np.testing.assert_allclose(logits.grad, 1 / (1 + np.exp(-x)) - y, rtol=1e-13)


def test_bce_with_logits_equals_bce_of_the_sigmoid():
    rng = rng_for(13)
    x, y = rng.normal(size=(5,)), rng.uniform(0, 1, size=(5,))
    direct = F.binary_cross_entropy_with_logits(leaf(x), leaf(y))
    via_sigmoid = F.binary_cross_entropy(leaf(1 / (1 + np.exp(-x))), leaf(y))
    np.testing.assert_allclose(direct.item(), via_sigmoid.item(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_stable_for_logits_of_1000(dtype):
    x = tinyllm.tensor([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True, dtype=dtype)
    y = tinyllm.tensor([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss.data, [1000.0, 1000.0, 0.0, 0.0], atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, -1.0, 0.0, 0.0], atol=1e-6)


# ----- mse --------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_numpy_and_gradcheck(reduction):
    rng = rng_for(14)
    x, y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    out = F.mse_loss(leaf(x), leaf(y), reduction=reduction)
    np.testing.assert_allclose(out.data, np_reduce((x - y) ** 2, reduction, x.size), rtol=1e-14)
    assert check_grad(lambda a, b: F.mse_loss(a, b, reduction=reduction), leaf(x), leaf(y))


# ----- kl_div and distillation ------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_numpy_and_gradcheck(reduction, log_target):
    rng = rng_for(15)
    log_q, p = np.log(probabilities(rng, (3, 4))), probabilities(rng, (3, 4))
    target = np.log(p) if log_target else p
    out = F.kl_div(leaf(log_q), leaf(target), reduction=reduction, log_target=log_target)
    np.testing.assert_allclose(out.data, np_kl(log_q, p, reduction), rtol=1e-12)
    assert check_grad(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                      leaf(log_q), leaf(target))


def test_kl_div_counts_zero_probability_targets_as_zero():
    out = F.kl_div(leaf([[-1.0, -0.5]]), leaf([[0.0, 1.0]]), reduction="none")
    np.testing.assert_array_equal(out.data, [[0.0, 0.5]])


def test_kl_div_batchmean_is_mean_times_the_number_of_classes():
    rng = rng_for(16)
    log_q, p = np.log(probabilities(rng, (3, 5))), probabilities(rng, (3, 5))
    batchmean = F.kl_div(leaf(log_q), leaf(p), reduction="batchmean").item()
    mean = F.kl_div(leaf(log_q), leaf(p), reduction="mean").item()
    np.testing.assert_allclose(batchmean, 5 * mean, rtol=1e-13)


def test_kl_div_does_not_hide_a_nan_input():
    out = F.kl_div(leaf([[np.nan, -0.5]]), leaf([[0.0, 1.0]]), reduction="sum")
    assert np.isnan(out.item())


def test_distillation_loss_is_t_squared_times_kl_of_softened_outputs():
    rng = rng_for(17)
    student, teacher, T = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), 3.0
    p = np.exp(np_log_softmax_rows(teacher / T))
    expected = T ** 2 * np_kl(np_log_softmax_rows(student / T), p, "batchmean")
    out = F.distillation_loss(leaf(student), leaf(teacher), temperature=T)
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)


def test_distillation_loss_trains_the_student_only():
    rng = rng_for(18)
    student, teacher = leaf(rng.normal(size=(3, 4))), leaf(rng.normal(size=(3, 4)))
    F.distillation_loss(student, teacher).backward()
    assert teacher.grad is None and np.any(student.grad != 0)
    assert check_grad(lambda s: F.distillation_loss(s, teacher, temperature=2.5), student)


def test_distillation_loss_is_zero_when_the_student_matches_the_teacher():
    logits = rng_for(19).normal(size=(2, 6))
    out = F.distillation_loss(leaf(logits), leaf(logits), temperature=4.0)
    assert abs(out.item()) < 1e-14


# ----- nn modules -------------------------------------------------------------------------------
def test_loss_modules_equal_the_functions():
    rng = rng_for(20)
    z, y, w = class_problem(20, (4, 3))
    w = leaf(w, requires_grad=False)        # float64, as the inputs
    x, t = rng.uniform(0.1, 0.9, size=(4, 3)), rng.uniform(0, 1, size=(4, 3))
    log_q, p = np.log(probabilities(rng, (4, 3))), probabilities(rng, (4, 3))
    pairs = [
        (nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, reduction="sum")(leaf(z), y),
         F.cross_entropy(leaf(z), y, weight=w, label_smoothing=0.1, reduction="sum")),
        (nn.NLLLoss(ignore_index=-100)(leaf(z), y), F.nll_loss(leaf(z), y, ignore_index=-100)),
        (nn.BCELoss(weight=w)(leaf(x), leaf(t)), F.binary_cross_entropy(leaf(x), leaf(t), w)),
        (nn.BCEWithLogitsLoss(pos_weight=w)(leaf(z), leaf(t)),
         F.binary_cross_entropy_with_logits(leaf(z), leaf(t), pos_weight=w)),
        (nn.MSELoss(reduction="none")(leaf(x), leaf(t)),
         F.mse_loss(leaf(x), leaf(t), reduction="none")),
        (nn.KLDivLoss(reduction="batchmean")(leaf(log_q), leaf(p)),
         F.kl_div(leaf(log_q), leaf(p), reduction="batchmean")),
    ]
    for module_out, function_out in pairs:
        np.testing.assert_array_equal(module_out.data, function_out.data)


def test_loss_module_weights_are_buffers_in_the_state_dict():
    criterion = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    assert list(criterion.state_dict()) == ["weight"]
    assert list(criterion.parameters()) == []
    assert list(nn.BCEWithLogitsLoss(pos_weight=[2.0]).state_dict()) == ["pos_weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []


def test_loss_module_checks_reduction_when_built():
    with pytest.raises(ValueError, match="'none', 'batchmean', 'sum', 'mean'"):
        nn.KLDivLoss(reduction="average")


# ----- bad input --------------------------------------------------------------------------------
def test_target_out_of_range_names_the_value_and_the_class_count():
    with pytest.raises(IndexError, match="cross_entropy: target 5 .* 3 classes"):
        F.cross_entropy(leaf(np.zeros((2, 3))), np.array([0, 5]))
    with pytest.raises(IndexError, match="nll_loss: target -1 .* 3 classes"):
        F.nll_loss(leaf(np.zeros((2, 3))), np.array([-1, 0]))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss, F.mse_loss,
                                  F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_unknown_reduction_lists_the_valid_ones(loss):
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'mean', 'sum'"):
        loss(leaf(np.full((2, 3), 0.5)), np.zeros(2, dtype=np.int64), reduction="avg")


def test_target_batch_size_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"cross_entropy: input of shape \(4, 3\).*\(4,\), "
                                         r"got \(3,\)"):
        F.cross_entropy(leaf(np.zeros((4, 3))), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(2, 5, 6\).*\(2, 6\), got \(2, 5\)"):
        F.cross_entropy(leaf(np.zeros((2, 5, 6))), np.zeros((2, 5), dtype=np.int64))


def test_float_class_indices_of_the_wrong_shape_are_explained():
    with pytest.raises(ValueError, match="class probabilities.*integer target"):
        F.cross_entropy(leaf(np.zeros((3, 4))), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="nll_loss: class-index targets must be integers"):
        F.nll_loss(leaf(np.zeros((3, 4))), np.array([0.0, 1.0, 2.0]))


def test_one_sample_needs_a_single_class_index():
    with pytest.raises(ValueError, match=r"input of shape \(4,\).*0-d target"):
        F.cross_entropy(leaf(np.zeros(4)), np.array([1]))


def test_class_weight_of_the_wrong_length_is_an_error():
    with pytest.raises(ValueError, match=r"weight must hold one number per class.*\(3,\)"):
        F.cross_entropy(leaf(np.zeros((2, 3))), np.array([0, 1]), weight=np.ones(4))


def test_label_smoothing_outside_0_1_is_an_error():
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        F.cross_entropy(leaf(np.zeros((2, 3))), np.array([0, 1]), label_smoothing=1.5)


@pytest.mark.parametrize("loss", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits,
                                  F.mse_loss, F.kl_div])
def test_elementwise_loss_shape_mismatch_names_the_loss_and_both_shapes(loss):
    name = getattr(loss, "__name__")
    with pytest.raises(ValueError, match=r"%s: target of shape \(3,\) does not match input of "
                                         r"shape \(3, 1\)" % name):
        loss(leaf(np.full((3, 1), 0.5)), leaf(np.full(3, 0.5)))


@pytest.mark.parametrize("loss", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_integer_targets_for_bce_are_an_error(loss):
    with pytest.raises(TypeError, match="target must be floating point.*int64"):
        loss(leaf([0.2, 0.7]), np.array([0, 1]))


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_bce_rejects_values_that_are_not_probabilities(bad):
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\].*with_logits"):
        F.binary_cross_entropy(leaf([0.5, bad]), leaf([0.0, 1.0]))


def test_bce_with_logits_weight_that_does_not_broadcast_is_an_error():
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) does not broadcast.*"
                                         r"\(2, 4\)"):
        F.binary_cross_entropy_with_logits(leaf(np.zeros((2, 4))), leaf(np.zeros((2, 4))),
                                           pos_weight=np.ones(3))


def test_distillation_loss_needs_logits_of_the_same_shape():
    with pytest.raises(ValueError, match=r"student logits of shape \(2, 3\).*\(2, 4\)"):
        F.distillation_loss(leaf(np.zeros((2, 3))), leaf(np.zeros((2, 4))))
