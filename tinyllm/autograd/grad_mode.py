"""Switches that change what the autograd engine records: ``no_grad`` and ``detect_anomaly``.

Both are global flags, as in PyTorch. ``no_grad`` is used for evaluation and for optimizer
updates (nothing is recorded, so no memory is kept for a backward pass); ``detect_anomaly``
makes the engine check every gradient it computes and name the op whose backward produced a
NaN or an infinity.
"""

import functools

_grad_enabled = True
_anomaly_enabled = False


def is_grad_enabled():
    """True when operations on tensors that require grad are recorded for ``backward``."""
    return _grad_enabled


def is_anomaly_enabled():
    """True inside ``detect_anomaly()``."""
    return _anomaly_enabled


class _FlagContext:
    """A context manager (and decorator) that sets one module flag and restores it on exit."""

    flag_name = ""
    value = None

    def __enter__(self):
        self._previous = globals()[self.flag_name]
        globals()[self.flag_name] = self.value
        return self

    def __exit__(self, *exc_info):
        globals()[self.flag_name] = self._previous
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return function(*args, **kwargs)

        return wrapper


class no_grad(_FlagContext):
    """Record nothing inside this block: results have ``requires_grad=False``.

    >>> with tinyllm.no_grad():
    ...     y = w * 2          # y.requires_grad is False even if w requires grad

    Also usable as a decorator: ``@tinyllm.no_grad()``.
    """

    flag_name = "_grad_enabled"
    value = False

    def __new__(cls, function=None):
        instance = super().__new__(cls)
        if function is not None:            # used as a decorator without parentheses
            return instance(function)
        return instance


class enable_grad(_FlagContext):
    """Turn recording back on inside a ``no_grad`` block."""

    flag_name = "_grad_enabled"
    value = True


class set_grad_enabled(_FlagContext):
    """``with set_grad_enabled(mode):`` records only when ``mode`` is True."""

    flag_name = "_grad_enabled"

    def __init__(self, mode):
        self.value = bool(mode)

    def __call__(self, function):
        mode = self.value

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return function(*args, **kwargs)

        return wrapper


class detect_anomaly(_FlagContext):
    """Check every gradient the backward pass computes for NaN and infinity.

    When an op's backward returns a non-finite value, ``backward`` stops with an error that
    names the op and shows where in your code the op was created. Slower: use it to debug.
    """

    flag_name = "_anomaly_enabled"
    value = True
