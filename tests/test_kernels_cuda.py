"""The numba.cuda kernels (tiled matmul, fused attention, the training-path kernels) against their
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
from tinyllm.kernels import adam, embedding_backward, gelu, layer_norm, softmax_cross_entropy
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
    from tinyllm.kernels.cuda.matmul import matmul_cuda_device
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
    from tinyllm.kernels.cuda.matmul import matmul_cuda
    rng = rng_for(1)
    a, b = rng.standard_normal((16, 16)), rng.standard_normal((16, 16))
    np.testing.assert_allclose(matmul_cuda(a, b), a @ b, rtol=1e-10, atol=1e-10)


@needs_cuda
@pytest.mark.parametrize("shape_a,shape_b", [((5,), (5, 3)), ((2, 3, 4), (4, 2)),
                                             ((3, 0), (0, 2))])
def test_cuda_matmul_follows_numpys_shape_rules(shape_a, shape_b):
    from tinyllm.kernels.cuda.matmul import matmul_cuda
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
    from tinyllm.kernels.cuda.attention import attention_backward_cuda, attention_forward_cuda
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
    from tinyllm.kernels.cuda.attention import attention_forward_cuda
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


# ----- the training-path kernels -------------------------------------------------------------
FEW_THREADS = dict(threads=8)       # 8 threads per block: rows of 1-37 columns cover the
                                    # cases fewer columns than threads, equal, and several each


def fused_tolerance(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,V", [(1, 1), (3, 7), (5, 8), (4, 37)])
def test_cuda_softmax_cross_entropy_matches_the_reference(N, V, dtype):
    from tinyllm.kernels.cuda.softmax_cross_entropy import softmax_cross_entropy_cuda
    rng = rng_for(N * V)
    logits = (3 * rng.standard_normal((N, V))).astype(dtype)
    targets = rng.integers(0, V, size=N)
    if N > 1:
        targets[1] = -100                               # an ignored row
    loss, grad = softmax_cross_entropy_cuda(logits, targets, **FEW_THREADS)
    ref_loss, ref_grad = softmax_cross_entropy.softmax_cross_entropy_reference(logits, targets)
    assert grad.dtype == dtype and loss.dtype == dtype
    np.testing.assert_allclose(loss, ref_loss, **fused_tolerance(dtype))
    np.testing.assert_allclose(grad, ref_grad, **fused_tolerance(dtype))


@needs_cuda
def test_cuda_softmax_cross_entropy_with_every_row_ignored_is_nan_with_zero_gradient():
    from tinyllm.kernels.cuda.softmax_cross_entropy import softmax_cross_entropy_cuda
    loss, grad = softmax_cross_entropy_cuda(np.ones((2, 5)), np.array([-100, -100]),
                                            **FEW_THREADS)
    assert np.isnan(loss) and not grad.any()


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C", [(1, 1), (3, 7), (5, 8), (9, 37)])
@pytest.mark.parametrize("affine", [True, False])
def test_cuda_layer_norm_matches_the_reference(N, C, affine, dtype, monkeypatch):
    from tinyllm.kernels.cuda import layer_norm as cuda_layer_norm
    monkeypatch.setattr(cuda_layer_norm, "ROWS_PER_CHUNK", 4)    # 9 rows: chunks of 4, 4 and 1
    rng = rng_for(N + C)
    x = (rng.standard_normal((N, C)) + 2).astype(dtype)
    weight = rng.standard_normal(C).astype(dtype) if affine else None
    bias = rng.standard_normal(C).astype(dtype) if affine else None
    got = cuda_layer_norm.layer_norm_forward_cuda(x, weight, bias, **FEW_THREADS)
    want = layer_norm.layer_norm_forward_reference(x, weight, bias)
    for name, g, w in zip(["y", "mean", "rstd"], got, want):
        np.testing.assert_allclose(g, w, err_msg=name, **fused_tolerance(dtype))
    grad_y = rng.standard_normal((N, C)).astype(dtype)
    _, mean, rstd = want
    got = cuda_layer_norm.layer_norm_backward_cuda(grad_y, x, mean, rstd, weight, **FEW_THREADS)
    want = layer_norm.layer_norm_backward_reference(grad_y, x, mean, rstd, weight)
    for name, g, w in zip(["grad_x", "grad_weight", "grad_bias"], got, want):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g, w, err_msg=name, **fused_tolerance(dtype))


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (3, 7), (2, 5, 9)])
def test_cuda_gelu_matches_the_reference(shape, approximate, dtype):
    from tinyllm.kernels.cuda.gelu import gelu_backward_cuda, gelu_forward_cuda
    rng = rng_for(len(shape))
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    grad_y = rng.standard_normal(shape).astype(dtype)
    y = gelu_forward_cuda(x, approximate, **FEW_THREADS)
    grad_x = gelu_backward_cuda(grad_y, x, approximate, **FEW_THREADS)
    assert y.shape == shape and y.dtype == dtype and grad_x.dtype == dtype
    np.testing.assert_allclose(y, gelu.gelu_forward_reference(x, approximate),
                               **fused_tolerance(dtype))
    np.testing.assert_allclose(grad_x, gelu.gelu_backward_reference(grad_y, x, approximate),
                               **fused_tolerance(dtype))


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled,weight_decay", [(False, 0.0), (False, 0.1), (True, 0.1)])
def test_cuda_adam_update_matches_the_reference_in_place(decoupled, weight_decay, dtype):
    from tinyllm.kernels.cuda.adam import adam_update_cuda
    rng = rng_for(7)
    ours = [rng.standard_normal((3, 11)).astype(dtype) for _ in range(3)]
    ours[2] = np.abs(ours[2])                               # exp_avg_sq >= 0
    theirs = [a.copy() for a in ours]
    before = [a.copy() for a in ours]
    for step in (1, 2, 3):
        grad = rng.standard_normal((3, 11)).astype(dtype)
        adam_update_cuda(ours[0], grad, ours[1], ours[2], step, 1e-2, 0.9, 0.99, 1e-8,
                         weight_decay, decoupled, **FEW_THREADS)
        adam.adam_update_reference(theirs[0], grad, theirs[1], theirs[2], step, 1e-2, 0.9,
                                    0.99, 1e-8, weight_decay, decoupled)
    for name, a, b, old in zip(["param", "exp_avg", "exp_avg_sq"], ours, theirs, before):
        assert not np.array_equal(a, old), name + " was not updated in place"
        np.testing.assert_allclose(a, b, err_msg=name, **fused_tolerance(dtype))


@needs_cuda
def test_cuda_adam_update_rejects_a_non_contiguous_parameter():
    from tinyllm.kernels.cuda.adam import adam_update_cuda
    p = np.zeros((4, 4))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        adam_update_cuda(p, p, p, p, 1, 1e-3, 0.9, 0.999, 1e-8)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_embedding_backward_adds_repeated_ids(dtype):
    from tinyllm.kernels.cuda.embedding_backward import embedding_backward_cuda
    rng = rng_for(11)
    ids = np.array([2, 0, 2, 2, 5, 0])
    grad = rng.standard_normal((6, 3)).astype(dtype)
    got = embedding_backward_cuda(ids, grad, 7, **FEW_THREADS)
    np.testing.assert_allclose(got, embedding_backward.embedding_backward_reference(ids, grad, 7),
                               **fused_tolerance(dtype))
    assert not got[[1, 3, 4, 6]].any()                      # ids never seen: zero rows


@needs_cuda
def test_cuda_fused_kernels_refuse_other_dtypes_and_odd_block_sizes():
    from tinyllm.kernels.cuda.gelu import gelu_forward_cuda
    with pytest.raises(TypeError, match="float32 or float64"):
        gelu_forward_cuda(np.arange(4))
    with pytest.raises(ValueError, match="power of two"):
        gelu_forward_cuda(np.zeros(4), threads=12)


@needs_cuda
def test_the_cuda_backend_routes_the_training_kernels_to_the_gpu(monkeypatch):
    import importlib
    from tinyllm.kernels.backend import use_backend
    called = []
    for module, name in [("softmax_cross_entropy", "softmax_cross_entropy_cuda"),
                         ("layer_norm", "layer_norm_forward_cuda"), ("gelu", "gelu_forward_cuda"),
                         ("adam", "adam_update_cuda"),
                         ("embedding_backward", "embedding_backward_cuda")]:
        cuda_module = importlib.import_module("tinyllm.kernels.cuda." + module)
        original = getattr(cuda_module, name)
        monkeypatch.setattr(cuda_module, name,
                            lambda *a, _f=original, _n=name, **k: called.append(_n) or _f(*a, **k))
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    with use_backend("cuda"):
        softmax_cross_entropy.softmax_cross_entropy(x, np.array([0, 1, 3]))
        layer_norm.layer_norm_forward(x, None, None)
        gelu.gelu_forward(x)
        adam.adam_update(x.copy(), x, np.zeros_like(x), np.zeros_like(x), 1, 1e-3, 0.9, 0.999,
                          1e-8)
        embedding_backward.embedding_backward(np.array([0, 1, 0]), x, 2)
    assert len(called) == 5, called


@needs_cuda
def test_a_small_model_gets_the_same_loss_and_gradients_on_cuda_and_numpy():
    from test_backend import assert_the_small_model_agrees_with_numpy_on
    assert_the_small_model_agrees_with_numpy_on("cuda")


@needs_cuda
def test_the_gpu_benchmark_runs_at_tiny_sizes(capsys, monkeypatch):
    """benchmarks/bench_kernels.py's GPU section, so that it works the day it meets a GPU."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks",
                        "bench_kernels.py")
    spec = importlib.util.spec_from_file_location("bench_kernels", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "SETTLE_SECONDS", 0)
    monkeypatch.setattr(bench, "WARM_SECONDS", 0)
    monkeypatch.setattr(bench, "MATMUL_TILINGS", ((8, 2, 4), (16, 4, 4)))
    bench.bench_gpu(n=16, attention_shape=(1, 1, 8, 4), repeats=1)
    printed = capsys.readouterr().out
    assert "CUDA matmul 16^3 float32" in printed and "tinyllm, tile 16, 4x4 per thread" in printed
    assert "CUDA attention forward, B=1 H=1 T=8 D=4" in printed and "fused (tinyllm)" in printed


