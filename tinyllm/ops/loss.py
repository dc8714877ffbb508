"""The losses that are single ops, each a ``Function`` with its backward in closed form.

The closed form is both the fast way and the formula worth knowing: cross-entropy's gradient
with respect to the logits is softmax(z) - onehot(y), and binary cross-entropy's with respect to
the logit is sigmoid(x) - y. ``tinyllm.functional.loss`` checks the arguments, picks the op and
reduces; the reductions' names ("none", "mean", "sum") are explained there.
"""

import numpy as np

from tinyllm.autograd import Function
from tinyllm.kernels.softmax_cross_entropy import softmax_cross_entropy


def _class_axis_view(weight, ndim):
    """Weight (C,) shaped (1, C, 1, ...) so that it broadcasts along axis 1 of an ndim array."""
    return weight.reshape((1, -1) + (1,) * (ndim - 2))


def _scale(grad, reduction, normaliser, shape):
    """dL/dl_i for every sample: the upstream gradient spread over the pointwise losses."""
    if reduction == "none":
        return grad
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = grad / normaliser if reduction == "mean" else grad
    return np.broadcast_to(grad, shape)


def _reduce_rows(loss, reduction, normaliser):
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    with np.errstate(divide="ignore", invalid="ignore"):    # 0 / 0: every target ignored
        return (total / normaliser).astype(loss.dtype)


class CrossEntropy(Function):
    """Cross-entropy from logits, with its gradient in closed form.

    Shapes: logits z (N, C, d1, ...), the class axis 1; target y (N, d1, ...) class indices, or
    t (N, C, d1, ...) class probabilities. Output: (N, d1, ...) for ``reduction="none"``, else a
    number.

    Forward. log p_c = z_c - logsumexp(z) with logsumexp(z) = m + log sum_c exp(z_c - m),
    m = max_c z_c, so no exp overflows (never log(softmax(z)): softmax underflows to 0 for very
    negative logits and log(0) = -inf). Each row has a target distribution q over the classes:

        class indices:        q_c = (1 - eps) w_y onehot(y)_c + eps w_c / C
        class probabilities:  q_c = w_c ((1 - eps) t_c + eps / C)

    (eps = label_smoothing, w = class weights, 1 when not given), and loss = -sum_c q_c log p_c.
    Rows whose target is ``ignore_index`` have q = 0. "mean" divides the sum of the losses by
    sum_i w_{y_i} over the rows not ignored (by the number of rows for probability targets).

    Backward. Since d log p_c / dz_k = [c = k] - p_k,

        dL/dz_k = -sum_c q_c ([c = k] - p_k) = p_k sum_c q_c - q_k,

    which for a one-hot target (sum_c q_c = 1) is the famous dL/dz = softmax(z) - onehot(y):
    push up the logit of the right class by 1 - p_y and push down every other logit by its
    probability. Each row is scaled by the upstream gradient (divided by the normaliser for
    "mean"). For probability targets, dL/dt_c = -(1 - eps) w_c log p_c.
    """

    @staticmethod
    def forward(ctx, logits, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        n_classes = logits.shape[1]
        m = np.max(logits, axis=1, keepdims=True)
        log_probs = logits - (m + np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True)))
        if weight is None:
            weight = np.ones(n_classes, dtype=logits.dtype)
        w = _class_axis_view(weight, logits.ndim)
        eps = label_smoothing
        ctx.save_for_backward(log_probs, target)
        ctx.weight, ctx.reduction, ctx.eps = weight, reduction, eps

        if target.dtype.kind == "f":                       # class probabilities
            q = w * ((1 - eps) * target + eps / n_classes)
            loss = -np.sum(q * log_probs, axis=1)
            ctx.normaliser = loss.size
            return _reduce_rows(loss, reduction, ctx.normaliser)

        valid = target != ignore_index                     # class indices
        y = np.where(valid, target, 0)
        w_y = np.where(valid, weight[y], 0)
        log_p_y = np.take_along_axis(log_probs, y[:, None], axis=1)[:, 0]
        smooth = np.sum(w * log_probs, axis=1)             # sum_c w_c log p_c
        loss = -(1 - eps) * w_y * log_p_y - (eps / n_classes) * smooth
        loss = np.where(valid, loss, 0).astype(logits.dtype)
        ctx.valid, ctx.y, ctx.w_y = valid, y, w_y
        ctx.normaliser = w_y.sum()
        return _reduce_rows(loss, reduction, ctx.normaliser)

    @staticmethod
    def backward(ctx, grad):
        log_probs, target = ctx.saved_tensors
        n_classes = log_probs.shape[1]
        w = _class_axis_view(ctx.weight, log_probs.ndim)
        eps = ctx.eps
        probs = np.exp(log_probs)
        row_shape = log_probs.shape[:1] + log_probs.shape[2:]
        scale = _scale(grad, ctx.reduction, ctx.normaliser, row_shape)[:, None]

        if target.dtype.kind == "f":
            q = w * ((1 - eps) * target + eps / n_classes)
            grad_logits = scale * (probs * np.sum(q, axis=1, keepdims=True) - q)
            grad_target = None
            if ctx.needs_input_grad[1]:
                grad_target = -scale * (1 - eps) * w * log_probs
            return grad_logits, grad_target

        scale = np.where(ctx.valid[:, None], scale, 0)     # ignored rows get no gradient
        w_y = ctx.w_y[:, None]
        q_sum = (1 - eps) * w_y + (eps / n_classes) * ctx.weight.sum()
        grad_logits = scale * (probs * q_sum - (eps / n_classes) * w)
        at_y = np.take_along_axis(grad_logits, ctx.y[:, None], axis=1)
        np.put_along_axis(grad_logits, ctx.y[:, None], at_y - scale * (1 - eps) * w_y, axis=1)
        return grad_logits.astype(log_probs.dtype, copy=False), None


