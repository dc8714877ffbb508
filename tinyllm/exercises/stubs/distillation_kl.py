"""Exercise distillation_kl (chapter 10, Pre-training and fine-tuning).

Write the knowledge-distillation loss with its gradient as an autograd Function. Check with:

    python -m tinyllm.exercises check distillation_kl this_file.py
"""

import numpy as np

from tinyllm.autograd import Function


class DistillationKL(Function):
    """T^2 times the KL divergence from the teacher's softened distribution to the student's.

    Shapes: student_logits s (N, C), teacher_logits t (N, C); temperature T > 0.
    Output: a number (0-d), the mean over the N rows.

    Forward, with softmax along the last axis (compute log-softmax stably):
        q = softmax(s / T)    the student          p = softmax(t / T)    the teacher (target)
        L = (T^2 / N) sum_n sum_c p_nc (log p_nc - log q_nc)

    Backward (grad_loss = dL_total/dL, a number): since d/ds of -sum_c p_c log q_c is
    (q - p) / T for each row,
        dL/ds = grad_loss * T (q - p) / N                                   (N, C)
        the teacher is a fixed target: return None for it.

    Use it as ``DistillationKL.apply(student_logits, teacher_logits, temperature=2.0)``.
    """

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, temperature=2.0):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_loss):
        raise NotImplementedError
