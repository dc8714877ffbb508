"""The checker's machinery: run one step's checks on a student's package and report each one.

A check is a function ``check(c)`` of a ``CheckContext`` ``c``. It calls the student's code
(``c.get("softmax")``, ``c.tensor(x)``) and compares what comes back with numbers the student
cannot import:

- ``c.expect(label, got)``: a value stored in ``expected/STEP.npz``, recorded by the
  instructor from the reference solutions (kept in the repository's ``instructor/`` folder,
  never in the installed package) and cross-checked there against tinyllm or NumPy;
- ``c.known(label, got, value)``: a number derived by hand and written in the check
  (BCE of y = 1, yhat = 0.9 is -log 0.9 = 0.1053605);
- ``c.gradcheck(fn, inputs)``: the student's backward against central differences of the
  student's own forward, in float64;
- ``c.raises(...)``: the error the contract asks for, with the words it must contain.

Element x passes when ``|got - expected| <= atol + rtol * |expected|``. Each line also prints
the largest relative error ``|got - expected| / max(1e-8, |got| + |expected|)`` (CS231n's)
beside the one to expect: about 1e-16 for values computed two ways in float64, about 1e-10
for central differences. A FAIL line names the element that is furthest outside, with both
numbers.

Nothing a student's file does stops the checker: an exception, a hang (each check has a time
limit), a wrong shape or dtype, or pages of printing is one FAIL line for that check, and the
next check runs.
"""

import contextlib
import importlib
import io
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

# Tolerances. Values computed two ways in float64 agree to ~1e-12; central differences
# (eps = 1e-6) are good to ~1e-9 relative. A wrong formula is off by ~1e-1.
VALUE_ATOL, VALUE_RTOL = 1e-9, 1e-7
NUMERICAL_ATOL, NUMERICAL_RTOL = 1e-6, 1e-5
TYPICAL_VALUE_ERROR = "1e-12"           # printed beside the measured relative error
TYPICAL_NUMERICAL_ERROR = "1e-6"

DEFAULT_TIME_LIMIT = 20.0               # seconds per check, unless the check says otherwise
OUTPUT_LIMIT = 20_000                   # characters a check may print before it fails


class SolutionError(Exception):
    """The student's code lacks something a check needs, or returned the wrong kind of thing."""


class CheckFailed(Exception):
    """A comparison failed; the message is the check's FAIL line."""


class CheckTimeout(BaseException):
    """Raised inside the student's code when a check runs past its time limit.

    A BaseException, so that a student's ``except Exception`` cannot swallow it."""


@dataclass
class Outcome:
    """The result of one check: passed or not, and the numbers that say why."""
    name: str
    passed: bool
    detail: str


# ----- the context a check runs in -------------------------------------------------------------
def relative_error(got, expected):
    """CS231n's relative error, elementwise: |a - b| / max(1e-8, |a| + |b|)."""
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(got - expected) / np.maximum(1e-8, np.abs(got) + np.abs(expected))
    return np.where(got == expected, 0.0, np.where(np.isnan(error), np.inf, error))


def _index_text(index, shape):
    return "" if len(shape) == 0 else " at index %s" % (tuple(int(i) for i in index),)


