"""Planted bugs of step mlp: (what is wrong, text of the reference, text replacing it)."""

BUGS = [
    ("Linear multiplies by W instead of W^T (fails for a non-square layer)",
     "y = x @ self.weight.T\n", "y = x @ self.weight\n"),
    ("Linear forgets to add the bias",
     "            y = y + self.bias\n", "            y = y\n"),
    ("Linear's bound is 1/in_features instead of 1/sqrt(in_features)",
     "bound = 1.0 / math.sqrt(in_features)", "bound = 1.0 / in_features"),
    ("Linear draws the bias before the weight",
     "        self.weight = Tensor(rng.uniform(-bound, bound, size=(out_features, in_features)),\n"
     "                             requires_grad=True)\n"
     "        self.bias = (Tensor(rng.uniform(-bound, bound, size=out_features), requires_grad=True)\n"
     "                     if bias else None)\n",
     "        self.bias = (Tensor(rng.uniform(-bound, bound, size=out_features), requires_grad=True)\n"
     "                     if bias else None)\n"
     "        self.weight = Tensor(rng.uniform(-bound, bound, size=(out_features, in_features)),\n"
     "                             requires_grad=True)\n"),
    ("Linear's weight is a Tensor without requires_grad (the optimizer never sees it)",
     "size=(out_features, in_features)),\n                             requires_grad=True)",
     "size=(out_features, in_features)))"),
    ("MLP applies the activation after the last layer too (squashed logits)",
     "            if i < len(self.layers) - 1:\n", "            if True:\n"),
    ("MLP ignores the activation it is given and always uses tanh",
     "x = getattr(x, self.activation)()", "x = x.tanh()"),
    ("fit forgets optimizer.zero_grad(): gradients pile up over the steps",
     "        optimizer.zero_grad()\n", ""),
    ("fit draws its batch without the rng it is given",
     "idx = rng.integers(0, len(X), size=batch_size)",
     "idx = np.random.default_rng(0).integers(0, len(X), size=batch_size)"),
    ("fit records the loss after the update, from a second forward pass",
     "        losses.append(float(loss.item()))\n",
     "        losses.append(float(cross_entropy(model(Tensor(X[idx])), y[idx]).item()))\n"),
    ("mlp_forward_backward: tanh' written as 1 - a^2 with the pre-activation a",
     "grad_a = grad_h * (1.0 - h ** 2)", "grad_a = grad_h * (1.0 - (x @ W1 + b1) ** 2)"),
    ("mlp_forward_backward: the factor 2 of the squared error is dropped",
     "grad_yhat = 2.0 * diff / diff.size", "grad_yhat = diff / diff.size"),
    ("mlp_forward_backward: the mean divides by N instead of N K",
     "grad_yhat = 2.0 * diff / diff.size", "grad_yhat = 2.0 * diff / len(diff)"),
    ("mlp_forward_backward: the loss is a sum, not a mean",
     "loss = float(np.mean(diff ** 2))", "loss = float(np.sum(diff ** 2))"),
    ("mlp_forward_backward: db2 is the mean over the batch, not the sum",
     '"b2": grad_yhat.sum(axis=0)', '"b2": grad_yhat.mean(axis=0)'),
]
