"""The backend switch: set/get/use_backend, the TINYLLM_BACKEND variable, the errors for an
unknown name and for "cuda" without a GPU, what "auto" picks, and that a small model computes
the same loss and gradients on the numpy and numba backends."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinyllm
from tinyllm import functional as F
from tinyllm.kernels import backend
from tinyllm.kernels.backend import get_backend, set_backend, use_backend
from tinyllm.ops.attention import fused_attention


@pytest.fixture(autouse=True)
def _restore_backend():
    before = get_backend()
    yield
    set_backend(before)


@pytest.mark.parametrize("name", ["numpy", "numba", "auto"])
def test_set_backend_is_read_back_by_get_backend(name):
    set_backend(name)
    assert get_backend() == name


def test_use_backend_restores_the_previous_backend():
    set_backend("numpy")
    with use_backend("numba"):
        assert get_backend() == "numba"
    assert get_backend() == "numpy"


def test_use_backend_restores_the_previous_backend_when_the_block_raises():
    set_backend("numba")
    with pytest.raises(KeyError):
        with use_backend("numpy"):
            raise KeyError("inside")
    assert get_backend() == "numba"


def test_unknown_backend_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backend 'gpu'.*'numpy', 'numba', 'cuda', 'auto'"):
        set_backend("gpu")


@pytest.mark.skipif(backend.cuda_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_says_so_clearly():
    with pytest.raises(RuntimeError, match="no CUDA GPU found; use the numpy or numba backend"):
        set_backend("cuda")
    assert get_backend() != "cuda"


def _backend_in_subprocess(value):
    env = dict(os.environ, TINYLLM_BACKEND=value)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.run([sys.executable, "-c", "from tinyllm.kernels import backend; "
                           "print(backend.get_backend())"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_environment_variable_sets_the_backend_at_import():
    result = _backend_in_subprocess("numba")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numba"


def test_environment_variable_with_an_unknown_name_fails_at_import_naming_the_variable():
    result = _backend_in_subprocess("fortran")
    assert result.returncode != 0
    assert "TINYLLM_BACKEND" in result.stderr and "'fortran'" in result.stderr


@pytest.mark.parametrize("kernel", sorted(backend.AUTO_CHOICE))
def test_auto_runs_the_measured_choice_of_each_kernel(kernel):
    set_backend("auto")
    assert backend.resolve(kernel) == backend.AUTO_CHOICE[kernel]
    assert backend.AUTO_CHOICE[kernel] in ("numpy", "numba")       # never CUDA on its own


def test_an_explicit_backend_is_used_for_every_size():
    set_backend("numba")
    assert backend.resolve("matmul") == "numba"
    set_backend("numpy")
    assert backend.resolve("attention") == "numpy"


def _small_model_loss_and_grads(seed=0):
    """A linear layer, GELU, fused causal attention, a projection and cross-entropy."""
    rng = np.random.default_rng(seed)
    B, H, T, D, V = 2, 2, 9, 4, 11
    x = tinyllm.tensor(rng.standard_normal((B, T, H * D)), dtype=np.float32)
    w_qkv = tinyllm.tensor(rng.standard_normal((H * D, 3 * H * D)) * 0.3, requires_grad=True,
                           dtype=np.float32)
    w_out = tinyllm.tensor(rng.standard_normal((H * D, V)) * 0.3, requires_grad=True,
                           dtype=np.float32)
    targets = tinyllm.tensor(rng.integers(0, V, size=(B * T,)))
    qkv = (x @ w_qkv).gelu().reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
    y = fused_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
    logits = y.permute(0, 2, 1, 3).reshape(B * T, H * D) @ w_out
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    return loss.item(), w_qkv.grad, w_out.grad


def assert_the_small_model_agrees_with_numpy_on(name):
    """The loss and gradients of ``_small_model_loss_and_grads`` on backend ``name`` equal
    those on the NumPy reference, to float32 rounding."""
    with use_backend("numpy"):
        loss_np, grad_qkv_np, grad_out_np = _small_model_loss_and_grads()
    with use_backend(name):
        loss, grad_qkv, grad_out = _small_model_loss_and_grads()
    assert loss == pytest.approx(loss_np, rel=1e-5)
    np.testing.assert_allclose(grad_qkv, grad_qkv_np, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad_out, grad_out_np, rtol=1e-4, atol=1e-6)


def test_a_small_model_gets_the_same_loss_and_gradients_on_numpy_and_numba():
    assert_the_small_model_agrees_with_numpy_on("numba")


def test_importing_tinyllm_first_sets_the_thread_settings_before_numpy_loads():
    code = ("import sys, os; import tinyllm; from tinyllm.kernels import cpu_runtime; "
            "print(os.environ['OPENBLAS_THREAD_TIMEOUT'], os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["4", "PASSIVE"]
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"                  # a value the user set is kept
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "20"


def test_the_blas_setting_reports_whether_it_holds():
    from tinyllm.kernels import cpu_runtime
    if not cpu_runtime.loaded_openblas_libraries():
        pytest.skip("NumPy does not use OpenBLAS here")
    assert cpu_runtime.sleep_idle_blas_threads() is True     # NumPy is loaded in this process
    assert cpu_runtime.openblas_thread_timeout() == int(os.environ["OPENBLAS_THREAD_TIMEOUT"])


def test_importing_numpy_first_still_puts_idle_blas_threads_to_sleep():
    code = ("import numpy; import tinyllm; from tinyllm.kernels import cpu_runtime as c; "
            "print(c.openblas_thread_timeout(), len(c.restarted_blas_libraries)); "
            "print(float(numpy.ones((300, 300)) @ numpy.ones(300) @ numpy.ones(300)))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    lines = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    timeout, restarted = lines[0].split()
    if timeout == "None":
        pytest.skip("NumPy does not use OpenBLAS here")
    assert (timeout, restarted) == ("4", "1")
    assert float(lines[1]) == 300.0 ** 2                     # BLAS still works after it
