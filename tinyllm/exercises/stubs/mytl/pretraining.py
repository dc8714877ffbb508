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
    raise NotImplementedError


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
    raise NotImplementedError


def _shape(x):
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _log_softmax(z):
    """log softmax(z) along the last axis, computed stably (the row max subtracted)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class DistillationLoss(Function):
    """L = T^2 / N sum_n KL(p_n || q_n), p = softmax(t / T), q = softmax(s / T).

    Inputs student_logits s (N, C), teacher_logits t (N, C) (arrays, in forward); the option
    temperature T. forward returns a 0-d array; backward returns (dL/ds (N, C), None): the
    teacher is a target and gets no gradient.
    """

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, temperature=2.0):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


def distillation_loss(student_logits, teacher_logits, temperature=2.0):
    """The distillation loss of the student's logits against the teacher's, a 0-d Tensor.

    student_logits: a Tensor (N, C); teacher_logits: a Tensor or an array (N, C), a fixed
    target (no gradient reaches it, even if it requires grad); temperature T > 0.

        p = softmax(t / T)   (the teacher, the target),     q = softmax(s / T)   (the student)
        L = T^2 / N * sum_n KL(p_n || q_n) = T^2 / N * sum_{n,c} p_nc (log p_nc - log q_nc)

    Raises ValueError naming ``distillation_loss`` and both shapes if they differ, and
    naming the temperature if T <= 0.
    """
    raise NotImplementedError
