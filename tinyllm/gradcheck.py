"""Gradient checking: compare autograd's gradients with central differences in float64.

For a scalar function L(x), the central difference

    dL/dx_i  ~  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

has error O(eps^2) from truncation plus O(machine_eps / eps) from rounding. In float64
(machine epsilon 2.2e-16) with eps = 1e-6 both are about 1e-10 to 1e-12, so a correct backward
agrees to ~1e-9 relative error; in float32 (epsilon 1.2e-7) the rounding term alone is ~0.1,
which is why checks run in float64.

A function with a non-scalar output y is reduced to the scalar L = sum(y * r) with a fixed
random r, so the check compares the vector-Jacobian product J^T r that backward computes; a
wrong backward changes J^T r for all but a vanishing set of r.
"""

import numpy as np

from tinyllm.autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised by ``gradcheck`` when autograd and central differences disagree."""


def rel_error(a, b):
    """The largest elementwise relative error max |a - b| / max(1e-8, |a| + |b|) (CS231n's).

    Around 1e-9 or less: correct. Around 1e-5: suspicious, unless kinks (relu) are near.
    Around 1e-2 or more: the gradient is wrong.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def _value(output, grad_output):
    """sum(output * grad_output) as a Python float (output: a Tensor, array or number)."""
    data = output.data if isinstance(output, Tensor) else np.asarray(output)
    if grad_output is None:
        if data.size != 1:
            raise ValueError("numerical_grad: the function returned shape %s; pass grad_output "
                             "(dL/d output, same shape) for a non-scalar output" % (data.shape,))
        return float(data.reshape(()))
    return float(np.sum(data * grad_output))


def numerical_grad(fn, x, grad_output=None, eps=1e-6, indices=None):
    """Central-difference gradient of ``sum(fn(x) * grad_output)`` with respect to ``x``.

    ``x`` is a Tensor or a NumPy array, changed in place element by element and restored.
    ``grad_output`` may be left out when fn returns one number. ``indices`` (flat positions)
    limits the work to some elements; the others stay 0. Returns an array shaped like x.
    """
    data = x.data if isinstance(x, Tensor) else x
    flat = data.reshape(-1)
    if not np.shares_memory(flat, data):
        raise ValueError("numerical_grad: x must be a contiguous array so that it can be "
                         "perturbed in place")
    grad = np.zeros(data.shape, dtype=np.float64)
    grad_flat = grad.reshape(-1)
    with no_grad():
        for i in (range(flat.size) if indices is None else indices):
            old = flat[i]
            flat[i] = old + eps
            plus = _value(fn(x), grad_output)
            flat[i] = old - eps
            minus = _value(fn(x), grad_output)
            flat[i] = old
            grad_flat[i] = (plus - minus) / (2 * eps)
    return grad


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _float64_copy(x):
    if isinstance(x, Tensor) and x.dtype.kind == "f":
        return Tensor(x.data, requires_grad=x.requires_grad, dtype=np.float64)
    return x


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              n_samples=None, seed=0, verbose=False):
    """Check ``fn``'s gradients for every input that requires grad.

    ``fn(*inputs)`` returns a tensor or a tuple of tensors. Float inputs are copied to float64;
    autograd's gradient of L = sum_k sum(output_k * r_k) (random r_k) is compared with central
    differences of the same L. Passes when every element satisfies
    |analytic - numerical| <= atol + rtol * |numerical|.

    ``n_samples`` checks only that many randomly chosen elements of each input (for large
    inputs). ``verbose`` prints the relative error of each input, CS231n style.
    Returns True, or raises ``GradcheckError`` naming the input, the worst element's index,
    both values and their relative error (returns False instead if ``raise_exception=False``).
    """
    inputs = tuple(_float64_copy(x) for x in _as_tuple(inputs))
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; create them with "
                         "requires_grad=True")
    rng = np.random.default_rng(seed)

    with no_grad():
        outputs = _as_tuple(fn(*inputs))
    weights = [rng.standard_normal(o.shape) for o in outputs]

    def loss(*args):
        total = None
        for out, r in zip(_as_tuple(fn(*args)), weights):
            term = (out * Tensor(r, dtype=np.float64)).sum() if isinstance(out, Tensor) \
                else Tensor(np.sum(np.asarray(out) * r), dtype=np.float64)
            total = term if total is None else total + term
        return total

    for i in checked:
        inputs[i].grad = None
    try:
        L = loss(*inputs)
        if L.requires_grad:
            L.backward()
    except Exception as error:      # a backward that crashes is a failed check, with its reason
        return _fail(raise_exception, "gradcheck: the backward pass raised %s: %s"
                     % (type(error).__name__, error), error)

    for i in checked:
        x = inputs[i]
        indices = _sample(rng, x.size, n_samples)

        def loss_of_x(value, i=i):
            args = list(inputs)
            args[i] = value
            return loss(*args)

        numerical = numerical_grad(loss_of_x, x, eps=eps, indices=indices)
        problem = _compare("input %d" % i, x, numerical, indices, atol, rtol, verbose)
        if problem:
            return _fail(raise_exception, problem)
    return True


