"""Step pretraining (chapter 10): the targets of the two pre-training objectives, and the
loss of knowledge distillation.

Causal language modelling predicts token t + 1 from the tokens up to t: the targets are the
inputs shifted left by one (``causal_lm_targets``).

Masked language modelling (BERT) selects about 15% of the positions, corrupts them by the
80/10/10 rule and predicts the original tokens there only (``mlm_mask``). The random draws
are arguments, so that the function is deterministic and a test can choose them.

Knowledge distillation (Hinton et al., 2015) trains a student on the softened outputs of a
teacher: the teacher's distribution p = softmax(t / T) is the student's target, and the loss
is T^2 times the KL divergence from p to the student's q = softmax(s / T)
(``distillation_loss``). The teacher is a fixed target: no gradient flows into it.

A note on the source of chapter 10 (002, section 1.2): it says distillation uses the teacher's
output as the student's *input*. It is the student's *target*. The student reads the same x
as the teacher, so that the teacher can be discarded after training.

You write: ``causal_lm_targets``, ``mlm_mask`` and ``distillation_loss``. For the last, either
write the Function ``DistillationLoss`` (forward, and a backward you derive) and return
``DistillationLoss.apply(...)``, or compose the loss from ``mytl.losses.log_softmax`` and
Tensor operations, keeping the teacher out of the graph.
"""

import numpy as np

from mytl.autograd import Function, Tensor


def causal_lm_targets(ids):
    """(inputs, targets) of causal language modelling: ids[..., :-1] and ids[..., 1:].

    ids (..., T) integers -> two arrays (..., T - 1): position t of the inputs is trained to
    predict position t of the targets, the next token. Raises ValueError naming
    ``causal_lm_targets`` if T < 2.
    """
    ids = np.asarray(ids)
    if ids.ndim == 0 or ids.shape[-1] < 2:
        raise ValueError("causal_lm_targets: needs at least 2 tokens along the last axis, got "
                         "shape %s" % (ids.shape,))
    return ids[..., :-1], ids[..., 1:]


def mlm_mask(ids, select_u, action_u, random_ids, mask_id, ignore_index=-100, mask_prob=0.15):
    """BERT's masking with the random draws given: returns (inputs, labels).

    ids: integer array of any shape; select_u, action_u: uniform draws in [0, 1) and
    random_ids: integers, all three of the shape of ids. Deterministic given the draws:

        position j is selected        if select_u[j] < mask_prob
        a selected position's input:  mask_id        if action_u[j] < 0.8          (80%)
                                      random_ids[j]  if 0.8 <= action_u[j] < 0.9   (10%)
                                      ids[j]         if action_u[j] >= 0.9         (10%)
        labels[j] = ids[j] at the selected positions, ignore_index elsewhere

    Unselected inputs are ids[j]. inputs and labels are new integer arrays of the shape of
    ids; ids itself is not modified. Raises ValueError naming ``mlm_mask`` and both shapes if
    a draw's shape differs from ids'.
    """
    ids = np.asarray(ids)
    for name, draws in (("select_u", select_u), ("action_u", action_u),
                        ("random_ids", random_ids)):
        if np.shape(draws) != ids.shape:
            raise ValueError("mlm_mask: %s has shape %s but ids has shape %s"
                             % (name, np.shape(draws), ids.shape))
    select_u, action_u = np.asarray(select_u), np.asarray(action_u)
    selected = select_u < mask_prob
    inputs = ids.copy()
    inputs[selected & (action_u < 0.8)] = mask_id
    replaced = selected & (action_u >= 0.8) & (action_u < 0.9)
    inputs[replaced] = np.asarray(random_ids)[replaced]
    labels = np.where(selected, ids, ignore_index)
    return inputs, labels


def _shape(x):
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _log_softmax(z):
    """log softmax(z) along the last axis, computed stably (the row max subtracted)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class DistillationLoss(Function):
    """L = T^2 / N sum_n KL(p_n || q_n), p = softmax(t / T), q = softmax(s / T).

    Inputs student_logits s (N, C), teacher_logits t (N, C); the option temperature T.
    Backward: dL/ds = T (q - p) / N times the upstream gradient; None for the teacher.
    """

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, temperature=2.0):
        T = temperature
        N = student_logits.shape[0]
        log_q = _log_softmax(student_logits / T)
        log_p = _log_softmax(teacher_logits / T)
        p = np.exp(log_p)
        ctx.save_for_backward(np.exp(log_q), p)
        ctx.temperature = T
        return np.array(T * T * np.sum(p * (log_p - log_q)) / N)

    @staticmethod
    def backward(ctx, grad):
        q, p = ctx.saved_tensors
        N = q.shape[0]
        return grad * ctx.temperature * (q - p) / N, None


def distillation_loss(student_logits, teacher_logits, temperature=2.0):
    """The distillation loss of the student's logits against the teacher's, a 0-d Tensor.

    student_logits: a Tensor (N, C); teacher_logits: a Tensor or an array (N, C), a fixed
    target (no gradient reaches it, even if it requires grad); temperature T > 0.

        p = softmax(t / T)   (the teacher, the target),     q = softmax(s / T)   (the student)
        L = T^2 / N * sum_n KL(p_n || q_n) = T^2 / N * sum_{n,c} p_nc (log p_nc - log q_nc)

    Raises ValueError naming ``distillation_loss`` and both shapes if they differ, and
    naming the temperature if T <= 0.
    """
    if not temperature > 0:
        raise ValueError("distillation_loss: the temperature must be positive, got %r"
                         % (temperature,))
    s_shape, t_shape = _shape(student_logits), _shape(teacher_logits)
    if s_shape != t_shape or len(s_shape) != 2:
        raise ValueError("distillation_loss: student logits of shape %s and teacher logits of "
                         "shape %s (both should be (N, C))" % (s_shape, t_shape))
    return DistillationLoss.apply(student_logits, teacher_logits, temperature=temperature)