@dataclass
class CheckContext:
    """What a check function receives: the student's package, the expected values, the helpers.

    ``mytl`` is the student's package, ``module`` the step's module in it. With
    ``recording=True`` (the instructor's ``record_expected.py``) ``expect`` stores the value
    it is given, instead of comparing, after checking it against ``reference`` if one is given.
    """
    step: object
    check_name: str
    mytl: object
    module: object
    expected: dict
    recording: bool = False
    recorded: dict = field(default_factory=dict)
    measured: list = field(default_factory=list)        # (relative error, typical) per compare
    notes: list = field(default_factory=list)

    # ----- the student's code ------------------------------------------------------------
    def get(self, name, module=None):
        """``mytl.<module>.<name>`` (the step's module by default), or a SolutionError."""
        owner = self.module if module is None else _submodule(self.mytl, module)
        where = "mytl/%s.py" % (self.step.module if module is None else module)
        if owner is None or not hasattr(owner, name):
            raise SolutionError("%s defines no %r (keep the stub's names)" % (where, name))
        return getattr(owner, name)

    def Tensor(self):
        return self.get("Tensor", module="autograd")

    def tensor(self, data, requires_grad=False):
        """A student Tensor holding a float64 copy of ``data`` (integers stay integers)."""
        array = np.array(data)
        if array.dtype.kind == "f":
            array = array.astype(np.float64)
        return self.Tensor()(array, requires_grad=requires_grad)

    def array(self, x, label="the result"):
        """The NumPy array inside a student Tensor (or an array, or a number)."""
        if isinstance(x, (np.ndarray, np.generic)):
            return np.asarray(x)
        data = getattr(x, "data", x)
        if isinstance(data, np.ndarray):
            return data
        if isinstance(data, (int, float, np.number, list, tuple)):
            try:
                return np.asarray(data)
            except ValueError:
                pass
        raise SolutionError("%s should be a Tensor or an array, got %s"
                            % (label, type(x).__name__))

    def note(self, text):
        """Add a remark to the check's line (a measured figure, a time)."""
        self.notes.append(text)

    # ----- comparing numbers -------------------------------------------------------------
    def compare(self, label, got, expected, atol=VALUE_ATOL, rtol=VALUE_RTOL,
                typical=TYPICAL_VALUE_ERROR, hint=None, dtype=None):
        """Fail with a one-line report unless ``got`` equals ``expected`` elementwise.

        Equal infinities count as equal; NaN never does. ``dtype``, when given, is the dtype
        the result must have (the contract's: float64 in, float64 out).
        """
        got_array = self.array(got, label)
        if dtype is not None and got_array.dtype != np.dtype(dtype):
            raise CheckFailed("%s has dtype %s; expected %s" % (label, got_array.dtype,
                                                               np.dtype(dtype)))
        expected = np.asarray(expected)
        if got_array.shape != expected.shape:
            raise CheckFailed("%s has shape %s; expected %s" % (label, got_array.shape,
                                                               expected.shape))
        if expected.dtype.kind in "USbiO" and expected.dtype.kind != "f":
            if expected.dtype.kind in "US" or not np.array_equal(got_array, expected):
                if not np.array_equal(got_array.astype(expected.dtype), expected):
                    raise CheckFailed("%s: expected %s, got %s%s"
                                      % (label, _short(expected), _short(got_array),
                                         "; hint: " + hint if hint else ""))
            self.measured.append((0.0, "0 (exact)"))
            return
        try:
            got_f = got_array.astype(np.float64)
        except (TypeError, ValueError):
            raise CheckFailed("%s should hold numbers, got dtype %s" % (label, got_array.dtype))
        expected = expected.astype(np.float64)
        if got_f.size == 0:
            return
        with np.errstate(invalid="ignore", over="ignore"):
            error = np.where(got_f == expected, 0.0, np.abs(got_f - expected))
        error = np.where(np.isnan(error), np.inf, error)
        allowed = atol + rtol * np.where(np.isfinite(expected), np.abs(expected), 0.0)
        excess = error - allowed
        rel = relative_error(got_f, expected)
        if np.any(excess > 0):
            index = np.unravel_index(int(np.argmax(excess)), error.shape)
            raise CheckFailed(
                "%s%s: expected %.10g, got %.10g (rel err %.1e, expected < %s)%s"
                % (label, _index_text(index, error.shape), expected[index], got_f[index],
                   rel[index], typical, "; hint: " + hint if hint else ""))
        self.measured.append((float(np.max(rel)), typical))

    def expect(self, label, got, reference=None, **tolerances):
        """Compare ``got`` with the value recorded for this check and label.

        ``reference`` (a function returning the value computed independently, by tinyllm or
        NumPy) is called only when recording: the reference solution must agree with it.
        """
        key = "%s::%s" % (self.check_name, label)
        if self.recording:
            value = np.array(self.array(got, label))
            if value.dtype.kind == "f":
                value = value.astype(np.float64)
            if reference is not None:
                self.compare(label + " (against the independent reference)", value,
                             np.asarray(reference()), **tolerances)
            self.recorded[key] = value
            return
        if key not in self.expected:
            raise SolutionError("no expected value is recorded for %r (the course's expected "
                                "values are older than its checks: reinstall tinyllm)" % key)
        self.compare(label, got, self.expected[key], **tolerances)

    def known(self, label, got, value, **tolerances):
        """Compare ``got`` with a value derived by hand, written in the check."""
        self.compare(label, got, value, **tolerances)

    def equal(self, label, got, value):
        """Exact equality of plain Python values (token lists, strings, merges)."""
        if got != value:
            raise CheckFailed("%s: expected %s, got %s" % (label, _short(value), _short(got)))
        self.measured.append((0.0, "0 (exact)"))

    def expect_equal(self, label, got):
        """Exact equality with a recorded value (integers, token ids, strings)."""
        self.expect(label, np.asarray(got))

    def shape(self, label, got, shape, dtype=None):
        """The contract's shape (and dtype) of a result."""
        array = self.array(got, label)
        if array.shape != tuple(shape):
            raise CheckFailed("%s has shape %s; expected %s" % (label, array.shape,
                                                               tuple(shape)))
        if dtype is not None and array.dtype != np.dtype(dtype):
            raise CheckFailed("%s has dtype %s; expected %s" % (label, array.dtype,
                                                               np.dtype(dtype)))

    def true(self, condition, message):
        """Fail with ``message`` unless ``condition`` holds."""
        if not condition:
            raise CheckFailed(message)

    def raises(self, label, function, exceptions=(ValueError,), contains=()):
        """``function()`` must raise one of ``exceptions`` with every string of ``contains``
        in its message (the contract's error: it names the op and the shapes)."""
        try:
            function()
        except (CheckTimeout, NotImplementedError):
            raise
        except exceptions as error:
            message = str(error)
            missing = [word for word in contains if word not in message]
            if missing:
                raise CheckFailed("%s: the %s says %r, which does not mention %s"
                                  % (label, type(error).__name__, message[:200],
                                     ", ".join(repr(m) for m in missing)))
            self.measured.append((0.0, "0 (exact)"))
            return
        except Exception as error:
            raise CheckFailed("%s: expected %s, got %s: %s"
                              % (label, " or ".join(e.__name__ for e in _tuple(exceptions)),
                                 type(error).__name__, str(error)[:200]))
        raise CheckFailed("%s: expected %s, but nothing was raised"
                          % (label, " or ".join(e.__name__ for e in _tuple(exceptions))))

    # ----- gradients ----------------------------------------------------------------------
    def backward(self, function, arrays, seed=0):
        """dL/d(each input) by the student's autograd, for L = sum_k sum(r_k * output_k).

        ``function`` takes student Tensors (float64, requires_grad) and returns a Tensor or a
        tuple of them; the r_k are fixed random arrays, given to ``backward(grad=r_k)`` as
        the upstream gradient, so a backward right only for a gradient of ones fails.
        Returns (the list of gradients, the weights r_k).
        """
        leaves = [self.tensor(a, requires_grad=True) for a in arrays]
        outputs = _tuple(function(*leaves))
        weights = _weights(outputs, seed, self)
        for out, r in zip(outputs, weights):
            if not hasattr(out, "backward"):
                raise SolutionError("expected a Tensor, got %s" % type(out).__name__)
            out.backward(r)
        return [leaf.grad for leaf in leaves], weights

    def numerical(self, function, arrays, seed=0, eps=1e-6):
        """dL/d(each input) by central differences of the student's forward (float64)."""
        arrays = [np.array(a, dtype=np.float64) for a in arrays]
        weights = None
        grads = []

        def loss(values):
            nonlocal weights
            outputs = _tuple(function(*[self.tensor(v) for v in values]))
            if weights is None:
                weights = _weights(outputs, seed, self)
            return sum(float(np.sum(self.array(o) * r)) for o, r in zip(outputs, weights))

        for i, x in enumerate(arrays):
            grad = np.zeros_like(x)
            for index in np.ndindex(x.shape):
                saved = x[index]
                x[index] = saved + eps
                plus = loss(arrays)
                x[index] = saved - eps
                minus = loss(arrays)
                x[index] = saved
                grad[index] = (plus - minus) / (2 * eps)
            grads.append(grad)
        return grads

    def gradcheck(self, function, arrays, labels, seed=0, atol=NUMERICAL_ATOL,
                  rtol=NUMERICAL_RTOL):
        """The student's backward against central differences of the student's forward."""
        got, _ = self.backward(function, arrays, seed)
        expected = self.numerical(function, arrays, seed)
        for label, g, e in zip(labels, got, expected):
            if g is None:
                raise CheckFailed("%s: no gradient reached this input (.grad is None)" % label)
            self.compare(label, g, e, atol=atol, rtol=rtol, typical=TYPICAL_NUMERICAL_ERROR)

    def detail(self):
        """The text of a passing line: the largest relative error and the one to expect."""
        parts = []
        inexact = [m for m in self.measured if m[1] != "0 (exact)"]
        if inexact:
            parts.append("max rel err %.1e (expected < %s)" % max(inexact))
        elif self.measured:
            parts.append("exact")
        return "; ".join(parts + self.notes)


