"""Planted bugs of step gpt: (what is wrong, text of the reference, text replacing it)."""

BUGS = [
    ("layer norm puts eps outside the square root",
     "inv_sigma = 1.0 / np.sqrt(var + eps)", "inv_sigma = 1.0 / (np.sqrt(var) + eps)"),
    ("layer norm's backward misses the mean term (mu depends on every x)",
     "        grad_x = inv_sigma * (g - g.mean(axis=-1, keepdims=True)\n"
     "                              - xhat",
     "        grad_x = inv_sigma * (g\n"
     "                              - xhat"),
    ("layer norm's dweight forgets the factor xhat",
     "(grad * xhat).sum(axis=other_axes)", "grad.sum(axis=other_axes)"),
    ("the LayerNorm module ignores its eps",
     "LayerNormFunction.apply(x, self.weight, self.bias, eps=self.eps)",
     "LayerNormFunction.apply(x, self.weight, self.bias)"),
    ("gelu uses 2/pi instead of sqrt(2/pi)",
     "inner = math.sqrt(2.0 / math.pi) * ", "inner = (2.0 / math.pi) * "),
    ("the block has no residual connection around attention",
     "x = x + self.attn(self.ln_1(x), is_causal=True)",
     "x = self.attn(self.ln_1(x), is_causal=True)"),
    ("the causal mask is off: a position sees the tokens after it",
     "self.attn(self.ln_1(x), is_causal=True)", "self.attn(self.ln_1(x), is_causal=False)"),
    ("the position embedding is never added",
     "x = self.wte(idx) + self.wpe(np.arange(T))", "x = self.wte(idx)"),
    ("the output layer uses a detached copy of wte.weight (the weights are not tied)",
     "logits = x @ self.wte.weight.T", "logits = x @ self.wte.weight.detach().T"),
    ("the embeddings keep their N(0, 1) initialisation (the loss starts far above log V)",
     "        self.wte.weight.data *= 0.02\n", ""),
    ("a sequence of exactly block_size tokens is refused (off by one)",
     "if T > self.config.block_size:", "if T >= self.config.block_size:"),
    ("a sequence longer than block_size is not checked (the position lookup fails instead)",
     "        if T > self.config.block_size:\n"
     "            raise ValueError(\"GPT: a sequence of length %d is longer than block_size %d\"\n"
     "                             % (T, self.config.block_size))\n", ""),
]
