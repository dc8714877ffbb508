"""``tinyllm info``: what a bug report needs to know about this installation.

The versions of tinyllm, Python, NumPy, Numba and the BLAS library NumPy uses; the kernel
backend that runs and why; the thread settings (the environment variables that decide how
many threads NumPy's BLAS, OpenMP and Numba start, and which of them ``import tinyllm`` set);
whether a CUDA GPU is visible; where Numba keeps the compiled kernels and whether a run will
find them there. ``report()`` returns the lines; nothing here fails when a part is missing.
"""

import os
import platform
import sys
from pathlib import Path

import numba
import numpy as np

import tinyllm
from tinyllm.kernels import backend, compilation, cpu_runtime

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY",
                    "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE")


def blas_description():
    """NumPy's BLAS: name and version from NumPy's build configuration, and from threadpoolctl
    (when installed) the library actually loaded, its CPU kernel and its threads."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = "%s %s" % (blas.get("name", "?"), blas.get("version", "?"))
    except Exception:               # NumPy < 1.25 has no mode="dicts"
        text = "unknown (see numpy.show_config())"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return text + " (install threadpoolctl for its threads and CPU kernel)"
    loaded = ["%s %s, kernel %s, %s threads" % (lib.get("internal_api"), lib.get("version"),
                                                lib.get("architecture"), lib.get("num_threads"))
              for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return text + ("; loaded: " + "; ".join(loaded) if loaded else "")


def backend_description():
    """The backend that runs, where the choice came from, and for "auto" what it picks."""
    name = backend.get_backend()
    source = ("TINYLLM_BACKEND=%s" % os.environ["TINYLLM_BACKEND"]
              if os.environ.get("TINYLLM_BACKEND") else "the default; TINYLLM_BACKEND is unset")
    if name != "auto":
        return "%s (%s)" % (name, source)
    picks = ", ".join("%s %s" % (kernel, choice) for kernel, choice in
                      backend.AUTO_CHOICE.items())
    return ("auto (%s): per kernel, the one measured fastest on a CPU (%s); never cuda, whose "
            "copies to and from the GPU cost more than these kernels save" % (source, picks))


def threads_description():
    """CPUs, Numba's threads, and each thread variable: its value and who set it."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    settings = []
    for name in THREAD_VARIABLES:
        value = os.environ.get(name)
        if value is None:
            settings.append("%s unset" % name)
        elif name in cpu_runtime.variables_set:
            settings.append("%s=%s (set by tinyllm)" % (name, value))
        else:
            settings.append("%s=%s" % (name, value))
    return "%d CPUs usable; Numba %d threads; %s" % (cpus, numba.get_num_threads(),
                                                      ", ".join(settings))


def cuda_description():
    """Whether numba.cuda sees a GPU (never raises: no driver, no numba.cuda, ...)."""
    if not backend.cuda_available():
        return "no CUDA GPU visible (the numpy and numba backends run on the CPU)"
    try:
        from numba import cuda
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        return "%s (use it with --backend cuda)" % name
    except Exception as error:
        return "a GPU is visible but cannot be opened: %s" % error


def cache_description():
    """Numba's cache folder and how many of tinyllm's kernels it holds compiled."""
    names = [name for kernels in compilation.KERNELS.values() for name in kernels]
    cached = sum(compilation.is_cached(name) for name in names)
    state = ("warm" if cached == len(names) else "empty" if cached == 0 else "partly warm")
    where = ("NUMBA_CACHE_DIR" if os.environ.get("NUMBA_CACHE_DIR")
             else "beside the kernels' source")
    return "%s (%s), %s: %d of %d kernels compiled" % (compilation.cache_dir(), where, state,
                                                      cached, len(names))


def report():
    """The lines of ``tinyllm info``, "name: value" each."""
    import llvmlite
    fields = [
        ("tinyllm", "%s (%s)" % (tinyllm.__version__, Path(tinyllm.__file__).parent)),
        ("Python", "%s (%s, %s)" % (platform.python_version(),
                                    platform.python_implementation(), platform.platform())),
        ("NumPy", np.__version__),
        ("BLAS", blas_description()),
        ("Numba", "%s (llvmlite %s)" % (numba.__version__, llvmlite.__version__)),
        ("backend", backend_description()),
        ("threads", threads_description()),
        ("CUDA", cuda_description()),
        ("Numba cache", cache_description()),
    ]
    return ["%s: %s" % (name, value) for name, value in fields]


def main(out=sys.stdout):
    for line in report():
        print(line, file=out)
    return 0