@needs_cuda
def test_copies_between_host_and_gpu_are_counted():
    from tinyllm.kernels.cuda.attention import attention_forward_cuda
    from tinyllm.kernels.cuda.matmul import matmul_cuda
    from tinyllm.kernels.cuda.transfers import count_transfers
    a, b = np.ones((5, 6), np.float32), np.ones((6, 4), np.float32)
    q = np.zeros((1, 2, 3, 4))
    with count_transfers() as outer:
        matmul_cuda(a, b, **SMALL_TILES)
        with count_transfers() as inner:
            out, _ = attention_forward_cuda(q, q, q, 1.0, **SMALL_BLOCKS)
    np.testing.assert_allclose(out, reference.attention_forward_reference(q, q, q, 1.0)[0])
    # attention: q, k, v and the (1, 1) padding placeholder in; out and L back
    assert (inner.to_device, inner.bytes_to_device) == (4, 3 * q.nbytes + 1)
    assert (inner.to_host, inner.bytes_to_host) == (2, out.nbytes + 6 * 8)
    # the matmul: a and b in, c back; the outer block also saw the inner block's copies
    assert (outer.to_device, outer.bytes_to_device) == (6, a.nbytes + b.nbytes + 3 * q.nbytes + 1)
    assert (outer.to_host, outer.bytes_to_host) == (3, 5 * 4 * 4 + out.nbytes + 6 * 8)
    assert str(inner) == "4 copies to the GPU (577 bytes), 2 back (240 bytes)"


