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
it and name each kernel as it starts compiling (``announcing_compilation``).
"""

import contextlib
import importlib
from pathlib import Path

from tinyllm.kernels import backend

# The kernels behind each entry of backend.AUTO_CHOICE ("module.function" in tinyllm.kernels),
# with the seconds their compilation takes on a first run of `tinyllm train` on a 2-core AMD
# EPYC (benchmarks/RESULTS.md, "Cold start"; the kernels they call, like block_matmul_add,
# included). Attention: the time between the "compiling kernel i of n" lines on the quiet
# machine; the others: processor seconds of each compilation, read from Numba's compile events
# (the compiler runs on one thread, so these are its seconds on an idle core).
KERNELS = {
    "attention": {"attention.attention_forward_tasks": 12.1,
                  "attention.attention_backward_tasks": 8.4},
    "softmax_cross_entropy": {"softmax_cross_entropy._softmax_cross_entropy_rows": 1.2},
    "layer_norm": {"layer_norm._layer_norm_forward_rows": 0.4,
                   "layer_norm._layer_norm_backward_rows": 0.5},
    "gelu": {"gelu._gelu_forward_flat": 0.5, "gelu._gelu_backward_flat": 0.7},
    "adam": {"adam._adam_flat": 0.3},
    "embedding": {"embedding_backward._add_rows": 0.2},
    "matmul": {"matmul.matmul_numba_into": 3.0},
}


def dispatcher(name):
    """The Numba dispatcher of kernel ``name`` ("module.function" in tinyllm.kernels)."""
    module, function = name.split(".")
    return getattr(importlib.import_module("tinyllm.kernels." + module), function)


def cache_dir():
    """The folder in which Numba keeps tinyllm's compiled kernels (as a Path)."""
    return Path(dispatcher("adam._adam_flat")._cache.cache_path)


def is_cached(name):
    """True when Numba's cache holds a compiled version of kernel ``name`` that is newer than
    its source file (Numba discards an index older than the source)."""
    module, function = name.split(".")
    source = Path(dispatcher(name).py_func.__code__.co_filename)
    indexes = list(cache_dir().glob("%s.%s-*.nbi" % (module, function)))
    return any(index.stat().st_mtime >= source.stat().st_mtime for index in indexes)


# Words in the names of the kernels that only training runs (gradients, the optimizer):
# ``tinyllm generate``, ``eval`` and ``serve`` never compile them.
TRAINING_ONLY = ("backward", "adam")


def kernels_used(kinds, training=True):
    """The compiled kernels behind the backend choices ``kinds`` (keys of AUTO_CHOICE) that
    run on Numba under the current backend (without the gradient and optimizer kernels when
    ``training`` is False)."""
    return [name for kind in kinds if backend.resolve(kind) == "numba"
            for name in KERNELS[kind]
            if training or not any(word in name for word in TRAINING_ONLY)]


def uncached(kinds, training=True):
    """The kernels of ``kinds`` that will run on Numba and are not in its cache yet."""
    return [name for name in kernels_used(kinds, training) if not is_cached(name)]


def announcement(kinds, training=True):
    """The line to print before a run that uses ``kinds`` when some of their kernels must be
    compiled first, or None when all are cached (or none runs on Numba)."""
    missing = uncached(kinds, training)
    if not missing:
        return None
    seconds = sum(KERNELS[kind][name] for kind in kinds for name in KERNELS[kind]
                  if name in missing)
    return ("compiling the Numba kernels once, about %.0f s (%d kernels; measured on 2 cores); "
            "cached in %s" % (max(seconds, 1), len(missing), cache_dir()))


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
            if self.depth == 0 and function.__module__.startswith("tinyllm.kernels"):
                self.count += 1
                of = " of %d" % max(expected, self.count) if expected else ""
                report("compiling kernel %d%s: %s" % (self.count, of, function.__name__))
            self.depth += 1

        def on_end(self, ev):
            self.depth -= 1

    with event.install_listener("numba:compile", Listener()):
        yield



@contextlib.contextmanager
def announcing_compilation(kinds, report, training=True):
    """For a run that uses the kernels ``kinds`` (``training``: also their gradients and the
    optimizer): ``report`` the ``announcement`` first when some must be compiled, then,
    inside the block, each kernel as it starts compiling (``reporting_compilation``)."""
    missing = uncached(kinds, training)
    if missing:
        report(announcement(kinds, training))
    with reporting_compilation(report, expected=len(missing) or None):
        yield
