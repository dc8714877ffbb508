"""Loss functions: how far a model's outputs are from the targets, as one number to minimise.

Every loss computes a pointwise loss l_i (one per sample, or per element) and then reduces it:

- ``reduction="none"``: the l_i themselves, one per sample (or element);
- ``reduction="sum"``:  sum_i l_i;
- ``reduction="mean"``: the average (for ``cross_entropy`` and ``nll_loss`` with class weights,
  the weighted average sum_i l_i / sum_i w[y_i], as in PyTorch).

Names, arguments, defaults and results follow ``torch.nn.functional``, so code and numbers
transfer in both directions. Class weights (``weight``, ``pos_weight``) are constants: no
gradient flows to them.

The classification losses are written as single ``Function`` s with their backward in closed
form, because the closed form is both the fast way and the formula worth knowing:
cross-entropy's gradient with respect to the logits is softmax(z) - onehot(y), and binary
cross-entropy's with respect to the logit is sigmoid(x) - y.
"""

import numpy as np

from tinyllm import ops
from tinyllm.autograd import Function, Tensor
from tinyllm.kernels import fused

REDUCTIONS = ("none", "mean", "sum")


# ----- argument checks shared by the losses ----------------------------------------------------
def check_reduction(loss_name, reduction, valid=REDUCTIONS):
    if reduction not in valid:
        raise ValueError("%s: reduction must be one of %s, got %r"
                         % (loss_name, ", ".join(repr(r) for r in valid), reduction))


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _constant(loss_name, arg_name, value, dtype, shape):
    """A class weight (or pos_weight) as an array of ``dtype`` that broadcasts to ``shape``."""
    if value is None:
        return None
    array = np.asarray(_array(value), dtype=dtype)
    try:
        np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError("%s: %s of shape %s does not broadcast to the input's shape %s"
                         % (loss_name, arg_name, array.shape, tuple(shape))) from None
    return array


def _float_target(loss_name, input, target):
    """The target of an elementwise loss: floating, the input's shape (a Tensor is kept, so
    that a gradient can flow to it)."""
    data = _array(target)
    if data.dtype.kind != "f":
        raise TypeError("%s: the target must be floating point (probabilities or values), got "
                        "dtype %s; convert it, e.g. target.float()" % (loss_name, data.dtype))
    if data.shape != input.shape:
        raise ValueError("%s: target of shape %s does not match input of shape %s; they must "
                         "have the same shape (reshape one of them: silent broadcasting would "
                         "compare every input with every target)"
                         % (loss_name, tuple(data.shape), tuple(input.shape)))
    if not isinstance(target, Tensor):
        target = Tensor(data, dtype=input.dtype)
    elif target.dtype != input.dtype:
        target = ops.cast(target, input.dtype)
    return target


def _class_weight(loss_name, weight, n_classes, dtype):
    if weight is None:
        return None
    array = np.asarray(_array(weight), dtype=dtype)
    if array.shape != (n_classes,):
        raise ValueError("%s: weight must hold one number per class, shape (C,) = (%d,), got "
                         "shape %s" % (loss_name, n_classes, array.shape))
    return array


def _check_class_indices(loss_name, input_shape, target, ignore_index):
    """Class-index targets: integers, shape (N, d1, ...) for input (N, C, d1, ...), each in
    [0, C) or equal to ``ignore_index``."""
    n_classes = input_shape[1]
    expected = input_shape[:1] + input_shape[2:]
    if target.dtype.kind not in "iu":
        raise TypeError("%s: class-index targets must be integers, got dtype %s and shape %s "
                        "(for class probabilities pass a floating target of the input's shape "
                        "%s)" % (loss_name, target.dtype, target.shape, input_shape))
    if target.shape != expected:
        raise ValueError("%s: input of shape %s (N, C, ...) needs a target of shape (N, ...) = "
                         "%s, got %s" % (loss_name, input_shape, expected, target.shape))
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if np.any(bad):
        value = int(target[bad].flat[0])
        raise IndexError("%s: target %d is out of range for %d classes (valid: 0 to %d, or "
                         "ignore_index=%d)" % (loss_name, value, n_classes, n_classes - 1,
                                               ignore_index))


def _split_target(loss_name, input, target):
    """Class indices (an integer array) or class probabilities (a float Tensor of the input's
    shape): PyTorch's two kinds of cross-entropy target."""
    data = _array(target)
    if data.dtype.kind == "f":
        if data.shape != input.shape:
            raise ValueError("%s: a floating target is read as class probabilities and must "
                             "have the input's shape %s, got %s; for class indices pass an "
                             "integer target of shape (N, ...)"
                             % (loss_name, tuple(input.shape), tuple(data.shape)))
        return _float_target(loss_name, input, target)
    return data


