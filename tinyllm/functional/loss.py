"""Loss functions: how far a model's outputs are from the targets, as one number to minimise.

Every loss computes a pointwise loss l_i (one per sample, or per element) and then reduces it:

- ``reduction="none"``: the l_i themselves, one per sample (or element);
- ``reduction="sum"``:  sum_i l_i;
- ``reduction="mean"``: the average (for ``cross_entropy`` and ``nll_loss`` with class weights,
  the weighted average sum_i l_i / sum_i w[y_i], as in PyTorch).

Names, arguments, defaults and results follow ``torch.nn.functional``, so code and numbers
transfer in both directions. Class weights (``weight``, ``pos_weight``) are constants: no
gradient flows to them.

The classification losses are single ops (``tinyllm.ops.loss``) with their backward in closed
form, because the closed form is both the fast way and the formula worth knowing:
cross-entropy's gradient with respect to the logits is softmax(z) - onehot(y), and binary
cross-entropy's with respect to the logit is sigmoid(x) - y.
"""

import numpy as np

from tinyllm import ops
from tinyllm.autograd import Tensor
from tinyllm.ops.loss import (BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy,
                              KLDiv, NLLLoss, SoftmaxCrossEntropy)

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


# ----- cross-entropy ---------------------------------------------------------------------------
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
