"""When the Numba kernels compile, where their compiled code is kept, and saying so.

Every kernel is compiled lazily, on its first call, for the types of the arrays it gets
(float32 and 2-D, say), and never before: a run compiles only the kernels it calls. With
``cache=True`` Numba writes the machine code to an on-disk cache, an index file (``.nbi``) and
one data file (``.nbc``) per compiled version, beside the kernel's source in
``tinyllm/kernels/__pycache__``, or under ``NUMBA_CACHE_DIR`` when that variable is set. A
later process loads it from there in milliseconds; the cache is stale (and the kernel compiled
again) when the source file changes.

On a first run the compilation takes seconds per kernel, before the first training step or
the first generated token, so ``tinyllm train``, ``generate``, ``eval`` and ``serve`` announce
it and name each kernel as it starts compiling (``announcing_compilation``). They also compile
the kernels they are about to call before the first step, several at once (``compile_kernels``):
Numba compiles on one thread and holds a lock while it does, so one process compiles one
kernel at a time, but separate processes do not wait for each other. With one process per
core, each taking the next kernel of the list, a 2-core machine compiles in about half the
time, and the first call in the run loads the others' work from the cache in milliseconds.
"""

import contextlib
import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numba
import numpy as np

from tinyllm.kernels import backend

# The kernels behind each entry of backend.AUTO_CHOICE ("module.function" in tinyllm.kernels),
# with the seconds their compilation takes on a first run of `tinyllm train` on a 2-core AMD
# EPYC (benchmarks/RESULTS.md, "Cold start"; the kernels they call, like tile_matmul_add,
# included). Attention: each compiled first in a fresh process, as ``Compilation`` does
# (Numba's own start-up included), quiet machine, 2026-12-07; the others: processor seconds
# of each compilation, read from Numba's compile events.
KERNELS = {
    "attention": {"attention.attention_forward_tasks": 9.5,
                  "attention.attention_backward_tasks": 10.0},
    "softmax_cross_entropy": {"softmax_cross_entropy._softmax_cross_entropy_rows": 1.2},
    "layer_norm": {"layer_norm._layer_norm_forward_rows": 0.4,
                   "layer_norm._layer_norm_backward_rows": 0.5},
    "gelu": {"gelu._gelu_forward_flat": 0.5, "gelu._gelu_backward_flat": 0.7},
    "adam": {"adam._adam_flat": 0.3},
    "embedding": {"embedding_backward._add_rows": 0.2},
    "matmul": {"matmul.matmul_numba_into": 3.0},
}


def argument_types(name, dtype):
    """The Numba types of the arguments with which tinyllm calls kernel ``name`` on arrays of
    ``dtype`` (float32 or float64): the signature to compile before a run.

    Arrays are C-contiguous ("C"), except attention's, which are compiled for any strides
    ("A", see ``attention._compiled_for_any_layout``); ints are int64 (task ranges, sizes),
    Python floats float64, flags booleans. tests/test_compile_announcements.py checks that a
    training step compiles nothing else.
    """
    real = numba.from_dtype(np.dtype(dtype))
    i64, f64, flag = numba.int64, numba.float64, numba.boolean

    def array(ndim, layout="C", of=real):
        return numba.types.Array(of, ndim, layout)

    table = {
        "attention.attention_forward_tasks":
            (array(4, "A"),) * 3 + (real, flag, array(2, "A", flag), array(4, "A"),
                                    array(3, "A"), i64, i64),
        "attention.attention_backward_tasks":
            (array(4, "A"),) * 5 + (array(3, "A"), real, flag, array(2, "A", flag))
            + (array(4, "A"),) * 3 + (i64, i64),
        "softmax_cross_entropy._softmax_cross_entropy_rows":
            (array(2), array(1, of=i64), i64, i64, array(2), array(1, of=f64), i64, i64),
        "layer_norm._layer_norm_forward_rows":
            (array(2), array(1), array(1), f64, array(2), array(1), array(1), i64, i64),
        "layer_norm._layer_norm_backward_rows":
            (array(2), array(2), array(1), array(1), array(1), array(2), array(2), array(2),
             i64, i64),
        "gelu._gelu_forward_flat": (array(1), flag, array(1), i64, i64),
        "gelu._gelu_backward_flat": (array(1), array(1), flag, array(1), i64, i64),
        "adam._adam_flat": (array(1),) * 4 + (f64,) * 5 + (flag, f64, f64, i64, i64),
        "embedding_backward._add_rows": (array(2), array(1, of=i64), array(2)),
        "matmul.matmul_numba_into": (array(3),) * 3,
    }
    return table[name]


def dispatcher(name):
    """The Numba dispatcher of kernel ``name`` ("module.function" in tinyllm.kernels)."""
    module, function = name.split(".")
    return getattr(importlib.import_module("tinyllm.kernels." + module), function)


def cache_dir():
    """The folder in which Numba keeps tinyllm's compiled kernels (as a Path)."""
    return Path(dispatcher("adam._adam_flat")._cache.cache_path)


