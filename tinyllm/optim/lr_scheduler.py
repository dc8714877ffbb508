"""Learning-rate schedules: change each parameter group's ``lr`` as training goes on.

A scheduler wraps an optimizer. Creating it records every group's starting lr as
``group["initial_lr"]`` (the *base* lr) and sets the lr for step 0; each ``scheduler.step()``,
called after ``optimizer.step()``, moves to the next step and writes that step's lr into the
groups::

    scheduler = CosineAnnealingLR(optimizer, T_max=1000)
    for step in range(1000):
        ...; loss.backward(); optimizer.step(); optimizer.zero_grad()
        scheduler.step()

``last_epoch`` counts the steps taken (-1 before the first, as in PyTorch, so creating the
scheduler brings it to 0). Each schedule here is written in closed form, lr = f(last_epoch,
base lr); PyTorch computes the same values recursively from the previous lr (so that its
schedulers can be chained), which agrees with the closed form to floating-point rounding.
"""

import math
import types
from bisect import bisect_right

from tinyllm.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``get_lr()``, the lrs at step ``last_epoch``.

    ``last_epoch=-1`` starts a new schedule. To resume one, pass the step it stopped at; the
    optimizer's groups must then hold ``"initial_lr"`` (load the optimizer's state dict first).
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError("%s: expected an Optimizer, got %s"
                            % (type(self).__name__, type(optimizer).__name__))
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError("%s: 'initial_lr' is not set in param_groups[%d], needed to "
                                   "resume a schedule at last_epoch=%d; load the optimizer's "
                                   "state dict (saved while a scheduler was attached) first"
                                   % (type(self).__name__, i, last_epoch))
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        """The lr of each group at step ``self.last_epoch``."""
        raise NotImplementedError("%s must define get_lr()" % type(self).__name__)

    def step(self):
        """Advance one step and set every group's lr for it."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The lrs the last ``step()`` set, one per group."""
        return self._last_lr

    def state_dict(self):
        """Everything but the optimizer (save the optimizer's own state dict beside it)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step): any schedule written as a function.

    ``lr_lambda`` is one function for every group, or a list with one per group. The
    functions themselves are not saved by ``state_dict()`` (only the attributes of callable
    objects are), so a resumed scheduler must be created with the same functions.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n_groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n_groups:
                raise ValueError("LambdaLR: expected %d lr_lambdas (one per parameter group), "
                                 "got %d" % (n_groups, len(lr_lambda)))
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n_groups
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas,
                                                                     self.base_lrs)]

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items()
                 if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved_lambdas = state.pop("lr_lambdas")
        self.__dict__.update(state)
        for fn, saved in zip(self.lr_lambdas, saved_lambdas):
            if saved is not None:
                fn.__dict__.update(saved)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (step // step_size): multiply by gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError("StepLR: step_size must be a positive integer, got %r" % (step_size,))
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= step): multiply by gamma at each
    milestone (a milestone listed twice multiplies twice)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = sorted(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        passed = bisect_right(self.milestones, self.last_epoch)
        return [base_lr * self.gamma ** passed for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** step."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """lr = base_lr * factor(step), the factor moving linearly from start_factor to end_factor
    over total_iters steps and staying there::

        factor = start_factor + (end_factor - start_factor) * min(step, total_iters) / total_iters
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0.0 < start_factor <= 1.0:
            raise ValueError("LinearLR: start_factor must lie in (0, 1], got %r" % start_factor)
        if not 0.0 <= end_factor <= 1.0:
            raise ValueError("LinearLR: end_factor must lie in [0, 1], got %r" % end_factor)
        if total_iters <= 0:
            raise ValueError("LinearLR: total_iters must be positive, got %r" % total_iters)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        progress = min(self.total_iters, self.last_epoch) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base_lr * factor for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from base_lr down to eta_min over T_max steps::

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2

    After T_max steps the cosine goes on (the lr climbs back), as in PyTorch; stop training at
    T_max or use ``WarmupCosineLR``, which stays at its minimum.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError("CosineAnnealingLR: T_max must be positive, got %r" % T_max)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]


def warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warm-up, then cosine decay: the schedule of nanoGPT's ``get_lr(it)``.

    For step s = 0, 1, 2, ... (w = warmup_steps, T = total_steps)::

        s < w:         lr = base_lr * (s + 1) / (w + 1)
        w <= s <= T:   lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (s - w) / (T - w))) / 2
        s > T:         lr = min_lr

    The warm-up climbs the straight line from 0 (at s = -1) to base_lr (at s = w), where the
    cosine takes over; counting from s + 1 means the first step already learns (a warm-up of
    base_lr * s / w would waste step 0 with lr = 0). Warm-up keeps the first updates small
    while Adam's second-moment estimates are still noisy.

    Use it directly (``group["lr"] = warmup_cosine_lr(step, ...)``), for plots, through
    ``WarmupCosineLR``, or as a factor with ``LambdaLR``:
    ``lambda s: warmup_cosine_lr(s, 1.0, w, T, min_lr / base_lr)``.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError("warmup_cosine_lr: need 0 <= warmup_steps < total_steps, got "
                         "warmup_steps=%r, total_steps=%r" % (warmup_steps, total_steps))
    if step < warmup_steps:
        return base_lr * (step + 1) / (warmup_steps + 1)
    if step > total_steps:
        return min_lr
    decay_ratio = (step - warmup_steps) / (total_steps - warmup_steps)
    cosine = (1 + math.cos(math.pi * decay_ratio)) / 2
    return min_lr + (base_lr - min_lr) * cosine


class WarmupCosineLR(LRScheduler):
    """Linear warm-up over ``warmup_steps``, cosine decay to ``min_lr`` at ``total_steps``,
    then ``min_lr``: ``lr = warmup_cosine_lr(step, base_lr, warmup_steps, total_steps,
    min_lr)`` for each group (see that function for the formula)."""

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0, last_epoch=-1):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError("WarmupCosineLR: need 0 <= warmup_steps < total_steps, got "
                             "warmup_steps=%r, total_steps=%r" % (warmup_steps, total_steps))
        if min_lr < 0:
            raise ValueError("WarmupCosineLR: min_lr must be >= 0, got %r" % min_lr)
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr = min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [warmup_cosine_lr(self.last_epoch, base_lr, self.warmup_steps, self.total_steps,
                                 self.min_lr) for base_lr in self.base_lrs]
