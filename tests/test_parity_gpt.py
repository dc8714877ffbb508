"""GPT against a PyTorch model written like nanoGPT's ``model.py``: a state_dict copied from
it loads into tinyllm's GPT by name, and logits, loss and every gradient agree in float64."""

import math
from dataclasses import dataclass

import numpy as np
import pytest

from tinyllm import rel_error      # elementwise |a - b| / (|a| + |b|), CS231n's
from tinyllm.models import GPT, GPTConfig

torch = pytest.importorskip("torch")
tnn = torch.nn
TF = torch.nn.functional


# ----- nanoGPT's model, as in its model.py (no dropout paths needed here) -------------------
@dataclass
class TorchConfig:
    block_size: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True


class LayerNorm(tnn.Module):
    """nanoGPT's LayerNorm, whose bias is optional."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = tnn.Parameter(torch.ones(ndim))
        self.bias = tnn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return TF.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(tnn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = tnn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = tnn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.n_head, self.n_embd = config.n_head, config.n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
        y = TF.softmax(att, dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(tnn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = tnn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = tnn.GELU()
        self.c_proj = tnn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(tnn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(config.vocab_size, config.n_embd),
            wpe=tnn.Embedding(config.block_size, config.n_embd),
            drop=tnn.Dropout(config.dropout),
            h=tnn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = tnn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                tnn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        # nanoGPT's biases start at zero; give them values so that their gradients are tested.
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias") or name.endswith("ln_1.weight"):
                    p.add_(0.1 * torch.randn_like(p))

    def _init_weights(self, module):
        if isinstance(module, (tnn.Linear, tnn.Embedding)):
            tnn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, tnn.Linear) and module.bias is not None:
            tnn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = TF.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                    ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss


# ----- helpers ------------------------------------------------------------------------------
def build_pair(bias, seed=0, **sizes):
    torch.manual_seed(seed)
    config = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=bias)
    config.update(sizes)
    theirs = TorchGPT(TorchConfig(**config)).double()
    ours = GPT(GPTConfig(**config)).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def batch(seed, B, T, vocab, ignore_some=True):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, vocab, size=(B, T))
    targets = rng.integers(0, vocab, size=(B, T))
    if ignore_some:
        targets[0, :2] = -1                     # nanoGPT's ignore_index
    return idx, targets


# ----- tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_gpt_logits_loss_and_gradients_match_nanogpt(bias):
    ours, theirs = build_pair(bias)
    idx, targets = batch(1, B=3, T=8, vocab=13)

    logits, loss = ours(idx, targets)
    loss.backward()
    their_logits, their_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    their_loss.backward()

    assert rel_error(logits.data, their_logits.detach().numpy()) < 1e-6
    assert rel_error(loss.data, their_loss.detach().numpy()) < 1e-6
    our_grads = {name: p.grad for name, p in ours.named_parameters()}
    their_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    assert our_grads.keys() == their_grads.keys()
    for name in their_grads:
        assert rel_error(our_grads[name], their_grads[name]) < 1e-6, name


def test_gpt_state_dict_keys_and_shapes_are_nanogpts():
    ours, theirs = build_pair(bias=True)
    their_state = theirs.state_dict()
    our_state = ours.state_dict()
    assert list(our_state) == list(their_state)
    for name, value in their_state.items():
        assert our_state[name].shape == tuple(value.shape), name


def test_gpt_last_position_logits_match_nanogpt_without_targets():
    ours, theirs = build_pair(bias=False)
    idx, _ = batch(2, B=2, T=5, vocab=13)
    logits, loss = ours(idx)
    their_logits, _ = theirs(torch.from_numpy(idx))
    assert loss is None and logits.shape == (2, 1, 13)
    assert rel_error(logits.data, their_logits.detach().numpy()) < 1e-6


def test_gpt_loads_a_checkpoint_with_nanogpts_causal_mask_buffers():
    ours, theirs = build_pair(bias=True)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    for i in range(2):      # nanoGPT without flash attention saves its mask as attn.bias
        state["transformer.h.%d.attn.bias" % i] = np.tril(np.ones((1, 1, 8, 8)))
    result = ours.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