def is_cached(name):
    """True when Numba's cache holds a compiled version of kernel ``name`` made from its source
    as it is now.

    Numba's index file for a kernel (``.nbi``) starts with Numba's version, then holds a stamp
    of the source file it was compiled from (a hash of its text, in recent Numba) and the
    compiled versions; Numba discards it when either differs. This reads it the same way,
    from ``cache_dir()``. Where Numba names these things differently, it falls back to
    comparing the index file's time with the source file's.
    """
    try:
        cache_file = dispatcher(name)._cache._cache_file
        index_name, version = cache_file._index_name, cache_file._version
        stamp = cache_file._source_stamp
    except AttributeError:
        module, function = name.split(".")
        source = Path(dispatcher(name).py_func.__code__.co_filename)
        indexes = list(cache_dir().glob("%s.%s-*.nbi" % (module, function)))
        return any(index.stat().st_mtime >= source.stat().st_mtime for index in indexes)
    try:
        with open(cache_dir() / index_name, "rb") as index:
            if pickle.load(index) != version:
                return False
            saved_stamp, overloads = pickle.loads(index.read())
    except (OSError, EOFError, pickle.UnpicklingError, ValueError):
        return False
    return saved_stamp == stamp and bool(overloads)


# Words in the names of the kernels that only training runs (gradients, the optimizer):
# ``tinyllm generate``, ``eval`` and ``serve`` never compile them.
TRAINING_ONLY = ("backward", "adam")


def kernels_used(kinds, training=True):
    """The compiled kernels behind the backend choices ``kinds`` (keys of AUTO_CHOICE) that
    run on Numba under the current backend (without the gradient and optimizer kernels when
    ``training`` is False)."""
    return [name for kind in kinds if backend.resolve(kind) == "numba"
            for name in KERNELS[kind]
            if training or not _training_only(name)]


def uncached(kinds, training=True):
    """The kernels of ``kinds`` that will run on Numba and are not in its cache yet."""
    return [name for name in kernels_used(kinds, training) if not is_cached(name)]


def announcement(kinds, training=True, processes=None):
    """The line to print before a run that uses ``kinds`` when some of their kernels must be
    compiled first, or None when all are cached (or none runs on Numba). The time it gives
    is the measured seconds of those kernels (``KERNELS``) shared among the processes
    ``compile_kernels`` will use, and never less than the longest one."""
    missing = uncached(kinds, training)
    if not missing:
        return None
    seconds = [_expected_seconds(name) for name in missing]
    processes = compiling_processes(len(missing), processes)
    estimate = max(max(seconds), sum(seconds) / processes)
    return ("compiling the Numba kernels once, about %.0f s (%d kernels in %d %s; measured on "
            "2 cores); cached in %s" % (max(estimate, 1), len(missing), processes,
                                        "process" if processes == 1 else "processes",
                                        cache_dir()))


def compiling_processes(kernels, processes=None):
    """How many processes ``compile_kernels`` uses for ``kernels`` kernels: ``processes``, or
    by default one per core this process may run on; at most one per kernel."""
    if processes is None:
        processes = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1)
    return max(1, min(processes, kernels))


# Set while a ``Compilation`` compiles in this thread: it reports those kernels itself.
_compiling_ahead = threading.local()


@contextlib.contextmanager
def reporting_compilation(report, expected=None):
    """Inside the block, call ``report(line)`` when a tinyllm kernel starts compiling:
    "compiling kernel 2 of 9: attention_backward_numba". The kernels it calls in turn (Numba
    compiles them too) are not counted. ``expected``: how many to expect (None: unknown)."""
    from numba.core import event

    class Listener(event.Listener):
        count = 0
        depth = 0

        def on_start(self, ev):
            function = ev.data["dispatcher"].py_func
            if (self.depth == 0 and function.__module__.startswith("tinyllm.kernels")
                    and not getattr(_compiling_ahead, "active", False)):
                self.count += 1
                of = " of %d" % max(expected, self.count) if expected else ""
                report("compiling kernel %d%s: %s" % (self.count, of, function.__name__))
            self.depth += 1

        def on_end(self, ev):
            self.depth -= 1

    with event.install_listener("numba:compile", Listener()):
        yield



