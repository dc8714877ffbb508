"""Step losses (chapter 2): softmax, log-softmax and the losses that train a classifier.

Each is a ``Function`` with a backward derived by hand on arrays, so a loss is one node of the
graph, not a chain of exp, sum, log and indexing nodes. Shapes follow the chapter: logits Z
(N, C), integer targets y (N,), probabilities P = softmax(Z) (N, C).

The dtype of the input is kept: float32 logits give a float32 loss and float32 gradients
(the training step runs in float32).
"""

import numpy as np

from mytl.autograd import Function, Tensor


def _data(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# ----- softmax and log-softmax ------------------------------------------------------------------
class Softmax(Function):
    """y = softmax(x) along ``axis``: y_i = exp(x_i - max x) / sum_j exp(x_j - max x).

    Subtracting the max changes nothing (it cancels between numerator and denominator) and
    keeps exp from overflowing: every exponent is <= 0.
    Backward, without the C x C Jacobian dy_i/dx_j = y_i (delta_ij - y_j):
    dL/dx = y * (g - sum(g * y, axis)).
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = log softmax(x) along ``axis``: y_i = (x_i - m) - log sum_j exp(x_j - m), m = max x.

    Backward: dy_i/dx_j = delta_ij - softmax(x)_j, so dL/dx = g - softmax(x) * sum(g, axis).
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad - np.exp(y) * grad.sum(axis=ctx.axis, keepdims=True)


def softmax(x, axis=-1):
    """softmax(x) along ``axis`` (a Tensor of x's shape; each slice sums to 1)."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1):
    """log softmax(x) along ``axis``, computed without taking the log of a rounded 0."""
    return LogSoftmax.apply(x, axis=axis)


# ----- cross-entropy ----------------------------------------------------------------------------
class CrossEntropy(Function):
    """L = -(1/N') sum_{n kept} log softmax(Z)[n, y_n]: softmax and negative log-likelihood in one.

    Z (N, C) logits, y (N,) integer targets; rows with y_n == ignore_index are left out, and
    N' is the number of rows kept (all ignored: 0 / 0 = NaN, as in PyTorch).
    Backward: dL/dZ = (softmax(Z) - onehot(y)) / N' on the kept rows, 0 on the ignored ones.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-100):
        targets = np.asarray(targets)
        kept = targets != ignore_index
        count = int(kept.sum())
        rows = np.nonzero(kept)[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = -log_probs[rows, targets[rows]].sum() / count
        ctx.save_for_backward(log_probs)
        ctx.rows, ctx.classes, ctx.count = rows, targets[rows], count
        return np.asarray(loss, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        (log_probs,) = ctx.saved_tensors
        dz = np.zeros_like(log_probs)
        dz[ctx.rows] = np.exp(log_probs[ctx.rows])
        dz[ctx.rows, ctx.classes] -= 1.0
        dz *= grad / ctx.count
        return dz.astype(log_probs.dtype, copy=False), None


def cross_entropy(logits, targets, ignore_index=-100):
    """The mean cross-entropy of logits (N, C) and integer targets (N,), a 0-d Tensor.

    ``targets`` is an integer array or an integer Tensor, each in [0, C) or equal to
    ``ignore_index`` (padding: left out of the sum and of the count N').
    Raises ValueError naming both shapes if logits are not 2-D or targets are not (N,), and
    naming the target and C if a target lies outside [0, C) and is not ``ignore_index``.
    """
    logits_shape = _data(logits).shape
    target_array = _data(targets)
    if len(logits_shape) != 2 or target_array.shape != logits_shape[:1]:
        raise ValueError("cross_entropy: logits of shape %s and targets of shape %s do not "
                         "match; expected logits (N, C) and targets (N,)"
                         % (logits_shape, target_array.shape))
    if target_array.dtype.kind not in "iu":
        raise ValueError("cross_entropy: targets must be integer class indices, got dtype %s"
                         % target_array.dtype)
    C = logits_shape[1]
    bad = (target_array != ignore_index) & ((target_array < 0) | (target_array >= C))
    if np.any(bad):
        raise ValueError("cross_entropy: target %d is outside [0, C) for C = %d (and is not "
                         "ignore_index = %d)" % (target_array[bad][0], C, ignore_index))
    return CrossEntropy.apply(logits, target_array, ignore_index=ignore_index)


# ----- binary cross-entropy and mean squared error ----------------------------------------------
class BinaryCrossEntropy(Function):
    """L = -(1/n) sum [y log p + (1 - y) log(1 - p)] over all n elements.

    p: probabilities in (0, 1) (after a sigmoid); y: targets of p's shape, 0/1 or soft.
    Backward: dL/dp = (p - y) / (p (1 - p)) / n; the targets get no gradient.
    """

    @staticmethod
    def forward(ctx, probs, targets):
        targets = np.asarray(targets, dtype=probs.dtype)
        loss = -np.mean(targets * np.log(probs) + (1 - targets) * np.log(1 - probs))
        ctx.save_for_backward(probs, targets)
        return np.asarray(loss, dtype=probs.dtype)

    @staticmethod
    def backward(ctx, grad):
        probs, targets = ctx.saved_tensors
        dp = (probs - targets) / (probs * (1 - probs)) * grad / probs.size
        return dp.astype(probs.dtype, copy=False), None


def binary_cross_entropy(probs, targets):
    """The mean binary cross-entropy of probabilities and targets of the same shape (a 0-d
    Tensor). Raises ValueError naming both shapes if they differ."""
    if _data(probs).shape != _data(targets).shape:
        raise ValueError("binary_cross_entropy: probs of shape %s and targets of shape %s "
                         "differ" % (_data(probs).shape, _data(targets).shape))
    return BinaryCrossEntropy.apply(probs, targets)


class _MSELoss(Function):
    """L = (1/n) sum (pred - target)^2. dL/dpred = 2 (pred - target) / n = -dL/dtarget."""

    @staticmethod
    def forward(ctx, pred, target):
        diff = pred - np.asarray(target, dtype=pred.dtype)
        ctx.save_for_backward(diff)
        return np.asarray(np.mean(diff * diff), dtype=pred.dtype)

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        d = 2 * diff * grad / diff.size
        return d, -d


def mse_loss(pred, target):
    """The mean squared error of pred and target (same shape), a 0-d Tensor. Raises
    ValueError naming both shapes if they differ."""
    if _data(pred).shape != _data(target).shape:
        raise ValueError("mse_loss: pred of shape %s and target of shape %s differ"
                         % (_data(pred).shape, _data(target).shape))
    return _MSELoss.apply(pred, target)
