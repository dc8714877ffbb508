"""Every loss against ``torch.nn.functional`` in float64: the outputs and the gradients with
respect to the input (and the target, where PyTorch differentiates it), over all options."""

import itertools

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
from tinyllm import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

REDUCTIONS = ["none", "mean", "sum"]


def rel_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError("shapes differ: %s and %s" % (a.shape, b.shape))
    if np.array_equal(np.isnan(a), np.isnan(b)):     # NaN in the same places counts as equal
        a, b = np.nan_to_num(a, nan=0.0), np.nan_to_num(b, nan=0.0)
    return tinyllm.rel_error(a, b)


def run_both(ours, theirs, inputs, grad_of):
    """Call both losses on float64 copies of ``inputs``, backpropagate a fixed random upstream
    gradient, and return (our output, their output, [(our grad, their grad) for grad_of])."""
    ours_in = [tinyllm.tensor(x, requires_grad=i in grad_of, dtype=np.float64)
               if np.asarray(x).dtype.kind == "f" else np.asarray(x) for i, x in enumerate(inputs)]
    theirs_in = [torch.tensor(x, requires_grad=i in grad_of) for i, x in enumerate(inputs)]
    out, ref = ours(*ours_in), theirs(*theirs_in)
    if grad_of:
        upstream = np.random.default_rng(0).normal(size=ref.shape)
        out.backward(upstream)
        ref.backward(torch.tensor(upstream))
    grads = [(ours_in[i].grad, theirs_in[i].grad.numpy()) for i in grad_of]
    return out.data, ref.detach().numpy(), grads


def assert_parity(ours, theirs, inputs, grad_of=(0,)):
    out, ref, grads = run_both(ours, theirs, inputs, grad_of)
    assert out.shape == ref.shape
    assert rel_error(out, ref) < 1e-6
    for mine, reference in grads:
        assert rel_error(mine, reference) < 1e-6


def class_problem(shape, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, size=shape)
    y = rng.integers(0, shape[1], size=shape[:1] + shape[2:])
    y.reshape(-1)[0] = -100
    return z, y, rng.uniform(0.2, 3.0, size=shape[1])


def as_torch(value):
    return None if value is None else torch.tensor(value)


# ----- cross_entropy and nll_loss ---------------------------------------------------------------
CE_OPTIONS = list(itertools.product(REDUCTIONS, [0.0, 0.15], [False, True],
                                    [(5, 4), (3, 4, 2), (2, 3, 2, 2)]))


@pytest.mark.parametrize("reduction, smoothing, weighted, shape", CE_OPTIONS)
def test_cross_entropy_with_class_indices(reduction, smoothing, weighted, shape):
    z, y, w = class_problem(shape)
    w = w if weighted else None
    assert_parity(
        lambda a, t: F.cross_entropy(a, t, weight=w, reduction=reduction,
                                     label_smoothing=smoothing),
        lambda a, t: TF.cross_entropy(a, t, weight=as_torch(w), reduction=reduction,
                                      label_smoothing=smoothing),
        [z, y])


@pytest.mark.parametrize("reduction, smoothing, weighted, shape", CE_OPTIONS)
def test_cross_entropy_with_class_probabilities(reduction, smoothing, weighted, shape):
    rng = np.random.default_rng(1)
    z = rng.normal(size=shape)
    t = rng.uniform(0.05, 1, size=shape)
    t /= t.sum(axis=1, keepdims=True)
    w = rng.uniform(0.2, 3, size=shape[1]) if weighted else None
    assert_parity(
        lambda a, p: F.cross_entropy(a, p, weight=w, reduction=reduction,
                                     label_smoothing=smoothing),
        lambda a, p: TF.cross_entropy(a, p, weight=as_torch(w), reduction=reduction,
                                      label_smoothing=smoothing),
        [z, t], grad_of=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", [2, -100])
def test_cross_entropy_of_one_sample(reduction, target):
    z = np.array([0.3, -1.0, 2.0, 0.1])
    assert_parity(lambda a, t: F.cross_entropy(a, t, reduction=reduction, label_smoothing=0.1),
                  lambda a, t: TF.cross_entropy(a, t, reduction=reduction, label_smoothing=0.1),
                  [z, np.array(target)])


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_every_target_ignored(smoothing, weighted):
    z, _, w = class_problem((3, 4))
    w = w if weighted else None
    out, ref, [(grad, ref_grad)] = run_both(
        lambda a, t: F.cross_entropy(a, t, weight=w, label_smoothing=smoothing),
        lambda a, t: TF.cross_entropy(a, t, weight=as_torch(w), label_smoothing=smoothing),
        [z, np.full(3, -100)], grad_of=(0,))
    assert np.isnan(out) and np.isnan(ref)
    np.testing.assert_array_equal(grad, ref_grad)


@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_cross_entropy_with_a_custom_ignore_index(ignore_index):
    z, y, w = class_problem((6, 3), seed=2)
    y[y == -100] = 0
    assert_parity(lambda a, t: F.cross_entropy(a, t, weight=w, ignore_index=ignore_index),
                  lambda a, t: TF.cross_entropy(a, t, weight=as_torch(w),
                                                ignore_index=ignore_index),
                  [z, y])


def test_cross_entropy_with_logits_of_1000():
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]])
    assert_parity(lambda a, t: F.cross_entropy(a, t, reduction="none"),
                  lambda a, t: TF.cross_entropy(a, t, reduction="none"),
                  [z, np.array([2, 1])])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2)])
