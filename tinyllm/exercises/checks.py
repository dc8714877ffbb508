"""The autograder's machinery: load a solution file, run an exercise's checks, report each one.

    python -m tinyllm.exercises check softmax my_softmax.py

prints one line per check and a summary::

    PASS forward_matches_F.softmax  worst |err| 1.1e-16 at index (2, 3)
    FAIL backward_matches_autograd  worst |err| 4.2e-01 at index (0, 1) of dx: expected
         0.21, got -0.21 (allowed |err| <= 1e-09 + 1e-07 * |expected|)
    1 passed, 1 failed

(each FAIL is one line). A check compares numbers the solution computes with numbers computed
independently: a reference implementation in tinyllm, autograd through tensor ops, a formula
worked by hand, or central differences (the numerical gradient). Element x passes when

    |got - expected| <= atol + rtol * |expected|,

and the line names the element that is furthest outside (or, for a PASS, the largest |err|).

Gradients are checked on the scalar L = sum_k sum(r_k * output_k) with fixed random weights
r_k, so the backward pass receives a random upstream gradient dL/d output_k = r_k: a backward
that is right only for an upstream gradient of ones (or only for one output) fails. Everything
runs in float64, where central differences are good to about 1e-9 (see ``tinyllm.gradcheck``).

A check that raises an exception fails with the exception's type, message and the line of the
solution file it came from; the other checks still run. Exit status (for a course's
autograder): 0 when every check passes, 1 when any fails; usage errors (unknown exercise,
missing file) are 2 and are raised here as ``UsageError``.
"""

import importlib.util
import itertools
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllm.autograd import Tensor, no_grad, tensor
from tinyllm.gradcheck import numerical_grad

# Default tolerances. Values computed two different ways in float64 agree to ~1e-12; central
# differences (eps = 1e-6) are good to ~1e-9 relative. A wrong formula is off by ~1e-1.
VALUE_ATOL, VALUE_RTOL = 1e-9, 1e-7
NUMERICAL_ATOL, NUMERICAL_RTOL = 1e-6, 1e-5


class UsageError(Exception):
    """A mistake in how the checker was called (exit status 2), not in the solution."""


class SolutionError(Exception):
    """The solution file lacks something a check needs (a class, a function, a result)."""


@dataclass
class Outcome:
    """The result of one check: did it pass, and the numbers that say why."""
    passed: bool
    detail: str


# ----- loading a solution ----------------------------------------------------------------------
_loaded = itertools.count()


