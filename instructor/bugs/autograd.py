"""Planted bugs of step autograd: (what is wrong, text of the reference, text replacing it)."""

BUGS = [
    ("unbroadcast forgets the axes broadcasting added in front",
     "    if extra:\n        grad = grad.sum(axis=tuple(range(extra)))\n", ""),
    ("unbroadcast forgets the axes stretched from size 1",
     "    if stretched:\n        grad = grad.sum(axis=stretched, keepdims=True)\n", ""),
    ("unbroadcast accepts any shape without an error",
     "        raise ValueError(\"unbroadcast: a gradient of shape %s cannot be summed to shape %s\"\n"
     "                         % (grad.shape, shape))\n", "        pass\n"),
    ("apply records the graph even when no input requires grad",
     "if _grad_enabled and any(isinstance(x, Tensor) and x.requires_grad for x in inputs):",
     "if True:"),
    ("apply ignores no_grad()",
     "if _grad_enabled and any(", "if any("),
    ("a leaf's gradient is replaced, not accumulated",
     "tensor.grad = g.copy() if tensor.grad is None else tensor.grad + g", "tensor.grad = g.copy()"),
    ("the gradients of a tensor used twice are not summed (the last one wins)",
     "grads[key] = parent_grad if key not in grads else grads[key] + parent_grad",
     "grads[key] = parent_grad"),
    ("the backward walk follows the graph in forward order",
     "for tensor in reversed(topological_order(self)):", "for tensor in topological_order(self):"),
    ("a recursive depth-first walk (RecursionError on deep graphs)",
     "    order, visited = [], set()\n    stack = [(root, False)]\n",
     "    import sys\n    sys.setrecursionlimit(1000)\n    order, visited = [], set()\n\n"
     "    def visit(t):\n        if id(t) in visited:\n            return\n"
     "        visited.add(id(t))\n        if t.grad_fn is not None:\n"
     "            for p in t.grad_fn.inputs:\n                if isinstance(p, Tensor) and p.requires_grad:\n"
     "                    visit(p)\n        order.append(t)\n    visit(root)\n    return order\n"
     "    stack = [(root, False)]\n"),
    ("the upstream gradient given to backward() is ignored (ones are used)",
     "        grad = np.asarray(getattr(grad, \"data\", grad), dtype=self.data.dtype)\n",
     "        grad = np.ones_like(self.data)\n"),
    ("backward() of a non-scalar without a gradient silently uses ones",
     "            if self.data.size != 1:\n", "            if False:\n"),
]