def _submodule(package, name):
    """``package.name``, importing it if no student file has imported it yet."""
    if not hasattr(package, name):
        try:
            importlib.import_module("%s.%s" % (package.__name__, name))
        except ModuleNotFoundError:
            return None
    return getattr(package, name, None)


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _weights(outputs, seed, c):
    rng = np.random.default_rng(1000 + seed)
    return [rng.standard_normal(c.array(o, "an output").shape) for o in outputs]


def _short(value, limit=120):
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= limit else text[:limit] + "..."


# ----- time limits and bounded output ----------------------------------------------------------
ALARM_REPEAT = 0.1      # seconds between alarms once a check is past its time limit


@contextlib.contextmanager
def time_limit(seconds):
    """Raise CheckTimeout in the code running inside after ``seconds``, and again every
    ``ALARM_REPEAT`` seconds until it ends (POSIX, main thread; elsewhere the code runs
    without a limit).

    Why again: Python runs the alarm's handler between two bytecodes of whatever Python code
    is running, and that may be a finalizer (a weak reference's callback, a ``__del__``) that
    the garbage collector started inside the student's loop. An exception raised there is
    printed as "Exception ignored" and lost; with a single alarm, the endless loop it was
    meant to stop then runs forever (seen in the suite: the alarm landed in a
    ``WeakKeyDictionary``'s callback, another time in one of Numba's). ``running`` turns False
    first thing when the block ends, so an alarm that comes later raises nothing. While the
    block runs, ``sys.unraisablehook`` drops such a lost CheckTimeout (it is expected, and the
    next alarm follows) and hands every other lost exception to the hook that was there.
    """
    usable = (hasattr(signal, "setitimer") and seconds
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    running = True

    def on_alarm(signum, frame):
        if running:
            raise CheckTimeout()

    previous_hook = sys.unraisablehook

    def drop_lost_alarms(unraisable):
        if not isinstance(unraisable.exc_value, CheckTimeout):
            previous_hook(unraisable)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    sys.unraisablehook = drop_lost_alarms
    signal.setitimer(signal.ITIMER_REAL, seconds, ALARM_REPEAT)
    try:
        yield
    finally:
        running = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = previous_hook


class BoundedOutput(io.TextIOBase):
    """A stand-in for stdout/stderr that counts what is printed and keeps only the start."""

    def __init__(self, keep=2000):
        self.count = 0
        self.keep = keep
        self.start = []

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        if self.count < self.keep:
            self.start.append(text[:self.keep - self.count])
        self.count += len(text)
        return len(text)

    def text(self):
        return "".join(self.start)


@contextlib.contextmanager
def captured_output():
    out = BoundedOutput()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield out


# ----- running checks --------------------------------------------------------------------------
def where_raised(error, package_dir):
    """' (mytl/ops.py, line 12, in backward)' for the deepest frame in the student's files."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if package_dir is not None and str(package_dir) in f.filename]
    if not frames:
        return ""
    frame = frames[-1]
    name = frame.filename[frame.filename.find(str(package_dir)) + len(str(package_dir)):]
    return " (%s, line %d, in %s)" % (name.lstrip("/\\"), frame.lineno, frame.name)


def describe_error(error, package_dir=None):
    """One line about an exception raised by the student's code."""
    where = where_raised(error, package_dir)
    if isinstance(error, NotImplementedError):
        return "not implemented yet (NotImplementedError%s)" % where
    if isinstance(error, (SolutionError, CheckFailed)):
        return str(error)
    message = str(error).splitlines()[0] if str(error) else ""
    return "raised %s%s%s" % (type(error).__name__, ": " + message[:300] if message else "",
                              where)


def run_check(step, check, mytl, module, expected, package_dir=None, recording=False):
    """Run one check; returns (Outcome, the CheckContext). Never raises for the student's
    mistakes: an exception, a time-out or too much printing is a failed Outcome."""
    c = CheckContext(step=step, check_name=check.name, mytl=mytl, module=module,
                     expected=expected, recording=recording)
    started = time.perf_counter()
    try:
        with captured_output() as printed, warnings.catch_warnings(), \
                np.errstate(all="ignore"), time_limit(check.time_limit):
            warnings.simplefilter("ignore")
            check.function(c)
    except CheckTimeout:
        return Outcome(check.name, False, "did not finish within its %g s time limit (an "
                       "endless loop, or far too slow?)" % check.time_limit), c
    except RecursionError as error:
        return Outcome(check.name, False, "raised RecursionError%s: the graph is too deep for "
                       "a recursive walk; use an explicit stack"
                       % where_raised(error, package_dir)), c
    except (Exception, SystemExit) as error:     # the student's bug is the check's result
        return Outcome(check.name, False, describe_error(error, package_dir)), c
    if printed.count > OUTPUT_LIMIT:
        return Outcome(check.name, False, "printed %d characters (the limit is %d): remove the "
                       "debugging prints; it began %r" % (printed.count, OUTPUT_LIMIT,
                                                         printed.text()[:60])), c
    detail = c.detail()
    seconds = time.perf_counter() - started
    if seconds > 2:
        detail += ("; " if detail else "") + "%.1f s" % seconds
    return Outcome(check.name, True, detail), c
