"""Checks of step pretraining (chapter 10): causal-LM targets, BERT's 80/10/10 masking, and
the distillation loss with its gradient.

``mlm_mask`` takes its uniform draws as arguments, so the checks choose draws on both sides
of every threshold (0.15, 0.8, 0.9) and derive the answer by hand.
"""

import math

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="pretraining", chapter=10, module="pretraining",
    title="pre-training targets and knowledge distillation",
    teaches="How causal and masked language modelling turn raw text into targets (the shift "
            "by one; BERT's 80/10/10 rule, with labels only at the selected positions), and "
            "how the distillation loss T^2 KL(p || q) trains a student on a teacher's "
            "softened outputs, which are its targets, not its inputs.",
    needs=("autograd",),
    minutes=75,
    hints=(
        "causal_lm_targets is two slices along the last axis. mlm_mask: build boolean arrays "
        "of the shape of ids, selected = select_u < mask_prob, then the three cases as "
        "selected & (a condition on action_u). Start inputs from ids.copy(): assigning into "
        "np.asarray(ids) would change the caller's array.",
        "The labels do not depend on what the input became: np.where(selected, ids, "
        "ignore_index). A kept token (action_u >= 0.9) is still a target.",
        "distillation_loss: compute log p and log q with a stable log-softmax of t / T and "
        "s / T (subtract the row max). KL(p || q) = sum_c p_c (log p_c - log q_c): the "
        "teacher's p weights the sum. Do not forget T^2, and the mean over the N rows.",
        "The gradient: only -sum_c p_c log q_c depends on s. With d log q_c / d s_k = "
        "([c = k] - q_k) / T, the derivative of one row's KL with respect to s_k is a "
        "difference of the two distributions, divided by T.",
        "Backward of DistillationLoss: dL/ds = grad * T * (q - p) / N, and None for the "
        "teacher: it is the target, so it gets no gradient.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


# ----- causal language modelling ----------------------------------------------------------------
@STEP.check("causal_lm_targets_are_the_inputs_shifted_by_one")
def causal_targets(c):
    """inputs = ids[..., :-1], targets = ids[..., 1:]; fewer than 2 tokens is a ValueError."""
    causal_lm_targets = c.get("causal_lm_targets")
    ids = np.array([[5, 1, 4, 1, 3], [9, 2, 6, 5, 3]])
    inputs, targets = causal_lm_targets(ids)
    c.known("inputs of [[5, 1, 4, 1, 3], [9, 2, 6, 5, 3]]", inputs, ids[:, :-1])
    c.known("targets of [[5, 1, 4, 1, 3], [9, 2, 6, 5, 3]]", targets, ids[:, 1:])
    c.raises("causal_lm_targets of one token", lambda: causal_lm_targets(np.array([[7]])),
             (ValueError,), contains=("causal_lm_targets",))


# ----- masked language modelling ----------------------------------------------------------------
# Ten positions with draws on both sides of each threshold (worked out in the checks' comments).
_IDS = np.arange(10, 20)
_SELECT_U = np.array([0.01, 0.05, 0.10, 0.149, 0.15, 0.5, 0.9, 0.0, 0.14, 0.2])
_ACTION_U = np.array([0.0, 0.79, 0.8, 0.85, 0.0, 0.0, 0.95, 0.9, 0.899, 0.5])
_RANDOM_IDS = np.arange(100, 110)
_MASK_ID = 3


def _mlm_numpy(ids, select_u, action_u, random_ids, mask_id, ignore_index, mask_prob):
    """An independent computation of the 80/10/10 rule with np.select."""
    selected = select_u < mask_prob
    inputs = np.select([selected & (action_u < 0.8), selected & (action_u < 0.9)],
                       [np.full_like(ids, mask_id), random_ids], ids)
    return inputs, np.select([selected], [ids], ignore_index)


def _random_draws(seed, shape=(3, 8), vocab=50):
    r = _rng(seed)
    return (r.integers(4, vocab, size=shape), r.random(shape), r.random(shape),
            r.integers(4, vocab, size=shape))


@STEP.check("mlm_mask_inputs_follow_the_80_10_10_rule")
def mlm_inputs(c):
    """Selected where select_u < mask_prob; then [MASK] below 0.8, a random id below 0.9,
    the original token above."""
    mlm_mask = c.get("mlm_mask")
    inputs, _ = mlm_mask(_IDS.copy(), _SELECT_U, _ACTION_U, _RANDOM_IDS, _MASK_ID)
    # selected: 0, 1, 2, 3, 7, 8 (0.15 itself is not below 0.15); [MASK] at 0, 1 (u < 0.8);
    # random at 2, 3, 8 (0.8 <= u < 0.9); kept at 7 (u = 0.9)
    c.known("inputs for the ten hand-chosen draws", inputs,
            np.array([3, 3, 102, 103, 14, 15, 16, 17, 108, 19]))
    for seed, mask_prob in ((0, 0.15), (1, 0.5)):
        ids, select_u, action_u, random_ids = _random_draws(seed)
        inputs, _ = mlm_mask(ids, select_u, action_u, random_ids, 2, mask_prob=mask_prob)
        c.shape("inputs", inputs, ids.shape)
        c.expect("inputs for random draws, mask_prob=%g" % mask_prob, inputs,
                 reference=lambda ids=ids, s=select_u, a=action_u, r=random_ids, p=mask_prob:
                 _mlm_numpy(ids, s, a, r, 2, -100, p)[0])


@STEP.check("mlm_mask_labels_are_the_originals_at_selected_positions")
def mlm_labels(c):
    """labels = the original id wherever a position is selected (even if kept or replaced),
    ignore_index everywhere else."""
    mlm_mask = c.get("mlm_mask")
    _, labels = mlm_mask(_IDS.copy(), _SELECT_U, _ACTION_U, _RANDOM_IDS, _MASK_ID)
    c.known("labels for the ten hand-chosen draws", labels,
            np.array([10, 11, 12, 13, -100, -100, -100, 17, 18, -100]))
    for seed, mask_prob, ignore_index in ((2, 0.15, -100), (3, 0.5, -1)):
        ids, select_u, action_u, random_ids = _random_draws(seed)
        _, labels = mlm_mask(ids, select_u, action_u, random_ids, 2, ignore_index=ignore_index,
                             mask_prob=mask_prob)
        c.expect("labels for random draws, mask_prob=%g, ignore_index=%d"
                 % (mask_prob, ignore_index), labels,
                 reference=lambda ids=ids, s=select_u, a=action_u, r=random_ids, p=mask_prob,
                 i=ignore_index: _mlm_numpy(ids, s, a, r, 2, i, p)[1])


@STEP.check("mlm_mask_leaves_ids_untouched")
def mlm_copies(c):
    """mlm_mask returns new integer arrays; the caller's ids are not modified."""
    mlm_mask = c.get("mlm_mask")
    ids = _IDS.copy()
    inputs, labels = mlm_mask(ids, _SELECT_U, _ACTION_U, _RANDOM_IDS, _MASK_ID)
    c.known("ids after mlm_mask(ids, ...)", ids, _IDS)
    c.true(inputs is not ids and not np.shares_memory(inputs, ids),
           "inputs is the ids array itself (or a view of it): work on ids.copy()")
    c.true(np.asarray(inputs).dtype.kind in "iu" and np.asarray(labels).dtype.kind in "iu",
           "inputs and labels should be integer arrays (token ids), got %s and %s"
           % (np.asarray(inputs).dtype, np.asarray(labels).dtype))


@STEP.check("mlm_mask_rejects_draws_of_another_shape")
def mlm_errors(c):
    """A draw whose shape differs from ids' is a ValueError naming mlm_mask and both shapes."""
    mlm_mask = c.get("mlm_mask")
    ids = np.arange(12).reshape(3, 4)
    u = np.full((3, 4), 0.5)
    c.raises("mlm_mask with select_u of shape (4, 3)",
             lambda: mlm_mask(ids, u.reshape(4, 3), u, ids, 0), (ValueError,),
             contains=("mlm_mask", "(4, 3)", "(3, 4)"))
    c.raises("mlm_mask with random_ids of shape (12,)",
             lambda: mlm_mask(ids, u, u, np.arange(12), 0), (ValueError,),
             contains=("mlm_mask", "(12,)", "(3, 4)"))


# ----- knowledge distillation -------------------------------------------------------------------
def _student_teacher(seed, N=4, C=6):
    r = _rng(seed)
    return r.standard_normal((N, C)) * 3, r.standard_normal((N, C)) * 3


def _tinyllm_distillation(s, t, T):
    import tinyllm.functional as F
    from tinyllm.autograd import tensor
    return F.distillation_loss(tensor(s, dtype=np.float64), tensor(t, dtype=np.float64),
                               temperature=T).data


@STEP.check("distillation_loss_is_t_squared_times_kl_teacher_to_student")
def distillation_values(c):
    """L = T^2 / N sum_n KL(softmax(t_n/T) || softmax(s_n/T)), at T = 1, 2, 5."""
    distillation_loss = c.get("distillation_loss")
    s, t = _student_teacher(0)
    for T in (1.0, 2.0, 5.0):
        c.expect("L at T=%g" % T, distillation_loss(c.tensor(s), c.tensor(t), T),
                 reference=lambda T=T: _tinyllm_distillation(s, t, T))
    # By hand, C = 2: teacher logits (2 ln 3, 0) at T = 2 give p = (3/4, 1/4); student logits
    # 0 give q = (1/2, 1/2); KL = 3/4 ln(3/2) + 1/4 ln(1/2); L = 4 KL for one row.
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    c.known("L of s = (0, 0), t = (2 ln 3, 0) at T = 2",
            distillation_loss(c.tensor([[0.0, 0.0]]), c.tensor([[2 * math.log(3), 0.0]]), 2.0),
            4 * kl)
    c.known("L of a student equal to the teacher",
            distillation_loss(c.tensor(t), c.tensor(t.copy()), 3.0), 0.0, atol=1e-12)


@STEP.check("distillation_gradient_wrt_the_student")
def distillation_gradient(c):
    """dL/ds by the student's backward against central differences, at T = 1 and T = 3."""
    distillation_loss = c.get("distillation_loss")
    s, t = _student_teacher(1, N=3, C=4)
    for T in (1.0, 3.0):
        c.gradcheck(lambda x, T=T: distillation_loss(x, c.tensor(t), T), [s],
                    ["dL/ds at T=%g" % T])


@STEP.check("distillation_teacher_is_a_target_not_an_input")
def distillation_teacher_fixed(c):
    """The teacher's softened outputs are the student's targets (002, section 1.2, says
    inputs): the loss sends no gradient into the teacher, even one that requires grad."""
    distillation_loss = c.get("distillation_loss")
    s, t = _student_teacher(2)
    student = c.tensor(s, requires_grad=True)
    teacher = c.tensor(t, requires_grad=True)
    distillation_loss(student, teacher, 2.0).backward()
    c.true(student.grad is not None, "the student's logits got no gradient")
    c.true(teacher.grad is None,
           "the teacher's logits got a gradient: the teacher is the fixed target of the loss "
           "(return None for it, or detach it), not a model trained through it")


@STEP.check("distillation_loss_rejects_bad_arguments")
def distillation_errors(c):
    """Logits of different shapes, or a temperature <= 0, are a ValueError saying which."""
    distillation_loss = c.get("distillation_loss")
    s, t = _student_teacher(3)
    c.raises("distillation_loss of (4, 6) and (4, 5) logits",
             lambda: distillation_loss(c.tensor(s), c.tensor(t[:, :5]), 2.0), (ValueError,),
             contains=("distillation_loss", "(4, 6)", "(4, 5)"))
    c.raises("distillation_loss at temperature 0",
             lambda: distillation_loss(c.tensor(s), c.tensor(t), 0.0), (ValueError,),
             contains=("distillation_loss", "temperature"))