def load_solution(path):
    """Import the Python file at ``path`` as a fresh module (each call loads it anew)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("no such file: %s" % path)
    name = "tinyllm_exercise_solution_%d" % next(_loaded)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise UsageError("cannot load %s as Python (is it a .py file?)" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module      # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def require(solution, name):
    """``solution.name``, or a SolutionError saying that the file must define it."""
    if not hasattr(solution, name):
        raise SolutionError("the solution file defines no %r (keep the stub's name)" % name)
    return getattr(solution, name)


# ----- comparing numbers -----------------------------------------------------------------------
def as_array(x):
    """A float64 NumPy array from a Tensor, an array or a number."""
    if isinstance(x, Tensor):
        x = x.data
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise SolutionError("expected numbers (an array or a Tensor), got %s"
                            % type(x).__name__) from None


def _index_text(index, shape):
    return "" if len(shape) == 0 else " at index %s" % (tuple(int(i) for i in index),)


def compare_all(cases, atol=VALUE_ATOL, rtol=VALUE_RTOL, hint=None):
    """Compare several (label, got, expected) triples; the worst element of all decides.

    Equal infinities count as equal (top-p's -inf entries); NaN never does. ``hint`` is
    added to a failure's line (a likely cause, e.g. "subtract the max before exp").
    """
    worst = None        # (rank, abs error, label, index, got, expected, shape)
    for label, got, expected in cases:
        got, expected = as_array(got), as_array(expected)
        where = "" if label is None else " of %s" % label
        if got.shape != expected.shape:
            return Outcome(False, "wrong shape%s: expected %s, got %s"
                           % (where, expected.shape, got.shape))
        if got.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            error = np.where(got == expected, 0.0, np.abs(got - expected))
        error = np.where(np.isnan(error), np.inf, error)
        allowed = atol + rtol * np.where(np.isfinite(expected), np.abs(expected), 0.0)
        excess = error - allowed
        failing = bool(np.any(excess > 0))
        # The element to report: the one furthest outside its tolerance, else the largest error.
        index = np.unravel_index(int(np.argmax(excess if failing else error)), error.shape)
        rank = (failing, float(excess[index] if failing else error[index]))
        if worst is None or rank > worst[0]:
            worst = (rank, float(error[index]), where, index, float(got[index]),
                     float(expected[index]), error.shape)
    if worst is None:
        return Outcome(True, "nothing to compare")
    (failing, _), error, where, index, got, expected, shape = worst
    text = "worst |err| %.1e%s%s" % (error, _index_text(index, shape), where)
    if not failing:
        return Outcome(True, text)
    return Outcome(False, "%s: expected %.10g, got %.10g (allowed |err| <= %g + %g * |expected|)%s"
                   % (text, expected, got, atol, rtol, "; hint: " + hint if hint else ""))


def compare(got, expected, atol=VALUE_ATOL, rtol=VALUE_RTOL, label=None, hint=None):
    """Compare one result with its expected value elementwise (see ``compare_all``)."""
    return compare_all([(label, got, expected)], atol, rtol, hint)


# ----- gradients -------------------------------------------------------------------------------
def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _output_weights(outputs, seed):
    """The fixed random r_k of L = sum_k sum(r_k * output_k), one per output."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(as_array(o).shape) for o in outputs]


def _loss(fn, arrays, seed):
    """L = sum_k sum(r_k * fn(*arrays)_k) as a float, without recording a graph."""
    with no_grad():
        outputs = _as_tuple(fn(*[tensor(a, dtype=np.float64) for a in arrays]))
    weights = _output_weights(outputs, seed)
    return sum(float(np.sum(as_array(o) * r)) for o, r in zip(outputs, weights))


def autograd_gradients(fn, arrays, seed=0):
    """dL/d(each array) by backpropagation, L = sum_k sum(r_k * fn(*arrays)_k).

    ``fn`` receives float64 leaf tensors and returns a tensor or a tuple of tensors; an input
    that no gradient reached gives None.
    """
    leaves = [tensor(np.array(a, dtype=np.float64), requires_grad=True, dtype=np.float64)
              for a in arrays]
    outputs = _as_tuple(fn(*leaves))
    weights = _output_weights(outputs, seed)
    total = None
    for out, r in zip(outputs, weights):
        if not isinstance(out, Tensor):
            raise SolutionError("expected a Tensor from Function.apply, got %s"
                                % type(out).__name__)
        term = (out * tensor(r, dtype=np.float64)).sum()
        total = term if total is None else total + term
    if total.requires_grad:
        total.backward()
    return [leaf.grad for leaf in leaves]


def numerical_gradients(fn, arrays, seed=0, eps=1e-6):
    """dL/d(each array) by central differences (L as in ``autograd_gradients``)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for i, x in enumerate(arrays):
        def loss_of(value, i=i):
            return _loss(fn, arrays[:i] + [value] + arrays[i + 1:], seed)
        grads.append(numerical_grad(loss_of, x, eps=eps))
    return grads


def _gradient_cases(labels, got, expected):
    cases = []
    for label, g, e in zip(labels, got, expected):
        if g is None:
            raise SolutionError("no gradient reached %s: did backward return None for it?"
                                % label)
        cases.append((label, g, e))
    return cases


def backward_cases(fn, reference, arrays, labels, seed=0):
    """(label, the solution's gradient, autograd's gradient through ``reference``) per input.

    ``fn`` and ``reference`` take the same float64 tensors; ``labels`` name the inputs
    ("dx"). Give the list to ``compare_all``, alone or joined with other cases.
    """
    got = autograd_gradients(fn, arrays, seed)
    expected = autograd_gradients(reference, arrays, seed)
    return _gradient_cases(labels, got, expected)


def numerical_cases(fn, arrays, labels, seed=0):
    """(label, the solution's gradient, central differences of its own forward) per input."""
    got = autograd_gradients(fn, arrays, seed)
    expected = numerical_gradients(fn, arrays, seed)
    return _gradient_cases(labels, got, expected)


def check_backward(fn, reference, arrays, labels, atol=VALUE_ATOL, rtol=VALUE_RTOL, seed=0):
    """The solution's backward (through ``fn``) against autograd through ``reference``."""
    return compare_all(backward_cases(fn, reference, arrays, labels, seed), atol, rtol)


def gradcheck(fn, arrays, labels, atol=NUMERICAL_ATOL, rtol=NUMERICAL_RTOL, seed=0):
    """The solution's backward against central differences of its own forward (float64)."""
    return compare_all(numerical_cases(fn, arrays, labels, seed), atol, rtol)


# ----- running an exercise ---------------------------------------------------------------------
def _where_raised(error, path):
    """' (my_solution.py, line 12, in backward)' for the deepest frame in the solution file."""
    path = str(Path(path).resolve())
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if str(Path(f.filename).resolve()) == path]
    if not frames:
        return ""
    frame = frames[-1]
    return " (%s, line %d, in %s)" % (Path(path).name, frame.lineno, frame.name)


def describe_error(error, path):
    """One line about an exception raised while checking a solution."""
    where = _where_raised(error, path)
    if isinstance(error, NotImplementedError):
        return "not implemented yet: NotImplementedError%s" % where
    if isinstance(error, SolutionError):
        return str(error)
    message = str(error).splitlines()[0] if str(error) else ""
    return "raised %s%s%s" % (type(error).__name__, ": " + message if message else "", where)


def run_check(check, solution, path):
    """Run one check function on the loaded solution; exceptions become a failed Outcome."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            outcome = check(solution)
    except (Exception, SystemExit) as error:    # the solution's bug is the check's result
        return Outcome(False, describe_error(error, path))
    if not isinstance(outcome, Outcome):
        raise TypeError("check %s returned %r, not an Outcome" % (check.__name__, outcome))
    return outcome


def check_solution(exercise, path, out=None):
    """Run every check of ``exercise`` on the solution file at ``path``; print one line per
    check and a summary to ``out`` (default stdout). Returns 0 if all pass, else 1."""
    out = sys.stdout if out is None else out
    print("Checking %s (exercise %s, chapter %d)" % (path, exercise.name, exercise.chapter),
          file=out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solution = load_solution(path)
    except UsageError:
        raise
    except (Exception, SystemExit) as error:
        print("FAIL load  the file could not be imported: %s"
              % describe_error(error, path), file=out)
        print("0 passed, 1 failed", file=out)
        return 1
    passed = failed = 0
    for name, check in exercise.checks:
        outcome = run_check(check, solution, path)
        print("%s %s  %s" % ("PASS" if outcome.passed else "FAIL", name, outcome.detail),
              file=out)
        passed += outcome.passed
        failed += not outcome.passed
    print("%d passed, %d failed" % (passed, failed), file=out)
    return 0 if failed == 0 else 1