def test_nll_loss(reduction, weighted, shape):
    z, y, w = class_problem(shape, seed=3)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    w = w if weighted else None
    assert_parity(lambda a, t: F.nll_loss(a, t, weight=w, reduction=reduction),
                  lambda a, t: TF.nll_loss(a, t, weight=as_torch(w), reduction=reduction),
                  [log_p, y])


# ----- binary cross-entropy ---------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0.02, 0.98, size=(4, 3)), rng.uniform(0, 1, size=(4, 3))
    w = rng.uniform(0.5, 2, size=3) if weighted else None
    assert_parity(lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction=reduction),
                  lambda a, b: TF.binary_cross_entropy(a, b, weight=as_torch(w),
                                                       reduction=reduction),
                  [x, y], grad_of=(0, 1))


def test_binary_cross_entropy_at_0_and_1():
    x, y = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    out, ref, _ = run_both(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                           lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"),
                           [x, y], grad_of=())
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_binary_cross_entropy_with_logits(reduction, weighted, pos_weighted):
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 3, size=(4, 3)), rng.uniform(0, 1, size=(4, 3))
    x[0, :2] = [1000.0, -1000.0]
    w = rng.uniform(0.5, 2, size=(4, 1)) if weighted else None
    pw = rng.uniform(0.5, 3, size=3) if pos_weighted else None
    assert_parity(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, reduction=reduction,
                                                        pos_weight=pw),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, weight=as_torch(w),
                                                         reduction=reduction,
                                                         pos_weight=as_torch(pw)),
        [x, y], grad_of=(0, 1))


# ----- mse, kl_div ------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(reduction):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2, 2))
    assert_parity(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                  lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, y], grad_of=(0, 1))


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")   # PyTorch's advice for "mean"
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    rng = np.random.default_rng(7)
    q, p = rng.uniform(0.05, 1, size=(2, 4, 3)), rng.uniform(0.05, 1, size=(2, 4, 3))
    log_q, p = np.log(q / q.sum(axis=1, keepdims=True)), p / p.sum(axis=1, keepdims=True)
    target = np.log(p) if log_target else p
    assert_parity(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                  lambda a, b: TF.kl_div(a, b, reduction=reduction, log_target=log_target),
                  [log_q, target], grad_of=(0, 1))


def test_kl_div_with_zero_target_probabilities():
    log_q, p = np.log([[0.2, 0.3, 0.5]]), np.array([[0.0, 0.4, 0.6]])
    assert_parity(lambda a, b: F.kl_div(a, b, reduction="none"),
                  lambda a, b: TF.kl_div(a, b, reduction="none"), [log_q, p])


def test_distillation_loss_against_the_usual_pytorch_recipe():
    rng = np.random.default_rng(8)
    student, teacher, T = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), 2.5
    assert_parity(
        lambda s, t: F.distillation_loss(s, t, temperature=T),
        lambda s, t: TF.kl_div(TF.log_softmax(s / T, dim=-1), TF.softmax(t / T, dim=-1),
                               reduction="batchmean") * T ** 2,
        [student, teacher])


# ----- modules and their state dicts ------------------------------------------------------------
def test_loss_module_state_dicts_load_from_pytorch():
    w, pw = np.array([0.5, 1.0, 2.0]), np.array([3.0, 1.0, 0.5])
    for ours, theirs in [(nn.CrossEntropyLoss(weight=np.ones(3)),
                          torch.nn.CrossEntropyLoss(weight=torch.tensor(w))),
                         (nn.BCEWithLogitsLoss(weight=np.ones(3), pos_weight=np.ones(3)),
                          torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w),
                                                     pos_weight=torch.tensor(pw)))]:
        state = {k: v.numpy() for k, v in theirs.state_dict().items()}
        assert list(ours.state_dict()) == list(state)
        ours.double().load_state_dict(state)
        for name, value in state.items():
            np.testing.assert_array_equal(ours.state_dict()[name], value)