class SoftmaxCrossEntropy(Function):
    """The common case of ``CrossEntropy`` in one kernel: logits z (N, C), class indices y (N,),
    no class weights, no label smoothing, reduction "mean" (a language model's loss).

    With n the number of rows whose target is not ``ignore_index``:

        loss = (1 / n) sum_i (logsumexp(z_i) - z_i[y_i]),
        dL/dz_i = (softmax(z_i) - onehot(y_i)) / n          (0 for an ignored row)

    Both come out of one call to the kernel
    ``tinyllm.kernels.softmax_cross_entropy.softmax_cross_entropy`` in the forward pass (the
    NumPy reference or the fused Numba rows, as the backend chooses), since they share the
    exponentials; the backward only scales the saved gradient by the upstream one.
    """

    @staticmethod
    def forward(ctx, logits, target, ignore_index=-100):
        loss, grad_logits = softmax_cross_entropy(logits, target, ignore_index)
        ctx.save_for_backward(grad_logits)
        return np.asarray(loss)

    @staticmethod
    def backward(ctx, grad):
        (grad_logits,) = ctx.saved_tensors
        return grad_logits * grad, None


class NLLLoss(Function):
    """Negative log-likelihood of the target classes, given log-probabilities.

    Shapes: log_probs (N, C, d1, ...), target y (N, d1, ...) class indices.
    Forward: l_i = -w_{y_i} log_probs[i, y_i] (0 where y_i is ``ignore_index``); "mean" divides
    sum_i l_i by sum_i w_{y_i} over the rows not ignored.
    Backward: dL/d log_probs[i, c] = -w_{y_i} [c = y_i] * (upstream / normaliser): one entry
    per row, every other entry 0.
    """

    @staticmethod
    def forward(ctx, log_probs, target, weight=None, ignore_index=-100, reduction="mean"):
        if weight is None:
            weight = np.ones(log_probs.shape[1], dtype=log_probs.dtype)
        valid = target != ignore_index
        y = np.where(valid, target, 0)
        w_y = np.where(valid, weight[y], 0)
        log_p_y = np.take_along_axis(log_probs, y[:, None], axis=1)[:, 0]
        loss = np.where(valid, -w_y * log_p_y, 0).astype(log_probs.dtype)
        ctx.shape, ctx.dtype, ctx.reduction = log_probs.shape, log_probs.dtype, reduction
        ctx.valid, ctx.y, ctx.w_y, ctx.normaliser = valid, y, w_y, w_y.sum()
        return _reduce_rows(loss, reduction, ctx.normaliser)

    @staticmethod
    def backward(ctx, grad):
        row_shape = ctx.shape[:1] + ctx.shape[2:]
        scale = np.where(ctx.valid, _scale(grad, ctx.reduction, ctx.normaliser, row_shape), 0)
        grad_input = np.zeros(ctx.shape, dtype=ctx.dtype)
        np.put_along_axis(grad_input, ctx.y[:, None], (-scale * ctx.w_y)[:, None], axis=1)
        return grad_input, None


