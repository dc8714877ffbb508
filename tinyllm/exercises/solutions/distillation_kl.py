"""Reference solution of exercise distillation_kl (chapter 10)."""

import numpy as np

from tinyllm.autograd import Function


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class DistillationKL(Function):
    """L = T^2 / N sum_n KL(softmax(t_n / T) || softmax(s_n / T)) for student logits s and
    teacher logits t (N, C); dL/ds = T (softmax(s / T) - softmax(t / T)) / N."""

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, temperature=2.0):
        T = temperature
        n = student_logits.shape[0]
        log_q = _log_softmax(student_logits / T)                 # student
        log_p = _log_softmax(teacher_logits / T)                 # teacher (the target)
        p = np.exp(log_p)
        ctx.save_for_backward(np.exp(log_q), p)
        ctx.temperature = T
        return T * T * np.sum(p * (log_p - log_q)) / n

    @staticmethod
    def backward(ctx, grad_loss):
        q, p = ctx.saved_tensors
        n = q.shape[0]
        return grad_loss * ctx.temperature * (q - p) / n, None
