"""Three process-wide settings that decide how fast a training step runs on a CPU, and the small
thread pool that runs the fused kernels (``run_in_chunks``).

They are applied once, when tinyllm is imported (``tinyllm/__init__.py`` imports this module
first, before NumPy), and each keeps a value the user set in the environment.

1. **Idle OpenMP threads sleep.** Numba runs its parallel loops on OpenMP threads, which by
   default spin (busy-wait) for a while after each loop, ready for the next. A training step
   alternates Numba kernels with NumPy's BLAS, which has threads of its own: on a 2-core
   machine the spinning threads took the cores from the BLAS threads (and from every other
   program) and a GPT step ran 4-5x slower. ``OMP_WAIT_POLICY=PASSIVE`` puts an idle thread
   to sleep at once. OpenMP reads the variable when Numba first starts its threads, so it
   must be set before any kernel runs.

2. **Freed memory stays with the process.** A training step allocates its activations and
   gradients (tens of MiB) and frees them all by the end. glibc's ``malloc`` hands a large
   array its own pages from the operating system (``mmap``) and gives freed memory back when
   more than a few MiB lie free at the top of its heap; the next step then pays a page fault
   (and the zeroing of 4 KiB) for every page it touches again: about 5,000 faults, 15% of a
   GPT step at nanoGPT's small configuration. ``keep_freed_memory`` raises both thresholds
   (``mallopt``), so the next step reuses the same memory. The peak memory is unchanged; what
   changes is that the process keeps it between steps. Nothing happens on systems without
   glibc (macOS, Windows, musl).

3. **Idle BLAS threads sleep soon.** NumPy's OpenBLAS, too, keeps its threads spinning after
   each matrix product, for about 2^28 processor cycles (~0.1 s) by default. In a training step
   the next Numba kernel starts well within that time, and on a 2-core machine it then runs on
   about one core: measured, a Numba matmul right after a BLAS call ran at 115 GFLOP/s instead
   of 200, and a GPT step took 43 ms instead of 34. ``OPENBLAS_THREAD_TIMEOUT=4`` (2^4 cycles,
   the smallest value) makes them sleep almost at once. OpenBLAS reads the variable when it is
   loaded, that is when NumPy is first imported. In a program that imported NumPy before
   tinyllm, ``restart_openblas_threads`` applies it anyway: it finds the OpenBLAS library
   that NumPy loaded (in ``/proc/self/maps``, on Linux) and, through three functions that
   library exports, re-reads the environment (``openblas_read_env``), stops its threads
   (``blas_thread_shutdown_``, what OpenBLAS itself runs before a ``fork``) and starts them
   again (``blas_thread_init``), now with the short timeout. Measured: after a BLAS product the
   process used 23% of a core during the next 50 ms when NumPy came first, 0.1% after the
   restart, the same as with tinyllm first.
"""

import contextlib
import ctypes
import os
import queue
import sys
import threading

M_TRIM_THRESHOLD = -1           # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 * 2 ** 20  # keep up to 256 MiB of freed memory at the top of the heap
MMAP_THRESHOLD = 32 * 2 ** 20   # arrays up to 32 MiB (glibc's largest value) come from the heap

# The environment variables this module set (the user had not), for ``tinyllm info``.
variables_set = {}


def _set_default(name, value):
    """os.environ.setdefault(name, value), remembering it in ``variables_set`` when it sets."""
    if name not in os.environ:
        os.environ[name] = value
        variables_set[name] = value


def sleep_idle_openmp_threads():
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already says otherwise."""
    _set_default("OMP_WAIT_POLICY", "PASSIVE")


def sleep_idle_blas_threads():
    """Set ``OPENBLAS_THREAD_TIMEOUT=4`` unless the environment already says otherwise.

    Returns True when OpenBLAS follows the variable: NumPy was not imported yet (OpenBLAS will
    read it when it loads), the user had set it before NumPy loaded, or NumPy's OpenBLAS was
    found and its threads restarted with it (``restart_openblas_threads``).
    """
    users_own = "OPENBLAS_THREAD_TIMEOUT" in os.environ and \
        "OPENBLAS_THREAD_TIMEOUT" not in variables_set
    _set_default("OPENBLAS_THREAD_TIMEOUT", "4")
    if "numpy" not in sys.modules or users_own:
        return True
    return len(restart_openblas_threads()) > 0


# The OpenBLAS libraries whose threads restart_openblas_threads restarted (their paths).
restarted_blas_libraries = []


def loaded_openblas_libraries():
    """Paths of the OpenBLAS shared libraries loaded in this process (NumPy's is named like
    ``libscipy_openblas64_-....so``), read from ``/proc/self/maps``; [] where there is none or
    no ``/proc`` (macOS, Windows)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    except OSError:
        return []
    return sorted(p for p in paths if "openblas" in os.path.basename(p).lower()
                  and ".so" in os.path.basename(p))