def _claim(folder, name):
    """True for the first process that asks for ``name`` (it creates the file), False after."""
    try:
        os.close(os.open(os.path.join(folder, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def compile_claimed(names, dtype, folder, say):
    """Compile, one after the other, each kernel of ``names`` that no other process has claimed
    in ``folder``; ``say(line)`` before and after each. Numba keeps the result in this
    process and writes it to its on-disk cache for the others."""
    for name in names:
        if _claim(folder, name):
            say("start %s" % name)
            started = time.perf_counter()
            dispatcher(name).compile(argument_types(name, dtype))
            say("done %s %.1f" % (name, time.perf_counter() - started))


def _compiled_here(name, dtype):
    return argument_types(name, dtype) in dispatcher(name).overloads


class Compilation:
    """Kernels compiled before a run by this process and ``processes - 1`` others at once.

    Numba compiles on one thread and holds a lock while it does, so one process compiles one
    kernel at a time, but separate processes do not wait for each other. Every process walks
    a list of the kernels and takes each that no process has taken yet: it claims it by
    creating a file of that name in a shared temporary folder, then compiles it. A kernel that
    another process compiled reaches this one through Numba's on-disk cache: its first call
    here loads it, in milliseconds.

    The other processes (``python -m tinyllm.kernels.compile_worker``) start with the kernels
    that only training calls (gradients, the optimizer); this process with those that a
    forward pass calls (``compile_forward``). So a training run can sample its first text and
    measure its first loss while the others still compile the backward kernels, and meet them
    before its first step (``wait``).

        compilation = Compilation(names, np.float32, print)
        compilation.compile_forward()      # here, or taken by another process
        ...                                # forward passes
        compilation.wait()                 # every kernel compiled or loaded: train

    Reports "compiling kernel i of n: NAME" as each starts, and the seconds it took.
    """

    def __init__(self, names, dtype=np.float32, report=print, processes=None):
        self.names = sorted((n for n in names if not _compiled_here(n, dtype)),
                            key=lambda n: -_expected_seconds(n))
        self.dtype, self.report = np.dtype(dtype), report
        self.started = 0
        self.lock = threading.Lock()
        self.folder = tempfile.mkdtemp(prefix="tinyllm-compile-")
        self.workers = []
        if not self.names:
            return
        others = compiling_processes(len(self.names), processes) - 1
        training_first = sorted(self.names, key=lambda n: not _training_only(n))
        command = [sys.executable, "-m", "tinyllm.kernels.compile_worker", self.folder,
                   self.dtype.name] + training_first
        # The other processes import this very copy of tinyllm (its folder first on their path)
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        for i in range(others):
            error = open(os.path.join(self.folder, "stderr-%d" % i), "w+")
            worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=error, env=env,
                                      text=True)
            relay = threading.Thread(target=self._relay, args=(worker,), daemon=True)
            relay.start()
            self.workers.append((worker, relay, error))

    def _say(self, line, where=""):
        """Report a "start NAME" or "done NAME SECONDS" line of a compiling process."""
        word, name = line.split()[:2]
        function = name.split(".")[1]
        with self.lock:
            if word == "start":
                self.started += 1
                self.report("compiling kernel %d of %d: %s%s"
                            % (self.started, len(self.names), function, where))
            else:
                self.report("compiled %s in %s s%s" % (function, line.split()[2], where))

    def _relay(self, worker):
        for line in worker.stdout:
            if line.startswith(("start ", "done ")):
                self._say(line, " (in another process)")

    def compile_forward(self):
        """Compile here each kernel a forward pass calls that no process has taken yet."""
        self._compile_here([n for n in self.names if not _training_only(n)])

    def wait(self):
        """Compile here every kernel still untaken, then wait for the other processes (once:
        later calls return at once)."""
        if self.folder is None:
            return
        self._compile_here(self.names)
        for worker, relay, error in self.workers:
            if worker.wait() != 0:
                error.seek(0)
                last = (error.read().strip().splitlines() or [""])[-1]
                self.report("a compiling process ended with exit status %d (%s); the kernels "
                            "it had taken compile when first called" % (worker.returncode, last))
            relay.join()
            error.close()
        self.workers = []
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def _compile_here(self, names):
        _compiling_ahead.active = True          # reporting_compilation: already reported
        try:
            compile_claimed(names, self.dtype, self.folder, self._say)
        finally:
            _compiling_ahead.active = False


def compile_kernels(names, dtype=np.float32, report=print, processes=None):
    """Compile the kernels ``names`` (keys of ``KERNELS``' entries) for ``dtype`` data now, in
    this process and ``processes - 1`` others at once (default: one per available core, at
    most one per kernel); see ``Compilation``."""
    Compilation(names, dtype, report, processes).wait()


def _training_only(name):
    return any(word in name for word in TRAINING_ONLY)


def _expected_seconds(name):
    return next(kernels[name] for kernels in KERNELS.values() if name in kernels)


@contextlib.contextmanager
def announcing_compilation(kinds, report, training=True, dtype=np.float32, processes=None):
    """For a run that uses the kernels ``kinds`` (``training``: also their gradients and the
    optimizer) on ``dtype`` data: when some must be compiled, ``report`` the
    ``announcement`` and compile them before the run (a ``Compilation`` with ``processes``
    processes; None: one per core). Yields that ``Compilation``: the forward kernels are
    ready inside the block; call its ``wait()`` before the first backward pass (without
    ``training``, everything is ready). Inside the block, ``report`` any other kernel as it
    starts compiling (``reporting_compilation``)."""
    missing = uncached(kinds, training)
    if missing:
        report(announcement(kinds, training, processes))
    compilation = Compilation(missing, dtype, report, processes)
    try:
        compilation.compile_forward()
        if not training:
            compilation.wait()
        with reporting_compilation(report):
            yield compilation
    finally:
        compilation.wait()
