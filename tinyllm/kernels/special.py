"""Special functions NumPy lacks, compiled elementwise with Numba.

``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``: the exact GELU needs it. NumPy has no
``erf``; this is Python's ``math.erf`` (its reference) applied to every element, compiled by
Numba into a ufunc for float32 and float64 arrays. Cost: one erf per element.
"""

import math

import numba
import numpy as np


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """Elementwise error function; equals ``math.erf`` on every element."""
    return math.erf(x)


def erf_reference(x):
    """The slow reference: ``math.erf`` element by element."""
    x = np.asarray(x)
    return np.vectorize(math.erf, otypes=[x.dtype])(x)
