"""Step mlp (chapter 4): layers as Modules, a multi-layer perceptron, and its training loop.

A ``Module`` owns parameters (Tensors with ``requires_grad=True``) and sub-Modules, stored as
attributes; ``parameters()`` finds them all, in the order the attributes were set, so that
an optimizer can update them. ``Module`` is written for you.

You write:

- ``Linear``: y = x W^T + b, the affine layer, with PyTorch's initialisation;
- ``MLP``: Linear layers with a non-linearity between them;
- ``fit``: the training loop (forward, loss, zero_grad, backward, step);
- ``mlp_forward_backward``: a two-layer network's gradients derived by hand, in NumPy only,
  to see what autograd does for you.
"""

import math

import numpy as np

from mytl.autograd import Tensor
from mytl.losses import cross_entropy


class Module:
    """Base class of the layers: parameters and sub-Modules are found by attribute.

    ``parameters()`` lists every Tensor attribute with ``requires_grad`` and, recursively, the
    parameters of every Module attribute and of Modules or Tensors held in a list or tuple
    attribute, in the order the attributes were set (a Tensor held twice, as tied weights
    are, is listed once). ``named_parameters()`` gives them dotted names, as PyTorch does:
    ``layers.0.weight``. Calling a Module calls its ``forward``.
    """

    training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _children(self):
        """(name, Module) for each sub-Module, in attribute order (list items as name.i)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield "%s.%d" % (name, i), item

    def _named_tensors(self, prefix):
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value._named_tensors(prefix + name + ".")
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Tensor) and item.requires_grad:
                        yield "%s%s.%d" % (prefix, name, i), item
                    elif isinstance(item, Module):
                        yield from item._named_tensors("%s%s.%d." % (prefix, name, i))

    def named_parameters(self):
        """[(dotted name, Tensor)] of every parameter, each Tensor once."""
        seen, named = set(), []
        for name, tensor in self._named_tensors(""):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                named.append((name, tensor))
        return named

    def parameters(self):
        """[Tensor] of every parameter, in attribute order, each once."""
        return [tensor for _, tensor in self.named_parameters()]

    def zero_grad(self):
        """Forget the gradients of every parameter (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        """Set ``.training`` on this Module and every sub-Module; returns self."""
        self.training = mode
        for _, child in self._children():
            child.train(mode)
        return self

    def eval(self):
        """``train(False)``: evaluation mode (dropout off)."""
        return self.train(False)


class Linear(Module):
    """The affine layer y = x W^T + b.

    Shapes: x (..., in_features) -> y (..., out_features); ``weight`` W (out_features,
    in_features), ``bias`` b (out_features,) or None when ``bias=False``.

    Initialisation, as PyTorch's: with bound = 1 / sqrt(in_features), W is drawn from
    U(-bound, bound) by ``rng.uniform(-bound, bound, size=(out_features, in_features))``,
    then b by ``rng.uniform(-bound, bound, size=out_features)``; both are float64 Tensors
    with ``requires_grad=True``. ``rng`` is a NumPy Generator (default: a fresh
    ``np.random.default_rng()``).
    """

    def __init__(self, in_features, out_features, bias=True, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Tensor(rng.uniform(-bound, bound, size=(out_features, in_features)),
                             requires_grad=True)
        self.bias = (Tensor(rng.uniform(-bound, bound, size=out_features), requires_grad=True)
                     if bias else None)

    def forward(self, x):
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return y


_ACTIVATIONS = ("tanh", "relu", "sigmoid")


class MLP(Module):
    """A multi-layer perceptron: Linear layers with an activation between them.

    ``MLP([2, 16, 16, 3])`` is Linear(2, 16), act, Linear(16, 16), act, Linear(16, 3): no
    activation after the last layer (it returns logits). ``layers`` is the list of Linears,
    created in order with the same ``rng``. ``activation``: "tanh", "relu" or "sigmoid"
    (the Tensor methods of the same names); another name is a ValueError naming it.

    Shapes: x (..., sizes[0]) -> (..., sizes[-1]).
    """

    def __init__(self, sizes, activation="tanh", rng=None):
        if activation not in _ACTIVATIONS:
            raise ValueError("MLP: unknown activation %r; use one of %s"
                             % (activation, ", ".join(_ACTIVATIONS)))
        rng = np.random.default_rng() if rng is None else rng
        self.activation = activation
        self.layers = [Linear(n_in, n_out, rng=rng) for n_in, n_out in zip(sizes, sizes[1:])]

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = getattr(x, self.activation)()
        return x


def fit(model, X, y, optimizer, steps, batch_size, rng):
    """Train ``model`` for ``steps`` steps of minibatch gradient descent; return the losses.

    X (N, D) float array, y (N,) integer class labels. Each step draws its batch with
    ``idx = rng.integers(0, N, size=batch_size)``, computes ``logits = model(Tensor(X[idx]))``
    and the mean cross-entropy loss against ``y[idx]``, clears the old gradients, runs
    backward and ``optimizer.step()``. Returns the list of the ``steps`` losses (floats),
    each measured before its update. Calls ``model.train()`` first.
    """
    model.train()
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(X), size=batch_size)
        loss = cross_entropy(model(Tensor(X[idx])), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    return losses


def mlp_forward_backward(x, W1, b1, W2, b2, y):
    """Loss and hand-derived gradients of a two-layer tanh network with mean squared error.

    NumPy only (no Tensors). Shapes: x (N, D), W1 (D, H), b1 (H,), W2 (H, K), b2 (K,),
    y (N, K).

    Forward:  a = x W1 + b1,  h = tanh(a),  yhat = h W2 + b2,
              L = mean((yhat - y)^2) = (1 / (N K)) sum_{n,k} (yhat_nk - y_nk)^2.
    Backward: dL/dyhat = 2 (yhat - y) / (N K);  dW2 = h^T dyhat;  db2 = sum_n dyhat;
              dh = dyhat W2^T;  da = dh * (1 - h^2);  dW1 = x^T da;  db1 = sum_n da.

    Returns (loss, grads): loss a float, grads a dict with keys "W1", "b1", "W2", "b2" whose
    values have those parameters' shapes. The arguments are not modified.
    """
    h = np.tanh(x @ W1 + b1)
    yhat = h @ W2 + b2
    diff = yhat - y
    loss = float(np.mean(diff ** 2))
    grad_yhat = 2.0 * diff / diff.size
    grad_h = grad_yhat @ W2.T
    grad_a = grad_h * (1.0 - h ** 2)
    grads = {"W1": x.T @ grad_a, "b1": grad_a.sum(axis=0),
             "W2": h.T @ grad_yhat, "b2": grad_yhat.sum(axis=0)}
    return loss, grads
