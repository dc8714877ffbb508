"""The matmul kernels against NumPy's matmul: ragged sizes around the block sizes, batches and
broadcasting, float32 and float64, outputs poisoned with NaN so that an unwritten element fails;
and float64 gradient checks of ``@`` on each CPU backend."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
from conftest import FAST, check_grad, leaf, rng_for, seeds
from tinyllm.kernels import matmul as kernels
from tinyllm.kernels.backend import use_backend

RAGGED = [1, 7, 65, 129]        # not multiples of the 4-row micro-kernel nor of the blocks


def tolerance(dtype, k):
    """float64: 1e-10; float32: rounding grows like sqrt(k) with the length of each sum."""
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-10)
    return dict(rtol=1e-4, atol=1e-5 * np.sqrt(max(k, 1)))


def poisoned_product(a, b):
    """Run ``matmul_numba_into`` on an output pre-filled with NaN."""
    c = np.full((a.shape[0], a.shape[1], b.shape[2]), np.nan, dtype=a.dtype)
    kernels.matmul_numba_into(a, b, c)
    return c


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (7, 65, 129), (129, 7, 65), (65, 129, 7),
                                   (129, 129, 1), (1, 129, 300)])
def test_numba_kernel_writes_every_element_and_matches_numpy(n, k, m, dtype):
    rng = rng_for(n * 1000 + k * 10 + m)
    a = rng.standard_normal((2, n, k)).astype(dtype)
    b = rng.standard_normal((2, k, m)).astype(dtype)
    c = poisoned_product(a, b)
    assert not np.isnan(c).any()
    np.testing.assert_allclose(c, np.matmul(a, b), **tolerance(dtype, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_empty_sum_gives_zeros(dtype):
    c = poisoned_product(np.ones((1, 3, 0), dtype), np.ones((1, 0, 5), dtype))
    np.testing.assert_array_equal(c, np.zeros((1, 3, 5)))


@FAST
@given(n=st.sampled_from(RAGGED), k=st.sampled_from(RAGGED), m=st.sampled_from(RAGGED),
       batch=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]), seed=seeds)
def test_numba_matmul_matches_numpy_on_random_ragged_shapes(n, k, m, batch, dtype, seed):
    rng = rng_for(seed)
    a = rng.standard_normal((batch, n, k)).astype(dtype)
    b = rng.standard_normal((batch, k, m)).astype(dtype)
    np.testing.assert_allclose(kernels.matmul_numba(a, b), np.matmul(a, b),
                               **tolerance(dtype, k))


@pytest.mark.parametrize("shape_a,shape_b", [
    ((5,), (5,)), ((4, 5), (5,)), ((5,), (5, 3)), ((5,), (2, 5, 3)),
    ((2, 3, 4, 5), (5, 6)),             # a linear layer: batch folded into rows
    ((2, 1, 4, 5), (3, 5, 6)),          # broadcast batch axes
    ((4, 5), (2, 3, 5, 6)),
])
def test_numba_matmul_follows_numpys_shape_rules(shape_a, shape_b):
    rng = rng_for(1)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    expected = np.matmul(a, b)
    result = kernels.matmul_numba(a, b)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-10)


def test_numba_matmul_accepts_transposed_views():
    rng = rng_for(2)
    a, b = rng.standard_normal((9, 7)), rng.standard_normal((11, 9))
    np.testing.assert_allclose(kernels.matmul_numba(a.T, b.T), a.T @ b.T, rtol=1e-10,
                               atol=1e-10)


def test_mixed_precision_gives_the_wider_dtype():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 2), np.float64)
    assert kernels.matmul_numba(a, b).dtype == np.float64


def test_integer_products_use_numpy_on_every_backend():
    a = np.arange(6).reshape(2, 3)
    with use_backend("numba"):
        result = kernels.matmul(a, a.T)
    assert result.dtype == np.matmul(a, a.T).dtype
    np.testing.assert_array_equal(result, a @ a.T)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_matmul_dispatch_matches_numpy_on_each_backend(name):
    rng = rng_for(3)
    a, b = rng.standard_normal((3, 7, 65)), rng.standard_normal((3, 65, 9))
    with use_backend(name):
        np.testing.assert_allclose(kernels.matmul(a, b), a @ b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("shape_a,shape_b", [((3, 5), (5, 4)), ((2, 3, 5), (5, 4)),
                                             ((2, 1, 3, 5), (3, 5, 2)), ((5,), (2, 5, 3))])
def test_matmul_gradients_pass_gradcheck_on_each_backend(name, shape_a, shape_b):
    rng = rng_for(4)
    a, b = leaf(rng.standard_normal(shape_a)), leaf(rng.standard_normal(shape_b))
    with use_backend(name):
        check_grad(lambda x, y: x @ y, a, b)


def test_tensor_matmul_runs_the_numba_kernel_when_asked(monkeypatch):
    calls = []
    original = kernels.matmul_numba
    monkeypatch.setattr(kernels, "matmul_numba", lambda a, b: calls.append(1) or original(a, b))
    x = tinyllm.tensor(np.ones((3, 4)), requires_grad=True)
    with use_backend("numba"):
        (x @ x.T).sum().backward()
    assert len(calls) == 3          # forward, and the gradient through each operand