def _batch_first(loss_name, input, target):
    """Input (C,) with a 0-d target is one sample: make it (1, C) and (1,)."""
    if input.ndim == 0:
        raise ValueError("%s: input must have a class axis, shape (C,) or (N, C, ...), got a "
                         "0-d tensor" % loss_name)
    if input.ndim != 1:
        return input, target
    n_classes = input.shape[0]
    input = ops.reshape(input, 1, n_classes)
    if isinstance(target, Tensor):
        return input, ops.reshape(target, 1, n_classes)
    if target.ndim != 0:
        raise ValueError("%s: input of shape (%d,) is one sample of C = %d classes and needs a "
                         "0-d target (one class index), got shape %s"
                         % (loss_name, n_classes, n_classes, target.shape))
    return input, target.reshape(1)


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


# ----- cross-entropy ---------------------------------------------------------------------------
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

    Both come out of one call to ``tinyllm.kernels.fused.softmax_cross_entropy`` in the forward
    pass (the NumPy reference or the fused Numba rows, as the backend chooses), since they share
    the exponentials; the backward only scales the saved gradient by the upstream one.
    """

    @staticmethod
    def forward(ctx, logits, target, ignore_index=-100):
        loss, grad_logits = fused.softmax_cross_entropy(logits, target, ignore_index)
        ctx.save_for_backward(grad_logits)
        return np.asarray(loss)

    @staticmethod
    def backward(ctx, grad):
        (grad_logits,) = ctx.saved_tensors
        return grad_logits * grad, None


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between logits and targets: -sum_c q_c log softmax(z)_c per sample.

    Shapes: ``input`` logits (N, C), (N, C, d1, ...) with the class axis 1 (a (B, T, V) tensor
    of language-model logits goes in as logits.transpose(1, 2), or flattened to (B*T, V)), or
    (C,) for one sample. ``target``: class indices, integers of shape (N,), (N, d1, ...) or ()
    (each in [0, C) or equal to ``ignore_index``), or class probabilities, floats of the
    input's shape. ``weight``: (C,) weight per class (a rescaling, not differentiated).
    ``label_smoothing`` eps mixes the one-hot target with the uniform distribution:
    (1 - eps) onehot(y) + eps / C. Targets equal to ``ignore_index`` (padding) contribute
    nothing and are left out of the mean's denominator; if every target is ignored the mean is
    0 / 0 = NaN, as in PyTorch.

    The math (forward and the closed-form backward dL/dz = softmax(z) - onehot(y)) is in the
    docstring of ``CrossEntropy``; the common case (logits (N, C), class indices, no weight,
    no smoothing, "mean") runs the one-kernel ``SoftmaxCrossEntropy``.
    """
    check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError("cross_entropy: label_smoothing must lie in [0, 1], got %r"
                         % (label_smoothing,))
    input = _as_tensor(input)
    one_sample = input.ndim == 1
    target = _split_target("cross_entropy", input, target)
    input, target = _batch_first("cross_entropy", input, target)
    if not isinstance(target, Tensor):
        _check_class_indices("cross_entropy", input.shape, target, ignore_index)
    if (input.ndim == 2 and not isinstance(target, Tensor) and weight is None
            and label_smoothing == 0.0 and reduction == "mean"):
        return SoftmaxCrossEntropy.apply(input, target, ignore_index=ignore_index)
    weight = _class_weight("cross_entropy", weight, input.shape[1], input.dtype)
    loss = CrossEntropy.apply(input, target, weight=weight, ignore_index=ignore_index,
                              reduction=reduction, label_smoothing=float(label_smoothing))
    if one_sample and reduction == "none":
        loss = ops.reshape(loss, ())
    return loss