def _sample(rng, size, n_samples):
    """Flat indices of the elements to check: all (None), or n_samples chosen at random."""
    if n_samples is None or n_samples >= size:
        return None
    return rng.choice(size, size=n_samples, replace=False)


def _compare(label, x, numerical, indices, atol, rtol, verbose):
    """None when x.grad matches ``numerical`` within tolerance, else the failure message."""
    analytic = np.zeros(x.shape) if x.grad is None else x.grad.astype(np.float64)
    if indices is not None:
        mask = np.zeros(x.size, dtype=bool)
        mask[indices] = True
        analytic = np.where(mask.reshape(x.shape), analytic, 0.0)
    excess = np.abs(analytic - numerical) - (atol + rtol * np.abs(numerical))
    if verbose:
        print("%s %s: relative error %.2e" % (label, x.shape, rel_error(analytic, numerical)))
    if np.all(excess <= 0):             # written so that a NaN on either side fails
        return None
    worst = np.unravel_index(int(np.argmax(np.where(np.isfinite(excess), excess, np.inf))),
                             x.shape)
    a, n = analytic[worst], numerical[worst]
    return ("gradcheck failed for %s (shape %s): at index %s the analytic gradient is %.10g "
            "but the numerical one is %.10g (relative error %.3g; %d of %d elements out of "
            "tolerance |a - n| <= atol + rtol*|n| with atol=%g, rtol=%g)"
            % (label, x.shape, tuple(int(k) for k in worst), a, n, rel_error(a, n),
               int(np.sum(~(excess <= 0))), excess.size, atol, rtol))


def _flatten(outputs):
    """The tensors of a possibly nested tuple of outputs, such as ``output, (h_n, c_n)``."""
    if isinstance(outputs, Tensor):
        return [outputs]
    return [t for item in outputs for t in _flatten(item)]


def gradcheck_module(module, fn, inputs=(), eps=1e-6, atol=1e-5, rtol=1e-3,
                     raise_exception=True, n_samples=None, seed=0, verbose=False):
    """Check the gradients of a whole module: every parameter, and the given input tensors.

    The module is converted to float64 in place (``module.double()``), and so are the float
    ``inputs``. ``fn()`` runs the module (e.g. ``lambda: lstm(x, (h0, c0))``) and returns a
    tensor or a nested tuple of tensors; L = sum_k sum(output_k * r_k) with fixed random r_k,
    and autograd's dL/dp is compared with central differences for every parameter p (each is
    perturbed in place, so the module sees the change). Failures name the parameter.
    """
    module.double()
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            x.data = x.data.astype(np.float64)
    rng = np.random.default_rng(seed)
    with no_grad():
        weights = [rng.standard_normal(o.shape) for o in _flatten(fn())]

    def loss(_=None):
        total = Tensor(0.0, dtype=np.float64)
        for out, r in zip(_flatten(fn()), weights):
            total = total + (out * Tensor(r, dtype=np.float64)).sum()
        return total

    targets = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    targets += [("input %d" % i, x) for i, x in enumerate(inputs)
                if isinstance(x, Tensor) and x.requires_grad]
    if not targets:
        raise ValueError("gradcheck_module: the module has no parameter and no input that "
                         "requires grad")
    for _, t in targets:
        t.grad = None
    try:
        loss().backward()
    except Exception as error:
        return _fail(raise_exception, "gradcheck_module: the backward pass raised %s: %s"
                     % (type(error).__name__, error), error)
    for name, t in targets:
        indices = _sample(rng, t.size, n_samples)
        numerical = numerical_grad(loss, t, eps=eps, indices=indices)
        problem = _compare(name, t, numerical, indices, atol, rtol, verbose)
        if problem:
            return _fail(raise_exception, problem)
    return True


def _fail(raise_exception, message, cause=None):
    if raise_exception:
        raise GradcheckError(message) from cause
    return False
