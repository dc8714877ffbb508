"""Loss modules: the losses of ``tinyllm.functional.loss`` with their options stored.

    criterion = nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    loss = criterion(logits, targets)

Class weights (``weight``, ``pos_weight``) are registered as buffers, as in PyTorch: they are
part of ``state_dict()`` and follow ``module.to(dtype)``, but are not trained.
"""

from tinyllm.autograd import Tensor
from tinyllm.functional.loss import (REDUCTIONS, binary_cross_entropy,
                                     binary_cross_entropy_with_logits, check_reduction,
                                     cross_entropy, kl_div, mse_loss, nll_loss)
from tinyllm.nn.module import Module


def _buffer(value):
    """A weight given as a list or array becomes a tensor (None stays None)."""
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(value)


class _Loss(Module):
    """Shared by the loss modules: checks and stores ``reduction``."""

    valid_reductions = REDUCTIONS

    def __init__(self, reduction="mean"):
        super().__init__()
        check_reduction(type(self).__name__, reduction, self.valid_reductions)
        self.reduction = reduction

    def extra_repr(self):
        return "" if self.reduction == "mean" else "reduction=%r" % self.reduction


class CrossEntropyLoss(_Loss):
    """``F.cross_entropy`` as a module: logits (N, C, ...) and class indices (N, ...) or class
    probabilities (N, C, ...) -> the loss. See ``tinyllm.functional.loss.cross_entropy``."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        options = [] if self.reduction == "mean" else ["reduction=%r" % self.reduction]
        if self.ignore_index != -100:
            options.append("ignore_index=%d" % self.ignore_index)
        if self.label_smoothing:
            options.append("label_smoothing=%g" % self.label_smoothing)
        return ", ".join(options)


class NLLLoss(_Loss):
    """``F.nll_loss`` as a module: log-probabilities (N, C, ...) and class indices (N, ...)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class BCELoss(_Loss):
    """``F.binary_cross_entropy`` as a module: probabilities in [0, 1] and targets, same shape."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))

    def forward(self, input, target):
        return binary_cross_entropy(input, target, weight=self.weight,
                                    reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``F.binary_cross_entropy_with_logits`` as a module: logits and targets, same shape;
    the stable choice for binary and multi-label classification."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class MSELoss(_Loss):
    """``F.mse_loss`` as a module: (x - y)^2, reduced."""

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class KLDivLoss(_Loss):
    """``F.kl_div`` as a module: input log-probabilities, target probabilities (or
    log-probabilities with ``log_target=True``). Use ``reduction="batchmean"`` for the true
    KL divergence per sample."""

    valid_reductions = ("none", "batchmean", "sum", "mean")

    def __init__(self, reduction="mean", log_target=False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