class BinaryCrossEntropy(Function):
    """Binary cross-entropy of probabilities, elementwise.

    Forward: l = -w (y log x + (1 - y) log(1 - x)), each log clamped to >= -100 (as PyTorch),
    so x = 0 or 1 gives a large finite loss instead of inf, and 0 * log 0 is 0, not NaN.
    Backward: dl/dx = w (x - y) / (x (1 - x)) (the denominator kept >= 1e-12),
    dl/dy = w (log(1 - x) - log x).
    """

    @staticmethod
    def forward(ctx, x, y, weight=None):
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        loss = -(y * log_x + (1 - y) * log_1mx)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, y)
        ctx.weight, ctx.logs = weight, (log_x, log_1mx)
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        log_x, log_1mx = ctx.logs
        if ctx.weight is not None:
            grad = grad * ctx.weight
        grad_x = grad * (x - y) / np.maximum(x * (1 - x), 1e-12)
        grad_y = grad * (log_1mx - log_x) if ctx.needs_input_grad[1] else None
        return grad_x, grad_y


class BinaryCrossEntropyWithLogits(Function):
    """Binary cross-entropy of sigmoid(x), computed from the logit x without a sigmoid.

    With log sigmoid(x) = -softplus(-x), log(1 - sigmoid(x)) = -softplus(x) and
    softplus(x) = log(1 + e^x) = x + softplus(-x):

        l = w (p y softplus(-x) + (1 - y) softplus(x))
          = w ((1 - y) x + (1 + (p - 1) y) softplus(-x))

    with p = ``pos_weight`` (1 when not given, and then l = max(x, 0) - x y + log(1 + e^-|x|)).
    softplus(-x) = max(-x, 0) + log(1 + e^-|x|) never overflows: e^-|x| <= 1.
    Backward: dl/dx = w ((1 + (p - 1) y) sigmoid(x) - p y), which is w (sigmoid(x) - y) when
    p = 1; dl/dy = w ((p - 1) softplus(-x) - x).
    """

    @staticmethod
    def forward(ctx, x, y, weight=None, pos_weight=None):
        softplus_neg = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
        if pos_weight is None:
            loss = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
        else:
            loss = (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, y)
        ctx.weight, ctx.pos_weight, ctx.softplus_neg = weight, pos_weight, softplus_neg
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        p = 1 if ctx.pos_weight is None else ctx.pos_weight
        if ctx.weight is not None:
            grad = grad * ctx.weight
        sigmoid = np.exp(-ctx.softplus_neg)
        if ctx.pos_weight is None:
            grad_x = grad * (sigmoid - y)
        else:
            grad_x = grad * ((1 + (p - 1) * y) * sigmoid - p * y)
        grad_y = None
        if ctx.needs_input_grad[1]:
            grad_y = grad * ((p - 1) * ctx.softplus_neg - x)
        return grad_x, grad_y


class KLDiv(Function):
    """Pointwise Kullback-Leibler divergence, with x = log q (the model) and target p.

    Forward: l = p (log p - x), the term p log p taken as 0 where p = 0 (its limit);
    with ``log_target`` (the target given as log p): l = e^(log p) (log p - x).
    Backward: dl/dx = -p;  dl/dp = log p + 1 - x  (log_target: dl/d log p = p (log p - x + 1)).
    """

    @staticmethod
    def forward(ctx, x, target, log_target=False):
        if log_target:
            p = np.exp(target)
            loss = p * (target - x)
        else:
            p = target
            with np.errstate(divide="ignore", invalid="ignore"):
                p_log_p = np.where(p == 0, 0, p * np.log(p))
            loss = p_log_p - p * x      # 0 * x stays NaN for a NaN x: nothing is hidden
        ctx.save_for_backward(x, target)
        ctx.p, ctx.log_target = p, log_target
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, target = ctx.saved_tensors
        grad_x = -grad * ctx.p
        grad_target = None
        if ctx.needs_input_grad[1]:
            if ctx.log_target:
                grad_target = grad * ctx.p * (target - x + 1)
            else:
                with np.errstate(divide="ignore"):
                    grad_target = grad * (np.log(target) + 1 - x)
        return grad_x, grad_target
