"""The reverse-mode engine: the graph node and the backward pass.

Every op that records itself creates one ``Node``. A node remembers the ``Function`` that made
it, the context its forward saved, and one *edge* per input saying where that input's gradient
goes:

- ``(node, i)``: the input was output ``i`` of another node, so its gradient is passed on;
- a leaf ``Tensor``: the input was created by the user, so its gradient is added to ``.grad``;
- ``None``: the input does not require grad.

``backward`` sorts the nodes reachable from the output so that every node comes after all
nodes that use its outputs (a topological order, found without recursion so a 100,000-op chain
works), then walks that order once. Each node receives the sum of the gradients of all its
users before it runs, which is the chain rule's sum over paths: dL/dx = sum_u dL/du * du/dx.
"""

import numpy as np

from tinyllm.autograd import grad_mode


class Node:
    """One recorded op in the graph (PyTorch calls it ``grad_fn``)."""

    __slots__ = ("function", "ctx", "edges", "input_meta", "output_meta", "retained", "stack",
                 "__weakref__")

    def __init__(self, function, ctx, edges, input_meta, output_meta):
        self.function = function        # the Function subclass
        self.ctx = ctx                  # what forward saved
        self.edges = edges              # one per forward input, see the module docstring
        self.input_meta = input_meta    # (shape, dtype) per input that needs a gradient
        self.output_meta = output_meta  # (shape, dtype) per output
        self.retained = None            # {output index: weakref to a tensor that called retain_grad}
        self.stack = None               # where the op was created (only under detect_anomaly)

    def name(self):
        return self.function.__name__ + "Backward"

    def __repr__(self):
        return "<%s>" % self.name()


def topological_order(root):
    """Nodes reachable from ``root``, each listed after every node it feeds gradients to.

    An iterative depth-first search: a node is appended once all nodes on its edges are done
    (post-order); reversing the list then puts consumers before producers.
    """
    order, visited = [], {id(root)}
    stack = [(root, iter(root.edges))]
    while stack:
        node, edges = stack[-1]
        for edge in edges:
            if type(edge) is tuple and id(edge[0]) not in visited:
                visited.add(id(edge[0]))
                stack.append((edge[0], iter(edge[0].edges)))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def _accumulate(existing, grad):
    return grad if existing is None else existing + grad


def _check_grad(node, index, grad):
    shape, dtype = node.input_meta[index]
    if not isinstance(grad, np.ndarray):
        grad = np.asarray(grad)
    if grad.shape != shape:
        raise RuntimeError(
            "%s returned a gradient of shape %s for input %d, whose shape is %s; a backward "
            "must return one gradient per input with that input's shape (sum over broadcast "
            "axes with tinyllm.autograd.sum_to_shape)" % (node.name(), grad.shape, index, shape))
    if grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _check_finite(node, grads):
    for i, g in enumerate(grads):
        if g is not None and not np.all(np.isfinite(g)):
            where = "".join(node.stack) if node.stack else "(not recorded)\n"
            raise RuntimeError(
                "detect_anomaly: %s returned non-finite values (NaN or inf) in its gradient for "
                "input %d.\nThe forward op was created here:\n%s" % (node.name(), i, where))


def backward(root_node, root_index, grad, retain_graph=False):
    """Run the backward pass from output ``root_index`` of ``root_node`` with gradient ``grad``."""
    order = topological_order(root_node)
    pending = {id(root_node): [None] * len(root_node.output_meta)}
    pending[id(root_node)][root_index] = grad
    anomaly = grad_mode.is_anomaly_enabled()

    with grad_mode.no_grad():
        for node in order:
            out_grads = pending.pop(id(node), None)
            if out_grads is None:       # reachable, but no gradient flowed here
                continue
            # An output nobody used gets a zero gradient, so backward sees every output.
            out_grads = [np.zeros(shape, dtype) if g is None else g
                         for g, (shape, dtype) in zip(out_grads, node.output_meta)]
            if node.retained:
                for i, ref in node.retained.items():
                    tensor = ref()
                    if tensor is not None:
                        tensor.grad = _accumulate(tensor.grad, out_grads[i].copy())

            in_grads = node.function.backward(node.ctx, *out_grads)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            if len(in_grads) != len(node.edges):
                raise RuntimeError("%s returned %d gradients but its forward took %d inputs"
                                   % (node.name(), len(in_grads), len(node.edges)))
            if anomaly:
                _check_finite(node, in_grads)
            if not retain_graph:
                node.ctx.release()

            for i, (edge, g) in enumerate(zip(node.edges, in_grads)):
                if edge is None or g is None:
                    continue
                g = _check_grad(node, i, g)
                if type(edge) is tuple:
                    producer, out_index = edge
                    slots = pending.setdefault(id(producer), [None] * len(producer.output_meta))
                    slots[out_index] = _accumulate(slots[out_index], g)
                else:                   # a leaf tensor: gradients accumulate in .grad
                    edge.grad = _accumulate(edge.grad, g.copy() if edge.grad is None else g)
                    for hook in getattr(edge, "_post_accumulate_grad_hooks", ()):
                        hook(edge)
