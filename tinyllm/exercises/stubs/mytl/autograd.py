"""Step autograd (chapter 1): a Tensor that remembers how it was made, and backward.

A ``Tensor`` holds a NumPy array ``data``, a flag ``requires_grad``, the gradient ``grad``
(dL/d tensor, same shape, filled in by ``backward``) and ``grad_fn``: the ``Context`` of the
``Function`` that produced it (None for the tensors you create: the leaves).

A ``Function`` has two static methods on plain NumPy arrays: ``forward(ctx, *inputs,
**options)`` returns the output array, and ``backward(ctx, grad)`` returns one gradient per
positional input (None for an input that needs none). ``Function.apply`` runs forward on the
arrays inside the tensors and, when an input requires grad, records the graph.

You write: ``unbroadcast``, ``Function.apply``, ``topological_order`` and ``Tensor.backward``.
The operators (``+``, ``@``, ``.sum()``) are written for you: they call the Functions of
``mytl.elementwise`` and ``mytl.tensor_ops``, which are the next two steps.
"""

import contextlib

import numpy as np

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside ``with no_grad():`` Function.apply records no graph (for updates, evaluation)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, so it has ``shape``.

    If x of shape (3, 1) was broadcast to (2, 3, 4) in the forward pass, every x[i, 0] was
    used 2 * 4 times, so dL/dx[i, 0] is the sum of the upstream gradient over those copies.

    Shapes: grad (the broadcast shape) -> shape. Raises ValueError naming both shapes if
    ``shape`` does not broadcast to ``grad.shape``.
    """
    raise NotImplementedError


class Context:
    """What a Function's forward leaves for its backward.

    ``ctx.save_for_backward(*arrays)`` keeps arrays, read back as ``ctx.saved_tensors``; any
    other value can be stored as an attribute (``ctx.axis = axis``). ``apply`` sets
    ``ctx.function`` (the Function class) and ``ctx.inputs`` (the positional inputs, tensors
    or not) so that backward can walk the graph.
    """

    def __init__(self):
        self.saved_tensors = ()
        self.function = None
        self.inputs = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays


class Function:
    """Base class of every differentiable op: subclass it and write forward and backward."""

    @staticmethod
    def forward(ctx, *inputs, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run ``cls.forward`` on the arrays of ``inputs`` and wrap the result in a Tensor.

        Positional inputs may be Tensors, arrays or numbers; ``options`` (axis=, index=) are
        passed to forward as they are. If grad mode is on and any input Tensor requires grad,
        the output requires grad and its ``grad_fn`` is the context, with ``ctx.function =
        cls`` and ``ctx.inputs = inputs``; otherwise the output is a leaf (grad_fn None).
        """
        raise NotImplementedError

def topological_order(root):
    """The tensors of the graph that ends at ``root``, each after every tensor it depends on.

    Only tensors that require grad are listed (``root`` last). Iterative (an explicit stack),
    so that a graph 100,000 ops deep does not exhaust Python's recursion limit.
    """
    raise NotImplementedError


def _as_array(data):
    if isinstance(data, Tensor):
        data = data.data
    array = np.asarray(data)
    if array.dtype.kind not in "fiub":
        raise TypeError("Tensor: data must be numbers, got dtype %s" % array.dtype)
    return array


class Tensor:
    """An array with reverse-mode automatic differentiation.

    ``Tensor(data, requires_grad=False)``: float data keeps its dtype (float64 from Python
    floats), integer data stays integer and cannot require grad.
    """

    def __init__(self, data, requires_grad=False):
        self.data = _as_array(data)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError("Tensor: only float tensors can require grad, this one has dtype "
                            "%s" % self.data.dtype)
        self.requires_grad = requires_grad
        self.grad = None
        self.grad_fn = None

    # ----- what the tensor is ----------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    def item(self):
        return self.data.item()

    def numpy(self):
        return self.data

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return "Tensor(%s%s)" % (np.array2string(self.data, precision=4), grad)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    # ----- backward ----------------------------------------------------------------------
    def backward(self, grad=None):
        """Add dL/d(leaf) to ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is dL/d(self), an array of self's shape; it may be left out only when self
        has one element (it is then 1). Walk the graph in reverse topological order: each
        tensor's gradient is complete (summed over every use) before its Function's backward
        runs. Leaves accumulate: a second backward adds to ``.grad``.

        Raises RuntimeError if self does not require grad, or if ``grad`` is left out for a
        tensor of more than one element (the message says ``backward`` and the shape).
        """
        raise NotImplementedError

    # ----- operators: calls into the next steps' Functions -------------------------------
    def _elementwise(self):
        from mytl import elementwise
        return elementwise

    def _tensor_ops(self):
        from mytl import tensor_ops
        return tensor_ops

    def __add__(self, other):
        return self._elementwise().add(self, other)

    def __radd__(self, other):
        return self._elementwise().add(other, self)

    def __sub__(self, other):
        return self._elementwise().sub(self, other)

    def __rsub__(self, other):
        return self._elementwise().sub(other, self)

    def __neg__(self):
        return self._elementwise().neg(self)

    def __mul__(self, other):
        return self._elementwise().mul(self, other)

    def __rmul__(self, other):
        return self._elementwise().mul(other, self)

    def __truediv__(self, other):
        return self._elementwise().div(self, other)

    def __rtruediv__(self, other):
        return self._elementwise().div(other, self)

    def __pow__(self, exponent):
        return self._elementwise().pow(self, exponent)

    def exp(self):
        return self._elementwise().exp(self)

    def log(self):
        return self._elementwise().log(self)

    def tanh(self):
        return self._elementwise().tanh(self)

    def relu(self):
        return self._elementwise().relu(self)

    def sigmoid(self):
        return self._elementwise().sigmoid(self)

    def __matmul__(self, other):
        return self._tensor_ops().matmul(self, other)

    def __rmatmul__(self, other):
        return self._tensor_ops().matmul(other, self)

    def sum(self, axis=None, keepdims=False):
        return self._tensor_ops().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return self._tensor_ops().mean(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._tensor_ops().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return self._tensor_ops().transpose(self, axes or None)

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        return self._tensor_ops().getitem(self, index)
