"""The numba.cuda kernels (tiled matmul, fused attention forward and backward) against their
NumPy references.

Without a GPU they run under Numba's CUDA simulator, which must be switched on
(``NUMBA_ENABLE_CUDASIM=1``) before Numba is first imported. So, in an ordinary test run, the
single test ``test_cuda_kernels_pass_under_the_simulator`` runs this file again in a
subprocess with that variable set, and the kernel tests below run there (in this process they
are skipped). On a machine with a GPU they also run directly, on the device. The simulator
runs every GPU thread as a Python thread: shapes stay tiny, with small tiles.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import rng_for
from tinyllm.kernels import attention as reference
from tinyllm.kernels.backend import cuda_available

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
ON_CUDA = SIMULATED or cuda_available()
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="runs in the simulator subprocess of "
                                                    "test_cuda_kernels_pass_under_the_simulator")


@pytest.mark.skipif(SIMULATED, reason="already inside the simulator subprocess")
def test_cuda_kernels_pass_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q",
                             "-p", "no:cacheprovider", os.path.abspath(__file__)],
                            cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    # Every kernel test ran there; only this launcher was skipped.
    assert re.search(r"\b\d+ passed, 1 skipped\b", summary), summary


def tolerance(dtype, k):
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-10)
    return dict(rtol=1e-4, atol=1e-5 * np.sqrt(max(k, 1)))


# ----- matmul ---------------------------------------------------------------------------------
SMALL_TILES = dict(tile=8, micro=2, depth=4)     # 16 threads per block


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (7, 9, 5), (16, 16, 16), (17, 7, 9)])
def test_cuda_matmul_writes_every_element_and_matches_numpy(n, k, m, dtype):
    from numba import cuda
    from tinyllm.kernels.cuda_matmul import matmul_cuda_device
    rng = rng_for(n + k + m)
    a = rng.standard_normal((2, n, k)).astype(dtype)
    b = rng.standard_normal((2, k, m)).astype(dtype)
    d_c = cuda.to_device(np.full((2, n, m), np.nan, dtype=dtype))      # poisoned
    matmul_cuda_device(cuda.to_device(a), cuda.to_device(b), d_c, **SMALL_TILES)
    c = d_c.copy_to_host()
    assert not np.isnan(c).any()
    np.testing.assert_allclose(c, np.matmul(a, b), **tolerance(dtype, k))


@needs_cuda
def test_cuda_matmul_with_the_default_64_by_64_tiles():
    from tinyllm.kernels.cuda_matmul import matmul_cuda
    rng = rng_for(1)
    a, b = rng.standard_normal((16, 16)), rng.standard_normal((16, 16))
    np.testing.assert_allclose(matmul_cuda(a, b), a @ b, rtol=1e-10, atol=1e-10)


@needs_cuda
@pytest.mark.parametrize("shape_a,shape_b", [((5,), (5, 3)), ((2, 3, 4), (4, 2)),
                                             ((3, 0), (0, 2))])
def test_cuda_matmul_follows_numpys_shape_rules(shape_a, shape_b):
    from tinyllm.kernels.cuda_matmul import matmul_cuda
    rng = rng_for(2)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    result = matmul_cuda(a, b, **SMALL_TILES)
    assert result.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(result, np.matmul(a, b), rtol=1e-10, atol=1e-10)


# ----- attention ------------------------------------------------------------------------------
SMALL_BLOCKS = dict(block_q=4, block_k=4, max_d=8)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal,padding", [(False, False), (True, False), (False, True),
                                            (True, True)])
@pytest.mark.parametrize("shape", [(1, 2, 5, 7, 3, 2), (2, 1, 9, 6, 4, 4), (1, 1, 1, 1, 2, 2)])
def test_cuda_attention_matches_the_references(shape, causal, padding, dtype):
    from tinyllm.kernels.cuda_attention import attention_backward_cuda, attention_forward_cuda
    B, H, Tq, Tk, D, Dv = shape
    rng = rng_for(sum(shape))
    q = rng.standard_normal((B, H, Tq, D)).astype(dtype)
    k = rng.standard_normal((B, H, Tk, D)).astype(dtype)
    v = rng.standard_normal((B, H, Tk, Dv)).astype(dtype)
    mask = None
    if padding:
        mask = rng.random((B, Tk)) < 0.3
        mask[-1] = True                            # a batch entry whose rows see no key
    out, lse = attention_forward_cuda(q, k, v, 0.5, causal, mask, **SMALL_BLOCKS)
    ref_out, ref_lse = reference.attention_forward_reference(q, k, v, 0.5, causal, mask)
    np.testing.assert_allclose(out, ref_out, **tolerance(dtype, D))
    np.testing.assert_allclose(lse, ref_lse, **tolerance(dtype, D))
    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grads = attention_backward_cuda(grad_out, q, k, v, out, lse, 0.5, causal, mask,
                                    **SMALL_BLOCKS)
    ref_grads = reference.attention_backward_reference(grad_out, q, k, v, ref_out, ref_lse,
                                                       0.5, causal, mask)
    for name, g, ref in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(g, ref, err_msg="d" + name, **tolerance(dtype, Tk))


@needs_cuda
def test_cuda_attention_rejects_head_sizes_above_its_buffers():
    from tinyllm.kernels.cuda_attention import attention_forward_cuda
    q = np.zeros((1, 1, 2, 9))
    with pytest.raises(ValueError, match="head sizes up to 8"):
        attention_forward_cuda(q, q, q, 1.0, **SMALL_BLOCKS)


@needs_cuda
def test_the_cuda_backend_routes_matmul_and_attention_to_the_gpu_kernels():
    from tinyllm.kernels import matmul
    from tinyllm.kernels.backend import use_backend
    rng = rng_for(3)
    a, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 4))
    q = rng.standard_normal((1, 1, 3, 2))
    with use_backend("cuda"):
        np.testing.assert_allclose(matmul.matmul(a, b), a @ b, rtol=1e-10, atol=1e-10)
        out, _ = reference.attention_forward(q, q, q, 1.0)
    np.testing.assert_allclose(out, reference.attention_forward_reference(q, q, q, 1.0)[0],
                               rtol=1e-10, atol=1e-10)
