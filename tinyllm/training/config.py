"""``TrainConfig``: every choice of a training run in one dataclass, as nanoGPT's config.

The defaults are nanoGPT's small CPU configuration (``config/train_shakespeare_char.py`` with
its CPU settings): a 4-layer, 4-head, 128-wide GPT with a context of 64 characters, batches of
12 windows, AdamW at lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4 over 2000 steps,
gradient clipping at 1.0 and no dropout. On the default corpus (Python's pydoc topics, about
0.5 MB of English) that trains in a few minutes on a 2-core laptop.

A config is saved inside every checkpoint (``to_dict``) and read back (``from_dict``), so a
resumed run continues with exactly the settings it started with.
"""

import math
from dataclasses import asdict, dataclass, fields

from tinyllm.kernels.backend import BACKENDS

MODEL_TYPES = ("gpt", "lstm", "mlm", "seq2seq", "classifier")
TOKENIZERS = ("char", "bpe")


def default_out(model):
    """The output folder of a run that names none: out/gpt, out/lstm, ... (one per model kind,
    so training one kind of model never overwrites the checkpoint of another)."""
    return "out/%s" % model


@dataclass
class TrainConfig:
    """The settings of one training run (see the module docstring for the defaults' origin).

    Sizes mean the same for every model: ``n_layer`` layers (LSTM layers for "lstm"; the
    one-layer "classifier" ignores it), ``n_embd`` features per token (the LSTM's embedding and
    hidden size), ``n_head`` attention heads, ``block_size`` tokens per window (the longest
    sequence for "seq2seq", the longest line for "classifier").
    """
    # what to train, on what
    model: str = "gpt"              # gpt | lstm | mlm | seq2seq | classifier
    corpus: str = "pydoc"           # pydoc | stdlib | a text file or folder (gpt, lstm, mlm)
    tokenizer: str = "char"         # char | bpe
    vocab_size: int = 512           # BPE only: bytes + merges + special tokens
    # model size
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    # optimisation
    batch_size: int = 12
    steps: int = 2000               # optimizer updates in the whole run
    lr: float = 1e-3                # peak learning rate, reached at the end of the warm-up
    min_lr: float = None            # the floor of the cosine decay; None: lr / 10
    warmup: int = None              # linear warm-up steps; None: min(100, steps // 10)
    weight_decay: float = 0.1       # AdamW's decay of the matrices (not biases and gains)
    beta1: float = 0.9
    beta2: float = 0.99
    clip: float = 1.0               # max global gradient norm; 0 turns clipping off
    grad_accum: int = 1             # micro-batches added up before each update
    # evaluation, checkpoints, output
    eval_every: int = 250           # evaluate and checkpoint every this many steps (and last)
    eval_batches: int = 20          # validation batches per evaluation (fixed windows)
    val_fraction: float = 0.1       # the end of the corpus held out for validation
    sample_tokens: int = 200        # length of the samples printed before and after training
    seed: int = 1337
    backend: str = None             # numpy | numba | cuda | auto; None keeps the current one
    out: str = None                 # folder for the checkpoint and the loss plot; None: out/MODEL
    # data parallel (mpiexec -n N tinyllm train ...; see tinyllm/distributed)
    zero: int = 0                   # 1: ZeRO stage 1, the optimizer state sharded over ranks
    overlap: int = 0                # 1: start each bucket's all-reduce during backward
    bucket_mb: float = 25.0         # megabytes of gradients per all-reduce
    comm_timeout: float = 300.0     # seconds a rank waits for the others in a collective

    def __post_init__(self):
        if self.out is None:
            self.out = default_out(self.model)
        if self.warmup is None:
            self.warmup = min(100, self.steps // 10) if _is_int(self.steps) else 0
        if self.min_lr is None:
            self.min_lr = self.lr / 10 if isinstance(self.lr, (int, float)) else 0.0
        self.validate()

    def validate(self):
        """Raise ValueError naming the first setting that cannot work."""
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("%s must be a finite number, got %r (checkpoints store the "
                                 "settings as JSON, which holds no inf or nan)%s"
                                 % (name, value, "; --clip 0 turns clipping off"
                                    if name == "clip" else ""))
        if self.model not in MODEL_TYPES:
            raise ValueError("unknown model %r; choose one of %s"
                             % (self.model, ", ".join(MODEL_TYPES)))
        if self.tokenizer not in TOKENIZERS:
            raise ValueError("unknown tokenizer %r; choose one of %s"
                             % (self.tokenizer, ", ".join(TOKENIZERS)))
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "steps",
                     "grad_accum", "eval_every", "eval_batches", "sample_tokens"):
            value = getattr(self, name)
            minimum = 0 if name == "sample_tokens" else 1
            if not _is_int(value) or value < minimum:
                raise ValueError("%s must be an integer >= %d, got %r" % (name, minimum, value))
        if not _is_int(self.warmup) or not 0 <= self.warmup < self.steps:
            raise ValueError("warmup must be an integer in [0, steps) = [0, %d), got %r (the "
                             "cosine decay needs at least one step after the warm-up)"
                             % (self.steps, self.warmup))
        if self.model in ("gpt", "mlm", "seq2seq") and self.n_embd % self.n_head != 0:
            raise ValueError("n_embd=%d must be divisible by n_head=%d (each head gets "
                             "n_embd / n_head features)" % (self.n_embd, self.n_head))
        if self.tokenizer == "bpe" and (not _is_int(self.vocab_size) or self.vocab_size < 260):
            raise ValueError("vocab_size must be an integer >= 260 for the BPE tokenizer (256 "
                             "bytes, special tokens and some merges), got %r" % (self.vocab_size,))
        if not self.lr > 0:
            raise ValueError("lr must be positive, got %r" % (self.lr,))
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError("min_lr must lie in [0, lr] = [0, %g], got %r"
                             % (self.lr, self.min_lr))
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must lie in [0, 1), got %r" % (self.dropout,))
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must lie in (0, 1), got %r" % (self.val_fraction,))
        if not self.clip >= 0:
            raise ValueError("clip must be >= 0 (0 turns clipping off), got %r" % (self.clip,))
        if not self.weight_decay >= 0:
            raise ValueError("weight_decay must be >= 0, got %r" % (self.weight_decay,))
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError("%s must lie in [0, 1), got %r" % (name, getattr(self, name)))
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError("unknown backend %r; choose one of %s"
                             % (self.backend, ", ".join(BACKENDS)))
        for name in ("zero", "overlap"):
            if getattr(self, name) not in (0, 1):
                raise ValueError("%s must be 0 or 1, got %r" % (name, getattr(self, name)))
        for name in ("bucket_mb", "comm_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError("%s must be positive, got %r" % (name, getattr(self, name)))
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError("seed must be a non-negative integer, got %r" % (self.seed,))

    @property
    def tokens_per_step(self):
        """Tokens read by one optimizer update: batch_size * block_size * grad_accum (for the
        padded batches of seq2seq and classifier, an upper bound)."""
        return self.batch_size * self.block_size * self.grad_accum

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """A config from ``to_dict``'s output; unknown keys are an error (a typo would
        otherwise be ignored silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError("unknown training setting(s): %s" % ", ".join(unknown))
        return cls(**data)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
