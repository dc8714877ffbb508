"""The backend switch: which implementation of a kernel runs, NumPy, Numba on the CPU, or CUDA.

Every kernel in ``tinyllm.kernels`` comes in three versions that compute the same numbers:

- ``"numpy"``: the reference, written with NumPy array operations (BLAS for matmul);
- ``"numba"``: a compiled CPU loop (``@njit``; the fused kernels run ranges of their work on
  every core through ``cpu_runtime.run_in_chunks``);
- ``"cuda"``: a ``numba.cuda`` kernel on an NVIDIA GPU (inputs are copied to the GPU and the
  results back on every call, since tinyllm's tensors live in host memory): the modules of
  ``tinyllm.kernels.cuda``;

and ``"auto"`` (the default) picks, kernel by kernel, the one measured fastest on a CPU (see
``AUTO_CHOICE``). ``"auto"`` never picks CUDA: with tensors in host memory, each call would pay
two PCIe copies, which cost more than a small kernel saves; ask for ``"cuda"`` explicitly.

    tinyllm.set_backend("numba")          # from now on
    with tinyllm.use_backend("numpy"):    # inside the block only
        loss = model(x)
    TINYLLM_BACKEND=numba python train.py # read once, when tinyllm is imported

All backends give the same results up to float rounding (the tests hold each kernel to its
NumPy reference), so a model trains to the same losses on any of them.
"""

import contextlib
import importlib
import os

BACKENDS = ("numpy", "numba", "cuda", "auto")

# What "auto" runs on the CPU, kernel by kernel. Measured with benchmarks/bench_kernels.py on
# the 2-core AMD EPYC (Zen 5, AVX-512) machine of benchmarks/RESULTS.md, NumPy 2.4 with
# OpenBLAS 0.3.31 as this environment configures it (OPENBLAS_CORETYPE=Haswell):
# - matmul: NumPy's BLAS. The blocked Numba kernel reached 0.4-0.9x BLAS's GFLOP/s from 128^3
#   to 1024^3 float32 (and lost more below, where its parallel launch dominates);
# - attention: the fused Numba kernels, 2-5x faster than the NumPy composite forward +
#   backward from T = 64 to 1024, with O(T) instead of O(T^2) memory;
# - layer_norm, gelu, adam: Numba, one pass over memory instead of NumPy's several (1.3-14x);
# - softmax_cross_entropy: Numba, 1.8x at 768 x 65 logits and 2.6x at 768 x 4096 (its time is
#   the exponentials: the kernel's ``exp_float32`` compiles to SIMD code, as NumPy's exp is);
# - embedding (the backward's scatter-add of rows): Numba, ~20x faster than np.add.at at
#   768 ids x 128 features.
AUTO_CHOICE = {
    "matmul": "numpy",
    "attention": "numba",
    "softmax_cross_entropy": "numba",
    "layer_norm": "numba",
    "gelu": "numba",
    "adam": "numba",
    "embedding": "numba",
}

NO_GPU_MESSAGE = "no CUDA GPU found; use the numpy or numba backend"

_current = "auto"


def _check_name(name, where):
    if name not in BACKENDS:
        raise ValueError("%s: unknown backend %r; choose one of %s"
                         % (where, name, ", ".join(repr(b) for b in BACKENDS)))


def cuda_available():
    """True when ``numba.cuda`` finds a CUDA driver and at least one GPU."""
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:           # no driver library, a broken toolkit: no usable GPU either way
        return False


def require_cuda():
    """Raise the clear RuntimeError of a missing GPU before any CUDA call is made."""
    if not cuda_available():
        raise RuntimeError(NO_GPU_MESSAGE)


def set_backend(name):
    """Run the kernels on ``name``: "numpy", "numba", "cuda" or "auto" (see the module doc).

    "cuda" on a machine without a CUDA GPU raises RuntimeError at once, so the mistake shows
    here and not deep inside the first kernel call.
    """
    global _current
    _check_name(name, "set_backend")
    if name == "cuda":
        require_cuda()
    _current = name


def get_backend():
    """The backend name last set: "numpy", "numba", "cuda" or "auto"."""
    check_environment()
    return _current


@contextlib.contextmanager
def use_backend(name):
    """``with use_backend("numba"): ...`` runs the block on ``name`` and restores the previous
    backend afterwards, also when the block raises."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def resolve(kernel):
    """The implementation ("numpy", "numba" or "cuda") that ``kernel`` runs now."""
    if _current == "auto":
        return AUTO_CHOICE[kernel]
    return _current


def pick(kernel, reference, numba_version, cuda_name):
    """The function that runs ``kernel`` (a key of AUTO_CHOICE) on the current backend: the
    NumPy ``reference``, the compiled ``numba_version``, or the GPU version ``cuda_name``
    ("module.function" in ``tinyllm.kernels.cuda``), imported only when it is chosen, since
    importing ``numba.cuda`` takes a while and needs no GPU otherwise.

    Every dispatcher in ``tinyllm.kernels`` has the same two lines::

        kernel = backend.pick("gelu", gelu_forward_reference, gelu_forward_numba,
                              "gelu.gelu_forward_cuda")
        return kernel(x, approximate)
    """
    check_environment()
    which = resolve(kernel)
    if which == "cuda":
        module, function = cuda_name.split(".")
        return getattr(importlib.import_module("tinyllm.kernels.cuda." + module), function)
    return numba_version if which == "numba" else reference


def _from_environment():
    name = os.environ.get("TINYLLM_BACKEND", "").strip().lower()
    if not name:
        return "auto"
    _check_name(name, "the environment variable TINYLLM_BACKEND")
    if name == "cuda":
        require_cuda()
    return name


def check_environment():
    """Raise the ValueError of a TINYLLM_BACKEND that cannot work (an unknown name, cuda
    without a GPU) until ``set_backend`` chooses a backend. Importing tinyllm does not raise
    it, so that the ``tinyllm`` command can report it in one line."""
    if _environment_error is not None and _current is None:
        raise ValueError(_environment_error)


try:
    _current, _environment_error = _from_environment(), None
except (ValueError, RuntimeError) as error:
    _current, _environment_error = None, "TINYLLM_BACKEND=%s: %s" % (
        os.environ.get("TINYLLM_BACKEND", "").strip(), str(error).split(": ", 1)[-1])