def restart_openblas_threads():
    """Make the loaded OpenBLAS libraries read ``OPENBLAS_THREAD_TIMEOUT`` again and restart
    their threads, which then sleep as soon as they are idle. Done once per process; returns
    the paths of the libraries restarted (also kept in ``restarted_blas_libraries``)."""
    if restarted_blas_libraries:
        return restarted_blas_libraries
    for path in loaded_openblas_libraries():
        try:
            library = ctypes.CDLL(path)         # already loaded: the same handle, no new copy
            functions = (library.openblas_read_env, library.blas_thread_shutdown_,
                         library.blas_thread_init)
        except (OSError, AttributeError):       # another build, without these functions
            continue
        for function in functions:
            function()
        restarted_blas_libraries.append(path)
    return restarted_blas_libraries


def openblas_thread_timeout():
    """The thread timeout (a power of 2, in processor cycles) that the first loaded OpenBLAS
    has read from the environment, or None without one: 4 once tinyllm's setting holds."""
    for path in loaded_openblas_libraries():
        try:
            return ctypes.CDLL(path).openblas_thread_timeout()
        except (OSError, AttributeError):
            continue
    return None


def describe_blas_threads():
    """One line on how OpenBLAS's idle threads behave, for benchmarks and ``tinyllm info``."""
    timeout = openblas_thread_timeout()
    if timeout is None:
        return "no OpenBLAS found"
    how = ("restarted by tinyllm (NumPy was imported first)" if restarted_blas_libraries
           else "as loaded")
    return "OpenBLAS thread timeout %s (%s)" % (timeout or "default (2^28 cycles)", how)


# The names OpenBLAS builds give their thread-count functions: the plain build's, and the
# ``scipy_``-prefixed, 64-bit-integer build that NumPy's wheels ship.
_SET_THREADS_NAMES = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                      "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")
_GET_THREADS_NAMES = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                      "scipy_openblas_get_num_threads", "openblas_get_num_threads64_")