# ----- negative log-likelihood ----------------------------------------------------------------
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


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood: l_i = -w_{y_i} input[i, y_i], for ``input`` log-probabilities.

    Shapes as ``cross_entropy`` with class-index targets: input (N, C, d1, ...) or (C,), target
    (N, d1, ...) or (). ``nll_loss(log_softmax(z, dim=1), y)`` equals ``cross_entropy(z, y)``.
    """
    check_reduction("nll_loss", reduction)
    input = _as_tensor(input)
    one_sample = input.ndim == 1
    target = _array(target)
    input, target = _batch_first("nll_loss", input, target)
    _check_class_indices("nll_loss", input.shape, target, ignore_index)
    weight = _class_weight("nll_loss", weight, input.shape[1], input.dtype)
    loss = NLLLoss.apply(input, target, weight=weight, ignore_index=ignore_index,
                         reduction=reduction)
    if one_sample and reduction == "none":
        loss = ops.reshape(loss, ())
    return loss


# ----- the elementwise losses -----------------------------------------------------------------
def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return ops.sum(loss) if reduction == "sum" else ops.mean(loss)


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


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy for probabilities x in [0, 1] (after a sigmoid) and targets y:

        l = -w (y log x + (1 - y) log(1 - x)),   logs clamped to >= -100 as in PyTorch.

    Example: y = 1, x = 0.9 gives -log 0.9 = 0.1053605; y = 0, x = 0.1 gives the same.
    Shapes: input and target the same shape; ``weight`` broadcasts to it (not differentiated).
    Values of x outside [0, 1] (NaN included) raise an error. Prefer
    ``binary_cross_entropy_with_logits`` on the logits: it is stable where x rounds to 0 or 1.
    """
    check_reduction("binary_cross_entropy", reduction)
    input = _as_tensor(input)
    target = _float_target("binary_cross_entropy", input, target)
    outside = ~((input.data >= 0) & (input.data <= 1))      # written so that NaN is outside too
    if np.any(outside):
        value = input.data[outside].flat[0]
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1], found "
                         "%r (%d value(s) outside); for logits use "
                         "binary_cross_entropy_with_logits" % (float(value), int(outside.sum())))
    weight = _constant("binary_cross_entropy", "weight", weight, input.dtype, input.shape)
    return _reduce(BinaryCrossEntropy.apply(input, target, weight=weight), reduction)


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


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of sigmoid(input) and target, computed stably from the logits:

        l = w (max(x, 0) - x y + log(1 + e^-|x|))      (pos_weight p = 1)

    Shapes: input and target the same shape; ``weight`` broadcasts to it; ``pos_weight``
    broadcasts along the last axis, usually one number per class (C,), multiplying the loss of
    the positive examples (p > 1 favours recall). Neither is differentiated. The derivation and
    the gradient dl/dx = sigmoid(x) - y are in ``BinaryCrossEntropyWithLogits``.
    """
    name = "binary_cross_entropy_with_logits"
    check_reduction(name, reduction)
    input = _as_tensor(input)
    target = _float_target(name, input, target)
    weight = _constant(name, "weight", weight, input.dtype, input.shape)
    pos_weight = _constant(name, "pos_weight", pos_weight, input.dtype, input.shape)
    loss = BinaryCrossEntropyWithLogits.apply(input, target, weight=weight,
                                              pos_weight=pos_weight)
    return _reduce(loss, reduction)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error: l = (x - y)^2 elementwise;  dl/dx = 2 (x - y), dl/dy = -2 (x - y).

    Shapes: input and target the same shape. (PyTorch only warns when they differ and then
    broadcasts, so an (N, 1) prediction against an (N,) target silently becomes an (N, N)
    comparison; here it is an error.) The backward is autograd's, through - * and the reduction.
    """
    check_reduction("mse_loss", reduction)
    input = _as_tensor(input)
    target = _float_target("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


# ----- Kullback-Leibler divergence ------------------------------------------------------------
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


def kl_div(input, target, reduction="mean", log_target=False):
    """KL(P || Q) = sum p (log p - log q), with ``input`` = log q (log-probabilities, e.g. from
    log_softmax) and ``target`` = p (or log p when ``log_target=True``).

    Note the order, as in PyTorch: the input is the model's distribution Q in log space and the
    target P is the distribution it should match. Shapes: input and target the same shape.
    Reductions: "batchmean" divides the sum by the batch size input.shape[0] (the mathematical
    KL divergence per sample; use it), "mean" by the number of elements (PyTorch's default,
    which is the KL divergence divided by the number of classes too), "sum", "none".
    """
    valid = ("none", "batchmean", "sum", "mean")
    check_reduction("kl_div", reduction, valid)
    input = _as_tensor(input)
    target = _float_target("kl_div", input, target)
    loss = KLDiv.apply(input, target, log_target=log_target)
    if reduction == "batchmean":
        total = ops.sum(loss)
        return total / input.shape[0] if input.ndim > 0 else total
    return _reduce(loss, reduction)


def distillation_loss(student_logits, teacher_logits, temperature=2.0, reduction="batchmean",
                      axis=-1):
    """Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
    Network", 2015): the teacher's softened outputs are the student's targets.

        L = T^2 KL(softmax(teacher / T) || softmax(student / T))

    computed as ``kl_div(log_softmax(student / T), log_softmax(teacher / T), log_target=True)``
    (both in log space: no log of a softmax that underflowed to 0). A temperature T > 1
    flattens both distributions so that the teacher's "dark knowledge" (which wrong classes it
    finds almost right) carries weight; the gradient of the softened loss shrinks like 1 / T^2,
    so the factor T^2 keeps its size independent of T when it is mixed with the ordinary
    cross-entropy on hard labels.

    Shapes: logits (N, C) or (N, ..., C) with the classes along ``axis`` (default the last);
    "batchmean" divides by N (for (B, T, V) language-model logits, flatten to (B*T, V) first
    for a per-token mean). The teacher's logits are targets: no gradient flows to them.
    """
    if temperature <= 0:
        raise ValueError("distillation_loss: temperature must be positive, got %r"
                         % (temperature,))
    student_logits, teacher_logits = _as_tensor(student_logits), _as_tensor(teacher_logits)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError("distillation_loss: student logits of shape %s and teacher logits of "
                         "shape %s differ" % (tuple(student_logits.shape),
                                              tuple(teacher_logits.shape)))
    log_q = ops.log_softmax(student_logits / temperature, axis)
    log_p = ops.log_softmax(teacher_logits.detach() / temperature, axis)
    return kl_div(log_q, log_p, reduction=reduction, log_target=True) * temperature ** 2
