"""The thread pool that runs the fused attention kernels (``cpu_runtime.run_in_chunks``): every
task runs once, errors reach the caller, and the number of threads changes no result."""

import threading

import numpy as np
import pytest

from tinyllm.kernels import attention as kernels
from tinyllm.kernels import cpu_runtime


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("tasks", [1, 2, 7, 64])
def test_every_task_runs_exactly_once(monkeypatch, threads, tasks):
    monkeypatch.setattr(cpu_runtime, "kernel_threads", lambda: threads)
    counts = np.zeros(tasks, dtype=int)
    lock = threading.Lock()

    def count(first, stop):
        assert 0 <= first < stop <= tasks
        with lock:
            counts[first:stop] += 1

    cpu_runtime.run_in_chunks(count, tasks)
    assert counts.tolist() == [1] * tasks


def test_an_error_in_a_chunk_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(cpu_runtime, "kernel_threads", lambda: 2)

    def fail_on_task_5(first, stop):
        if first <= 5 < stop:
            raise ValueError("task 5 failed")

    with pytest.raises(ValueError, match="task 5 failed"):
        cpu_runtime.run_in_chunks(fail_on_task_5, 16)


@pytest.mark.parametrize("causal", [False, True])
def test_the_attention_kernels_give_the_same_bits_on_any_number_of_threads(monkeypatch,
                                                                           causal):
    rng = np.random.default_rng(0)
    q, k, v, grad_out = (rng.standard_normal((2, 3, 130, 8)).astype(np.float32)
                         for _ in range(4))
    results = []
    for threads in (1, 2, 5):
        monkeypatch.setattr(cpu_runtime, "kernel_threads", lambda: threads)
        out, lse = kernels.attention_forward_fused_numba(q, k, v, 0.35, causal)
        grads = kernels.attention_backward_fused_numba(grad_out, q, k, v, out, lse, 0.35,
                                                       causal)
        results.append((out, lse) + tuple(grads))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_blas_threads_sets_openblas_count_inside_the_block_and_restores_it():
    functions = cpu_runtime._openblas_thread_functions()
    if not functions:
        pytest.skip("no OpenBLAS with openblas_set_num_threads loaded (another BLAS or no /proc)")
    _, get_threads = functions[0]
    before = get_threads()
    with cpu_runtime.blas_threads(1):
        assert get_threads() == 1
    assert get_threads() == before


def test_limit_threads_lowers_numba_and_run_in_chunks_threads_and_restores_them():
    import numba
    before_numba, before_kernel = numba.get_num_threads(), cpu_runtime.kernel_threads()
    with cpu_runtime.limit_threads(1):
        assert numba.get_num_threads() == 1 and cpu_runtime.kernel_threads() == 1
        seen = []
        cpu_runtime.run_in_chunks(lambda first, stop: seen.append(threading.get_ident()), 8)
        assert set(seen) == {threading.get_ident()}          # all on the calling thread
    assert numba.get_num_threads() == before_numba
    assert cpu_runtime.kernel_threads() == before_kernel


def test_a_product_under_one_blas_thread_equals_numpy():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 70)), rng.standard_normal((90, 70))
    with cpu_runtime.limit_threads(1):
        y = x @ w.T
    np.testing.assert_allclose(y, np.einsum("ik,jk->ij", x, w), rtol=1e-12)