def test_attention_tiles_fit_in_shared_memory_for_every_head_size():
    from tinyllm.kernels.cuda.attention import SHARED_BYTES, block_size, launch_sizes
    assert block_size(64, 4) == 64 and block_size(128, 4) == 32 and block_size(64, 8) == 32
    for itemsize in (4, 8):
        for head in range(1, 257):
            rows = block_size(head, itemsize)
            assert 2 * rows * head * itemsize <= SHARED_BYTES < 4 * rows * head * itemsize \
                or rows == 64
    q, v = np.zeros((1, 1, 5, 48), np.float32), np.zeros((1, 1, 5, 80), np.float32)
    assert launch_sizes(q, v) == (32, 32, 80)                 # compiled for max(D, Dv)
    with pytest.raises(ValueError, match="head sizes up to 256"):
        launch_sizes(np.zeros((1, 1, 2, 257)), np.zeros((1, 1, 2, 4)))


def test_other_tile_sizes_recompile_the_module_level_kernel_once():
    from tinyllm.kernels.cuda.matmul import matmul_kernel, matmul_tiled
    assert matmul_kernel() is matmul_tiled                    # the module's constants
    small = matmul_kernel(tile=8, micro=2, depth=4)
    assert small is not matmul_tiled and matmul_kernel(8, 2, 4) is small
    constants = small.py_func.__globals__
    assert (constants["TILE"], constants["MICRO"], constants["DEPTH"], constants["THREADS"]) \
        == (8, 2, 4, 4)
    assert matmul_tiled.py_func.__globals__["TILE"] == 64     # the module is left as it was


def test_recompiled_names_a_constant_the_kernel_does_not_have():
    from tinyllm.kernels.cuda.common import recompiled
    from tinyllm.kernels.cuda.matmul import matmul_kernel, matmul_tiled
    with pytest.raises(ValueError, match="matmul_tiled has no module constants TILES"):
        recompiled(matmul_tiled, TILES=8)
    with pytest.raises(ValueError, match=r"micro \(3\) must divide tile \(8\)"):
        matmul_kernel(tile=8, micro=3)


@needs_cuda
def test_cuda_row_kernels_refuse_more_threads_than_their_shared_scratch():
    from tinyllm.kernels.cuda.layer_norm import layer_norm_forward_cuda
    with pytest.raises(ValueError, match="power of two up to 128, got 256"):
        layer_norm_forward_cuda(np.zeros((2, 3)), None, None, threads=256)