def _openblas_thread_functions():
    """[(set_num_threads, get_num_threads)] of each loaded OpenBLAS that exports both."""
    functions = []
    for path in loaded_openblas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(library, n) for n in _SET_THREADS_NAMES if hasattr(library, n)),
                      None)
        getter = next((getattr(library, n) for n in _GET_THREADS_NAMES if hasattr(library, n)),
                      None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            functions.append((setter, getter))
    return functions


_blas_thread_functions = None


@contextlib.contextmanager
def blas_threads(n):
    """Inside the ``with`` block, OpenBLAS's matrix products use at most ``n`` threads; the
    previous count comes back at the end.

    Why: a product with one row, (1, K) @ (K, N), as in every step of generation with the KV
    cache, is a matrix-vector product that reads each weight once and does one multiply-add
    with it: its speed is that of memory, which one core can nearly saturate. A second BLAS
    thread then saves little, and costs a wake-up and a wait at the end for the slower of the
    two; on a machine whose other core is busy that wait is a scheduler time slice. Measured
    on 2 shared cores: the 50257 x 768 output projection of GPT-2 took 10 ms on one thread
    and 23 ms on two (best of 24).

    The count is process-wide (OpenBLAS has one), not per Python thread. Without a loaded
    OpenBLAS (another BLAS, or no ``/proc``) the block runs unchanged.
    """
    global _blas_thread_functions
    if _blas_thread_functions is None:
        _blas_thread_functions = _openblas_thread_functions()
    previous = [get() for _, get in _blas_thread_functions]
    for set_threads, _ in _blas_thread_functions:
        set_threads(n)
    try:
        yield
    finally:
        for (set_threads, _), count in zip(_blas_thread_functions, previous):
            set_threads(count)


@contextlib.contextmanager
def limit_threads(n):
    """Inside the ``with`` block, at most ``n`` threads work on each operation: OpenBLAS's
    products (``blas_threads``), Numba's parallel loops (``numba.set_num_threads``, which
    holds for the calling thread) and ``run_in_chunks``. For steps made of many small
    operations (one generated token), where waking threads costs more than they save."""
    import numba
    previous = numba.get_num_threads()
    with blas_threads(n):
        numba.set_num_threads(min(n, previous))
        try:
            yield
        finally:
            numba.set_num_threads(previous)


def keep_freed_memory():
    """Tell glibc's malloc to keep freed memory for reuse (see the module docstring).

    Returns True when the settings were applied; False without glibc, or when the user set
    ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` (glibc's own variables).
    """
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


sleep_idle_openmp_threads()
sleep_idle_blas_threads()
keep_freed_memory()


# ----- the thread pool of the fused kernels -----------------------------------------------------
# Numba's ``parallel=True`` compiles a loop into OpenMP tasks, and that compilation took half of a
# first training step's 20 s (7.6 s for the attention forward, 7.3 s for the backward on 2
# cores). The fused kernels (attention, GELU, softmax cross-entropy, layer norm, Adam) are
# compiled without it, with ``nogil=True`` (they let go of
# Python's lock while they run), and take a range of tasks (first, stop); ``run_in_chunks``
# runs the ranges on a few threads. The chunks are handed out as threads become free, so a
# thread that shares its core with another program takes fewer of them instead of holding
# up the others at the end, as a fixed split does.
#
# The pool is as plain as Python allows: each pool thread waits on one queue for a job and runs
# it; the caller waits on a single lock that the last range releases. (Python's
# ThreadPoolExecutor, a Future per job, and a threading.Event to wait on, as before, cost
# about 100 us more per call, measured: 645 against 737 us for 48 tasks that take 1 ms on one
# thread, 147 against 269 us for 0.1 ms; a GPT training step at nanoGPT's small configuration,
# about 40 calls, 106 against 112 ms, medians of 200 alternating steps.)
_jobs = None            # the queue the pool's threads take their jobs from
_pool_pid = None


def kernel_threads():
    """How many threads ``run_in_chunks`` uses: Numba's thread count for the calling thread
    (``numba.get_num_threads()``: ``NUMBA_NUM_THREADS``, by default the number of cores,
    unless ``numba.set_num_threads`` or ``limit_threads`` lowered it)."""
    import numba
    return max(1, min(int(numba.config.NUMBA_NUM_THREADS), numba.get_num_threads()))


def _pool_jobs():
    """The queue of jobs (functions of no arguments) of the pool's NUMBA_NUM_THREADS - 1 threads
    (the calling thread is the last), started on first use and again in a child process after
    ``fork`` (which copies no threads). Each pool thread runs the jobs it takes, one after the
    other, for as long as the process lives."""
    from numba import config
    global _jobs, _pool_pid
    if _jobs is None or _pool_pid != os.getpid():
        _jobs = queue.SimpleQueue()
        for number in range(max(1, int(config.NUMBA_NUM_THREADS) - 1)):
            threading.Thread(target=_run_jobs, args=(_jobs,), daemon=True,
                             name="tinyllm-kernel-%d" % number).start()
        _pool_pid = os.getpid()
    return _jobs


def _run_jobs(jobs):
    while True:
        jobs.get()()


def run_in_chunks(function, tasks, chunks_per_thread=4):
    """Call ``function(first, stop)`` for consecutive ranges that cover ``range(tasks)``, on
    the calling thread and the pool's threads at once; returns when all are done.

    ``function`` must release Python's lock (a Numba kernel compiled with ``nogil=True``) for
    the threads to run at the same time, and its ranges must write disjoint outputs. About
    ``chunks_per_thread`` ranges per thread, each taken by the next free thread. The caller
    waits for the ranges, not for the threads: on a busy machine a pool thread that has not
    started yet when the caller has run every range finds nothing left, and nobody waits for
    it. An exception in a range is raised here (the other ranges may then still be running).
    """
    threads = min(kernel_threads(), tasks)
    if threads <= 1:
        function(0, tasks)
        return
    size = -(-tasks // (threads * chunks_per_thread))
    ranges = [(first, min(first + size, tasks)) for first in range(0, tasks, size)]
    lock = threading.Lock()             # guards progress and errors
    finished = threading.Lock()         # held until every range is done, or one failed
    finished.acquire()
    progress = {"taken": 0, "done": 0}
    errors = []

    def work():
        while True:
            with lock:
                if progress["taken"] == len(ranges) or errors:
                    return
                first, stop = ranges[progress["taken"]]
                progress["taken"] += 1
            try:
                function(first, stop)
            except BaseException as error:      # handed to the caller, not lost in a thread
                with lock:
                    errors.append(error)
                    if progress["done"] < len(ranges):
                        progress["done"] = len(ranges)
                        finished.release()
                return
            with lock:
                progress["done"] += 1
                if progress["done"] == len(ranges):
                    finished.release()

    jobs = _pool_jobs()
    for _ in range(threads - 1):
        jobs.put(work)
    work()
    finished.acquire()                  # returns at once if the ranges are all done
    if errors:
        raise errors[0]
