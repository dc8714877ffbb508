"""Checks of step posttraining (chapter 18): SFT targets masked to the answer, and the DPO
loss with its gradient, its value at the start (log 2) and its stability."""

import math

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="posttraining", chapter=18, module="posttraining",
    title="SFT targets and the DPO loss",
    teaches="How supervised fine-tuning counts only the answer tokens (targets shifted by one, "
            "ignore_index on the prompt), and how DPO turns a preference pair into a logistic "
            "loss on the difference of implicit rewards beta log(pi / ref), with a frozen "
            "reference that receives no gradient.",
    needs=("autograd",),
    minutes=45,
    hints=(
        "sft_targets: concatenate prompt and answer into x; inputs = x[:-1], targets = x[1:]. "
        "Then overwrite the targets whose token belongs to the prompt: target t is x[t + 1], "
        "a prompt token when t + 1 < m.",
        "So exactly the first m - 1 targets become ignore_index: the last prompt position "
        "predicts the first answer token, and it counts.",
        "dpo_loss: z = beta * ((pw - rw) - (pl - rl)). -log sigmoid(z) = log(1 + e^-z); "
        "np.logaddexp(0, -z) computes it without overflow for z = -1000.",
        "The gradient: d/dz of -log sigmoid(z) is sigmoid(z) - 1 = -sigmoid(-z). The chain rule "
        "through z gives a factor beta for pw and -beta for pl; the mean gives 1/N.",
        "Backward of DPOLoss: w = grad * beta * sigmoid(-z) / N; return (-w, w, None, None). "
        "sigmoid(-z) = exp(-logaddexp(0, z)) stays finite for any z.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


# ----- SFT targets ------------------------------------------------------------------------------
@STEP.check("sft_targets_are_ignored_on_the_prompt")
def sft_targets_values(c):
    """inputs = x[:-1]; targets = x[1:] with the first m - 1 set to ignore_index."""
    sft_targets = c.get("sft_targets")
    inputs, targets = sft_targets([7, 8, 9], [4, 5, 2])
    c.known("inputs of prompt [7, 8, 9], answer [4, 5, 2]", inputs, np.array([7, 8, 9, 4, 5]))
    c.known("targets of prompt [7, 8, 9], answer [4, 5, 2]", targets,
            np.array([-100, -100, 4, 5, 2]))
    _, targets = sft_targets(np.array([1]), np.array([3, 3]), ignore_index=-1)
    c.known("targets of a one-token prompt (nothing to ignore)", targets, np.array([3, 3]))
    _, targets = sft_targets(np.arange(5), np.array([9]), ignore_index=-1)
    c.known("targets of a one-token answer, ignore_index=-1", targets,
            np.array([-1, -1, -1, -1, 9]))


@STEP.check("sft_targets_reject_an_empty_prompt_or_answer")
def sft_targets_errors(c):
    """An empty prompt or answer is a ValueError naming sft_targets."""
    sft_targets = c.get("sft_targets")
    c.raises("sft_targets with an empty answer", lambda: sft_targets([1, 2], []),
             (ValueError,), contains=("sft_targets",))
    c.raises("sft_targets with an empty prompt", lambda: sft_targets([], [1, 2]),
             (ValueError,), contains=("sft_targets",))


# ----- the DPO loss -----------------------------------------------------------------------------
def _logps(seed, n=6):
    r = _rng(seed)
    return [r.normal(-30, 8, n) for _ in range(4)]


def _tinyllm_dpo(pw, pl, rw, rl, beta):
    from tinyllm.autograd import Tensor
    from tinyllm.training.posttraining import dpo_loss
    return dpo_loss(Tensor(pw, dtype=np.float64), Tensor(pl, dtype=np.float64), rw, rl,
                    beta=beta).data


@STEP.check("dpo_loss_is_the_mean_of_minus_log_sigmoid_z")
def dpo_values(c):
    """L = mean -log sigmoid(beta ((pw - rw) - (pl - rl))), at beta = 0.1 and 0.5."""
    dpo_loss = c.get("dpo_loss")
    pw, pl, rw, rl = _logps(0)
    for beta in (0.1, 0.5):
        c.expect("L at beta=%g" % beta,
                 dpo_loss(c.tensor(pw), c.tensor(pl), c.tensor(rw), c.tensor(rl), beta),
                 reference=lambda beta=beta: _tinyllm_dpo(pw, pl, rw, rl, beta))
    # By hand: one pair with z = 0.5 * ((-1 - -2) - (-3 - -3)) = 0.5; L = log(1 + e^-0.5).
    c.known("L of pw=-1, pl=-3, rw=-2, rl=-3, beta=0.5",
            dpo_loss(c.tensor([-1.0]), c.tensor([-3.0]), c.tensor([-2.0]), c.tensor([-3.0]),
                     0.5), math.log1p(math.exp(-0.5)))
    c.known("L when the policy is the reference (z = 0)",
            dpo_loss(c.tensor(pw), c.tensor(pl), c.tensor(pw.copy()), c.tensor(pl.copy()), 0.1),
            math.log(2))


@STEP.check("dpo_loss_is_finite_for_large_margins")
def dpo_stable(c):
    """z = +-1000: the losses are 0 and 1000, not inf or nan; the gradient is finite."""
    dpo_loss = c.get("dpo_loss")
    c.known("L of z = +1000", dpo_loss(c.tensor([1000.0]), c.tensor([0.0]), c.tensor([0.0]),
                                       c.tensor([0.0]), 1.0), 0.0, atol=1e-12)
    chosen = c.tensor([-1000.0], requires_grad=True)
    loss = dpo_loss(chosen, c.tensor([0.0]), c.tensor([0.0]), c.tensor([0.0]), 1.0)
    c.known("L of z = -1000", loss, 1000.0)
    loss.backward()
    c.known("dL/dpw at z = -1000 (sigmoid(1000) = 1)", chosen.grad, np.array([-1.0]))


@STEP.check("dpo_gradient_wrt_the_policy")
def dpo_gradient(c):
    """dL/dpw and dL/dpl by the student's backward against central differences."""
    dpo_loss = c.get("dpo_loss")
    pw, pl, rw, rl = _logps(1, n=4)
    for beta in (0.1, 1.0):
        c.gradcheck(lambda w, l, beta=beta: dpo_loss(w, l, c.tensor(rw), c.tensor(rl), beta),
                    [pw, pl], ["dL/dpw at beta=%g" % beta, "dL/dpl at beta=%g" % beta])


@STEP.check("dpo_reference_is_frozen")
def dpo_reference_frozen(c):
    """The reference log-probabilities get no gradient, even when they require grad."""
    dpo_loss = c.get("dpo_loss")
    pw, pl, rw, rl = _logps(2)
    tensors = [c.tensor(a, requires_grad=True) for a in (pw, pl, rw, rl)]
    dpo_loss(*tensors, 0.1).backward()
    c.true(tensors[0].grad is not None and tensors[1].grad is not None,
           "the policy's log-probabilities got no gradient")
    c.true(tensors[2].grad is None and tensors[3].grad is None,
           "the reference's log-probabilities got a gradient: the reference model is frozen "
           "(return None for it, or use its .data)")


@STEP.check("dpo_loss_rejects_bad_arguments")
def dpo_errors(c):
    """Vectors of different shapes, or beta <= 0, are a ValueError saying which."""
    dpo_loss = c.get("dpo_loss")
    a, b = c.tensor(np.zeros(3)), c.tensor(np.zeros(2))
    c.raises("dpo_loss of (3,) and (2,) vectors", lambda: dpo_loss(a, b, a, a, 0.1),
             (ValueError,), contains=("dpo_loss", "(3,)", "(2,)"))
    c.raises("dpo_loss with beta 0", lambda: dpo_loss(a, a, a, a, 0.0), (ValueError,),
             contains=("dpo_loss", "beta"))
