"""Special functions NumPy lacks, compiled elementwise with Numba.

``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``: the exact GELU needs it. NumPy has no
``erf``; this is Python's ``math.erf`` (its reference) applied to every element, compiled by
Numba into a ufunc for float32 and float64 arrays. Cost: one erf per element.

``erf_float32``, ``exp_float32`` and ``exp2_float32`` are the float32 versions that the fused
kernels (GELU, softmax cross-entropy, attention) call inside their loops: a few multiply-adds
and no branch, which the compiler turns into SIMD code (16 float32 lanes with AVX-512), where
``math.erf`` and ``math.exp`` are one library call per element (10-20x slower: Numba's LLVM
has no vector math library). All are as accurate as float32 allows (see their docstrings). They are compiled into the
kernels that call them: Numba's on-disk cache (``cache=True``) does not notice an edit to them,
so after changing one, delete the ``*.nbi`` and ``*.nbc`` files in
``tinyllm/kernels/__pycache__``.
"""

import functools
import math

import numba
import numpy as np
from numba import njit

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)          # GELU's tanh form
INV_SQRT_2 = 1.0 / math.sqrt(2.0)                  # GELU's Phi(x) = (1 + erf(x / sqrt 2)) / 2
INV_SQRT_2_PI = 1.0 / math.sqrt(2.0 * math.pi)     # the normal density's constant


def _erf_scalar(x):
    return math.erf(x)


@functools.lru_cache(maxsize=None)
def _erf_ufunc():
    """``math.erf`` compiled by Numba into a NumPy ufunc for float32 and float64, built on the
    first call of ``erf`` (not at import: compiling it, or loading it from the cache, took
    0.3-1 s that every ``import tinyllm`` paid, used or not)."""
    return numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)(_erf_scalar)


def erf(x):
    """Elementwise error function; equals ``math.erf`` on every element."""
    return _erf_ufunc()(x)


def erf_reference(x):
    """The slow reference: ``math.erf`` element by element."""
    x = np.asarray(x)
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


@njit(inline="always", fastmath={"contract"})
def erf_float32(x):
    """erf(x) for float32 data, within 1e-7 of ``math.erf`` (float32's spacing near 1: 6e-8).

    The rational approximation of Eigen and XLA: on [-4, 4],

        erf(x) ~ x P(x^2) / Q(x^2),   P of degree 6, Q of degree 4 (coefficients below),

    and x is clamped to [-4, 4] first, since |erf(x)| rounds to 1 in float32 beyond 4. It is
    evaluated in float64 (in float32 the rounding of the 12 multiply-adds would cost up to 7
    units in the last place); the result is rounded once, to the float32 it is stored in.
    Cost: 4 comparisons, 12 multiply-adds and one division, no branch and no library call.
    """
    x = min(max(np.float64(x), -4.0), 4.0)
    x2 = x * x
    p = -2.72614225801306e-10
    p = p * x2 + 2.77068142495902e-08
    p = p * x2 - 2.10102402082508e-06
    p = p * x2 - 5.69250639462346e-05
    p = p * x2 - 7.34990630326855e-04
    p = p * x2 - 2.95459980854025e-03
    p = p * x2 - 1.60960333262415e-02
    q = -1.45660718464996e-05
    q = q * x2 - 2.13374055278905e-04
    q = q * x2 - 1.68282697438203e-03
    q = q * x2 - 7.37332916720468e-03
    q = q * x2 - 1.42647390514189e-02
    return min(max(x * p / q, -1.0), 1.0)     # |erf| <= 1, so 1 + erf(x) never turns negative


_LOG2_E = 1.4426950408889634        # 1 / ln 2
_LN2_HIGH = 0.693359375             # ln 2 = _LN2_HIGH + _LN2_LOW; _LN2_HIGH has few bits, so
_LN2_LOW = -2.12194440e-4           # n * _LN2_HIGH is exact for the n that occur


@njit(inline="always", fastmath={"contract"})
def exp_float32(x):
    """e^x for float32 x, within 1.5 units in the last place of the exact value (Cephes' expf).

    Range reduction: x = n ln 2 + r with n = round(x / ln 2), |r| <= ln 2 / 2, so that

        e^x = 2^n * e^r,   e^r ~ 1 + r + r^2 P(r)   (P of degree 5, coefficients below)

    and 2^n is built directly as the bits of a float32 (exponent field n + 127). Inputs below
    -87.3 give 0 (e^x is then below float32's smallest normal number), so exp(-inf) = 0 as a
    masked attention score needs; above 88.3, inf; NaN stays NaN.
    """
    underflow, overflow = x < np.float32(-87.3), x > np.float32(88.3)
    x = np.float32(0.0) if underflow or overflow else x
    n = np.floor(x * np.float32(_LOG2_E) + np.float32(0.5))
    r = x - n * np.float32(_LN2_HIGH) - n * np.float32(_LN2_LOW)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    exp_r = p * r * r + r + np.float32(1.0)
    two_to_n = np.int32((np.int32(n) + 127) << 23).view(np.float32)
    result = np.float32(np.inf) if overflow else exp_r * two_to_n
    return np.float32(0.0) if underflow else result


@njit(inline="always", fastmath={"contract"})
def exp2_float32(x):
    """2^x for float32 x, within 2 units in the last place of the exact value (Cephes' exp2f).

    The cheaper sibling of ``exp_float32``: base 2 needs no ln 2 in the range reduction,

        x = n + f with n = round(x), |f| <= 1/2,   2^x = 2^f * 2 * 2^(n - 1),
        2^f ~ 1 + f P(f)   (P of degree 5, coefficients below),

    and 2^(n - 1) is built as the bits of a float32 (exponent field n - 1 + 127). Going through
    2^(n - 1) keeps x in [127.5, 128) finite (there n = 128, and 2^128 is not a float32).
    Two multiply-adds fewer than e^x: the attention kernels take their scores in base 2
    (e^s = 2^(s log2 e), with log2 e folded into the scale of the queries) and call this one.
    Below -125.5 it gives 0 (2^x there is within 1.5x of float32's smallest normal number, as
    ``exp_float32`` gives 0 below -87.3), so 2^-inf = 0; above 128, inf; NaN stays NaN.
    """
    underflow, overflow = x < np.float32(-125.5), x > np.float32(128.0)
    x = np.float32(0.0) if underflow or overflow else x
    n = np.floor(x + np.float32(0.5))
    f = x - n
    p = np.float32(1.535336188319500e-4)
    p = p * f + np.float32(1.339887440266574e-3)
    p = p * f + np.float32(9.618437357674640e-3)
    p = p * f + np.float32(5.550332471162809e-2)
    p = p * f + np.float32(2.402264791363012e-1)
    p = p * f + np.float32(6.931472028550421e-1)
    two_to_f = p * f + np.float32(1.0)
    two_to_n_minus_1 = np.int32((np.int32(n) + 126) << 23).view(np.float32)
    result = np.float32(np.inf) if overflow else two_to_f * np.float32(2.0) * two_to_n_minus_1
    return np.float32(0.0) if underflow else result
