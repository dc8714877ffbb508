"""Shared helpers for tinyllm's tests: float64 leaf tensors, input samplers that stay away from
kinks, hypothesis strategies for (broadcastable) shapes and axes, and the gradient-check
tolerances every op test uses."""

import os

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm

# Hypothesis settings for the op tests: a few small examples each, no per-example deadline
# (the first call of a Numba kernel compiles). Use as a decorator: ``@FAST``.
FAST = settings(max_examples=20, deadline=None)

# Central differences in float64 with eps=1e-6 are good to ~1e-9, so a correct backward passes
# these tight tolerances easily and a wrong one cannot.
ATOL, RTOL = 1e-7, 1e-6


def check_module_grad(module, fn, *inputs):
    """Float64 gradient check of ``fn()`` (which runs ``module`` on ``inputs``) with respect to
    every parameter of the module and every input that requires grad, at the suite's tolerances."""
    assert tinyllm.gradcheck_module(module, fn, inputs, atol=ATOL, rtol=RTOL)


def check_grad(fn, *inputs):
    """``tinyllm.gradcheck`` with the tight tolerances above (raises GradcheckError on failure)."""
    return tinyllm.gradcheck(fn, inputs, atol=ATOL, rtol=RTOL)


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    """Tests that call ``set_default_dtype`` must not leak the change into other tests."""
    before = tinyllm.get_default_dtype()
    yield
    tinyllm.set_default_dtype(before)


# ----- tensors ------------------------------------------------------------------------------
def leaf(data, requires_grad=True):
    """A float64 leaf tensor (the dtype gradient checks run in)."""
    return tinyllm.tensor(np.asarray(data, dtype=np.float64), requires_grad=requires_grad,
                          dtype=np.float64)


def rng_for(seed):
    return np.random.default_rng(seed)


def uniform(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def nonzero(rng, shape, low=0.2, high=2.0):
    """Values with |v| in [low, high] and a random sign: away from the kink of abs/relu at 0."""
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def distinct(rng, shape, spacing=0.3):
    """All values different by at least ``spacing`` / 2 (no ties for max/min reductions)."""
    n = int(np.prod(shape))
    values = rng.permutation(n) * spacing - n * spacing / 2
    return (values + rng.uniform(0, spacing / 4, size=n)).reshape(shape)


def apart(rng, shape_a, shape_b):
    """Two arrays whose elementwise differences are at least 0.3 in size (no ties for
    maximum/minimum, whatever the broadcasting): integers + 0.25 against integers + 0.75."""
    a = rng.integers(-3, 3, size=shape_a) + 0.25 + rng.uniform(-0.1, 0.1, size=shape_a)
    b = rng.integers(-3, 3, size=shape_b) + 0.75 + rng.uniform(-0.1, 0.1, size=shape_b)
    return a, b


def away_from(values, points, gap=0.05):
    """Move every value that lies within ``gap`` of one of ``points`` by 2 * gap."""
    values = np.array(values, dtype=np.float64)
    for p in points:
        close = np.abs(values - p) < gap
        values[close] += 2 * gap
    return values


# ----- hypothesis strategies ----------------------------------------------------------------
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=3):
    """Small array shapes; size-1 axes come up often."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_pairs(min_dims=0, max_dims=3, max_side=3):
    """Pairs of shapes that broadcast together, e.g. ((3, 1), (2, 1, 4)), with size-1 and
    missing leading axes."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=1, max_side=max_side).map(
        lambda result: result.input_shapes)


@st.composite
def shape_and_axis(draw, min_dims=0, max_dims=3, max_side=3):
    """A shape and an ``axis`` argument for it: None, an int (maybe negative) or a tuple."""
    shape = draw(shapes(min_dims, max_dims, 1, max_side))
    ndim = len(shape)
    if ndim == 0:
        return shape, None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    negate = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
    return shape, tuple(a - ndim if neg else a for a, neg in zip(axes, negate))


@st.composite
def shape_and_single_axis(draw, min_dims=1, max_dims=3, max_side=3):
    """A shape with at least one axis and one axis of it (maybe negative)."""
    shape = draw(shapes(min_dims, max_dims, 1, max_side))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


def normalise_axes(axis, ndim):
    """An ``axis`` argument as a sorted tuple of non-negative ints (None: all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axes))


# ----- the documents' code blocks (tests/test_docs.py) --------------------------------------
def pytest_terminal_summary(terminalreporter):
    """After a run that included tests/test_docs.py: how many of the README's and the chapters'
    code blocks ran, and how many are marked not run."""
    ran, not_run = 0, 0
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "test_docs.py::test_code_block[" not in getattr(report, "nodeid", ""):
                continue
            if outcome == "skipped":
                not_run += 1
            elif report.when == "call":
                ran += 1
    if ran or not_run:
        terminalreporter.write_line("docs: %d code blocks run, %d marked not run"
                                    % (ran, not_run))


# ----- how the suite is spread over processes (pytest-xdist; pyproject.toml's addopts) ---------
# With ``--dist loadfile`` each test file runs whole on one process, in its order: its module
# fixtures (a trained checkpoint, a built book) run once, and the documents' code blocks, which
# build on the ones before them, run in reading order. The exception is tests/test_notebooks.py:
# its notebooks are independent and long (about 5 minutes together on 2 cores), so each goes to the
# next free process; kept whole, that one file alone would set the suite's time.
SPREAD_FILES = {"test_notebooks.py"}


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, but the tests of SPREAD_FILES one by one. (Marking tests with
    ``xdist_group`` and ``--dist loadgroup`` would say the same, but pytest 9.2 ignores the
    groups: pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None                             # another --dist: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class LoadFileSpreadingSome(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return nodeid if path.rsplit("/", 1)[-1] in SPREAD_FILES else path

    return LoadFileSpreadingSome(config, log)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one process per core, at most 4. The longest test files take a few minutes
    each (the documents' code blocks, the CUDA simulator's run, the book), so past a few
    processes the suite ends no sooner, while each one more holds its own tinyllm, Jupyter
    kernels and Numba threads."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, min(cores, 4))
