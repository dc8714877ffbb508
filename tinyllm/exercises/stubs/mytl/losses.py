"""Step losses (chapter 2): softmax, log-softmax and the losses that train a classifier.

Each is a ``Function`` (from step autograd) whose backward you derive by hand on arrays, so a
loss is one node of the graph, not a chain of exp, sum, log and indexing nodes. Shapes follow
the chapter: logits Z (N, C), integer targets y (N,), probabilities P = softmax(Z) (N, C).

Keep the input's dtype: float32 logits give a float32 loss and float32 gradients (the
training step runs in float32). Everything else is float64.

You write: ``Softmax``, ``LogSoftmax``, ``CrossEntropy``, ``BinaryCrossEntropy`` (forward and
backward) and the functions ``softmax``, ``log_softmax``, ``cross_entropy``,
``binary_cross_entropy`` and ``mse_loss`` that call them.
"""

import numpy as np

from mytl.autograd import Function, Tensor


def _data(x):
    """The array inside a Tensor, or ``x`` as an array."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# ----- softmax and log-softmax ------------------------------------------------------------------
class Softmax(Function):
    """y = softmax(x) along ``axis``: y_i = exp(x_i) / sum_j exp(x_j).

    x of any shape; y has x's shape and sums to 1 along ``axis``. Must stay finite for x
    near +-1000 (exp(1000) overflows float64). The backward must not build the C x C
    Jacobian: a few array operations on y and the upstream gradient suffice.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class LogSoftmax(Function):
    """y = log softmax(x) along ``axis``: y_i = x_i - log sum_j exp(x_j).

    Finite for x near +-1000, where log(softmax(x)) would take the log of a rounded 0.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


def softmax(x, axis=-1):
    """softmax(x) along ``axis``: a Tensor of x's shape (calls Softmax)."""
    raise NotImplementedError


def log_softmax(x, axis=-1):
    """log softmax(x) along ``axis``: a Tensor of x's shape (calls LogSoftmax)."""
    raise NotImplementedError


# ----- cross-entropy ----------------------------------------------------------------------------
class CrossEntropy(Function):
    """L = -(1/N') sum_{n kept} log softmax(Z)[n, y_n]: softmax and negative log-likelihood in one.

    ``forward(ctx, logits, targets, ignore_index=-100)``: Z (N, C) logits, y (N,) integer
    targets; rows with y_n == ignore_index are left out of the sum, and N' is the number of
    rows kept. Returns a 0-d array of the logits' dtype. Stable for logits near +-1000.
    ``backward`` returns (dL/dZ, None): the targets get no gradient. One closed-form
    expression, no softmax Jacobian.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-100):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


def cross_entropy(logits, targets, ignore_index=-100):
    """The mean cross-entropy of logits (N, C) and integer targets (N,): a 0-d Tensor.

    ``targets`` is an integer array or an integer Tensor, each in [0, C) or equal to
    ``ignore_index`` (padding: left out of the sum and of the count). Raises ValueError:

    - if logits are not 2-D or targets are not of shape (N,), naming both shapes:
      ``cross_entropy: logits of shape (4, 5) and targets of shape (3,) do not match``;
    - if a target is outside [0, C) and is not ignore_index, naming the target and C:
      ``cross_entropy: target 7 is outside [0, C) for C = 5``.
    """
    raise NotImplementedError


# ----- binary cross-entropy and mean squared error ----------------------------------------------
class BinaryCrossEntropy(Function):
    """L = -(1/n) sum [y log p + (1 - y) log(1 - p)], the mean over all n elements.

    ``forward(ctx, probs, targets)``: p probabilities in (0, 1) (after a sigmoid), y targets
    of p's shape (0/1, or soft targets in [0, 1]). Returns a 0-d array of p's dtype.
    ``backward`` returns (dL/dp, None): the targets get no gradient.
    Worked example: y = 1, p = 0.9 gives -log 0.9 = 0.1053605.
    """

    @staticmethod
    def forward(ctx, probs, targets):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


def binary_cross_entropy(probs, targets):
    """The mean binary cross-entropy (calls BinaryCrossEntropy): a 0-d Tensor. Raises
    ValueError naming both shapes if probs and targets differ in shape."""
    raise NotImplementedError


def mse_loss(pred, target):
    """L = (1/n) sum (pred - target)^2, the mean over all n elements: a 0-d Tensor.

    pred and target (Tensors or arrays) of the same shape; both get gradients if they require
    them. Compose it from the Tensor operators of the steps before (``-``, ``**``,
    ``.mean()``) or write a Function. Raises ValueError naming both shapes if they differ.
    """
    raise NotImplementedError
