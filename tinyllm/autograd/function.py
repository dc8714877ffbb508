"""``Function``: how every differentiable op in tinyllm is written, and how you write your own.

A ``Function`` subclass gives two static methods on plain NumPy arrays:

- ``forward(ctx, *inputs, **options) -> array or tuple of arrays`` computes the result and saves
  what the backward needs with ``ctx.save_for_backward(...)``;
- ``backward(ctx, *grad_outputs) -> one gradient (or None) per forward input`` receives
  dL/d(output) for each output and returns dL/d(input) for each input, in the input's shape.

``MyOp.apply(*inputs, **options)`` unwraps Tensors into arrays, runs ``forward``, wraps the
result in Tensors and, when some input requires grad, records a node so that ``backward`` can
call ``MyOp.backward`` later. Example, y = x^3 with dy/dx = 3x^2::

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_y):
            (x,) = ctx.saved_tensors
            return grad_y * 3 * x ** 2

    y = Cube.apply(tinyllm.tensor([2.0], requires_grad=True))
"""

import traceback
import weakref

import numpy as np

from tinyllm.autograd import grad_mode
from tinyllm.autograd.engine import Node
from tinyllm.autograd.tensor import Tensor


class Context:
    """The notebook a ``forward`` writes for its ``backward``.

    ``ctx.save_for_backward(*arrays)`` stores arrays; ``ctx.saved_tensors`` gives them back.
    ``ctx.needs_input_grad`` is a tuple of booleans, one per forward input, so a backward can
    skip work for inputs that need no gradient. Other values (an axis, a shape) can be stored
    as plain attributes: ``ctx.axis = axis``.
    """

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._saved_versions = ()   # (tensor or weakref to it, version) per saved array
        self._released = False
        self._op_name = ""

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        if self._released:
            raise RuntimeError(
                "%s: trying to backward through the graph a second time (or to read saved "
                "values after they were freed). The first backward() freed the arrays this op "
                "saved; call it with retain_graph=True if you need to run backward twice."
                % self._op_name)
        for (ref, version), array in zip(self._saved_versions, self._saved):
            tensor = ref() if isinstance(ref, weakref.ref) else ref
            if tensor is not None and tensor._version != version:
                raise RuntimeError(
                    "%s: an array of shape %s saved for the backward pass was modified by an "
                    "in-place operation (its tensor is at version %d; the op saved version %d). "
                    "Use an out-of-place op (x = x + y instead of x += y), or modify the "
                    "tensor only after backward()." % (self._op_name, np.shape(array),
                                                         tensor._version, version))
        return self._saved

    def release(self):
        """Free the saved arrays (called by backward unless retain_graph=True)."""
        self._saved = ()
        self._saved_versions = ()
        self._released = True


def _version_refs(saved, inputs, outputs):
    """For each saved array, the tensor whose data it is (if any) and that tensor's version.

    Inputs are held directly (the graph keeps them anyway); outputs weakly, to avoid a cycle.
    """
    refs = []
    for array in saved:
        found = (None, 0)
        for t in inputs:
            if t is not None and t.data is array:
                found = (t, t._version)
                break
        else:
            for t in outputs:
                if t.data is array:
                    found = (weakref.ref(t), t._version)
                    break
        refs.append(found)
    return tuple(refs)


class Function:
    """Base class of every differentiable op; see the module docstring."""

    @staticmethod
    def forward(ctx, *inputs, **options):
        raise NotImplementedError("a Function subclass must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *inputs, **options):
        tensors = [x if isinstance(x, Tensor) else None for x in inputs]
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        needs_grad = tuple(t is not None and t.requires_grad for t in tensors)
        record = grad_mode.is_grad_enabled() and any(needs_grad)

        ctx = Context(needs_grad if record else (False,) * len(inputs))
        ctx._op_name = cls.__name__
        result = cls.forward(ctx, *arrays, **options)
        single = not isinstance(result, tuple)
        results = (result,) if single else result
        outputs = [Tensor._wrap(np.asarray(r)) for r in results]
        for out in outputs:                 # a view shares its input's version counter
            base = out.data.base
            if base is not None:
                for t in tensors:
                    if t is not None and (base is t.data or base is t.data.base):
                        out._version_box = t._version_box
                        break

        if record:
            edges = []
            for t, needs in zip(tensors, needs_grad):
                if not needs:
                    edges.append(None)
                elif t.grad_fn is None:
                    edges.append(t)                     # a leaf: accumulate into t.grad
                else:
                    edges.append((t.grad_fn, t._output_index))
            input_meta = [(t.shape, t.dtype) if needs else None
                          for t, needs in zip(tensors, needs_grad)]
            output_meta = [(o.shape, o.dtype) for o in outputs]
            node = Node(cls, ctx, tuple(edges), input_meta, output_meta)
            if grad_mode.is_anomaly_enabled():
                node.stack = traceback.format_stack()[:-1]     # drop this frame only
            for i, out in enumerate(outputs):
                if out.dtype.kind == "f":
                    out.requires_grad = True
                    out.grad_fn = node
                    out._output_index = i
            ctx._saved_versions = _version_refs(ctx._saved, tensors, outputs)
        else:
            ctx.release()
        return outputs[0] if single else tuple(outputs)


def sum_to_shape(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``.

    If x of shape (3, 1) was broadcast to (2, 3, 4) in the forward pass, each x[i, 0] was
    used 2 * 4 times, so dL/dx[i, 0] is the sum of the upstream gradient over those copies:
    sum over axis 0 (added) and axis 2 (stretched from 1), keeping the size-1 axis.
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
