"""Checks of step training (chapter 12): batches, evaluation, the training loop, and the final
exam: the student's GPT, on the student's engine, trained on the bundled pydoc corpus.

get_batch is checked on data whose tokens are their own positions (np.arange), so a window and
its shift can be read off; estimate_loss with a model that records how it was called; train's
updates against the same updates done here, step by step, with the student's SGD on a copy of
the model. The last check trains a small GPT in float32 on Python's pydoc texts, tokenized by
character here, and stops as soon as the validation loss, measured here on fixed windows,
misses a milestone.
"""


import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import CheckFailed

STEP = Step(
    name="training", chapter=12, module="training",
    title="the training loop: train your GPT on a real corpus",
    teaches="How a language model's training examples are windows of text and the same "
            "windows moved one token on, how the loss on held-out text is measured without "
            "building a graph, and how the loop (schedule, batch, forward, zero_grad, "
            "backward, clip, step) trains a GPT built on your own engine to a stated "
            "validation loss.",
    needs=("autograd", "elementwise", "tensor_ops", "losses", "optim", "mlp", "embedding",
           "attention", "gpt"),
    minutes=120,
    hints=(
        "get_batch: draw the start positions with rng.integers(0, len(data) - block_size, "
        "size=batch_size); the last window that fits starts at len(data) - block_size - 1, "
        "because y needs one token more than x. Return int64 arrays (the corpus may be "
        "stored as uint16).",
        "estimate_loss: wrap the loop in `with no_grad():` (from mytl.autograd): evaluating "
        "needs no gradients, and without it every batch builds a graph that is never used. "
        "Return a Python float: float(loss.item()).",
        "train: the order inside one step is: set optimizer.lr from the schedule, draw a "
        "batch, forward, optimizer.zero_grad(), loss.backward(), clip_grad_norm_, "
        "optimizer.step(). Without zero_grad, each backward adds to all the earlier "
        "gradients; a step before backward uses the gradients of the previous batch.",
        "The final check trains for a few hundred steps, a minute or two. If it stops at a "
        "milestone, find which part is wrong with the earlier checks: the GPT's checks, then "
        "optim's (AdamW, warmup_cosine_lr), then this step's first three.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


# ----- get_batch -------------------------------------------------------------------------------
@STEP.check("get_batch_returns_windows_and_their_shift")
def get_batch_windows(c):
    """x (B, T) int64 windows of data, y the same windows moved one token on; every start
    0 .. N - T - 1 is drawn, from the rng given."""
    get_batch = c.get("get_batch")
    data = np.arange(100, dtype=np.uint16)          # each token is its own position
    x, y = get_batch(data, 8, 16, _rng(0))
    c.shape("x", x, (16, 8), dtype=np.int64)
    c.shape("y", y, (16, 8), dtype=np.int64)
    x, y = c.array(x, "x"), c.array(y, "y")
    c.known("x[b, t] - x[b, 0] (a window is consecutive tokens)", x - x[:, :1],
            np.broadcast_to(np.arange(8), (16, 8)))
    c.known("y (x moved one token on)", y, x + 1)
    again, _ = get_batch(data, 8, 16, _rng(0))
    c.known("x again, from a generator with the same seed", c.array(again, "x"), x)
    starts = c.array(get_batch(np.arange(20), 4, 2000, _rng(1))[0], "x")[:, 0]
    c.true(starts.min() == 0 and starts.max() == 15,
           "with N = 20 tokens and block_size 4 the windows should start anywhere in 0 .. 15 "
           "(y of the last one ends at token 19); 2000 draws started in %d .. %d"
           % (starts.min(), starts.max()))


# ----- estimate_loss ---------------------------------------------------------------------------
class _RecordingModel:
    """Stands in for a GPT: its loss is w * mean(y), and it records every call."""

    def __init__(self, c):
        self.c = c
        self.w = c.tensor(np.array(1.0), requires_grad=True)
        self.is_grad_enabled = c.get("is_grad_enabled", module="autograd")
        self.calls = []             # (x, y, grad mode on?, loss)
        self.training = True

    def __call__(self, idx, targets=None):
        x, y = self.c.array(idx, "x"), self.c.array(targets, "y")
        loss = self.w * float(np.mean(y))
        self.calls.append((x, y, self.is_grad_enabled(), float(np.mean(y))))
        return None, loss

    def parameters(self):
        return [self.w]

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)


@STEP.check("estimate_loss_averages_batches_under_no_grad")
def estimate_loss_check(c):
    """estimate_loss calls the model on `iters` batches under no_grad and returns the mean
    loss as a float."""
    estimate_loss = c.get("estimate_loss")
    is_grad_enabled = c.get("is_grad_enabled", module="autograd")
    model = _RecordingModel(c)
    value = estimate_loss(model, np.arange(1000), 6, 4, 5, _rng(3))
    c.true(len(model.calls) == 5, "estimate_loss(..., iters=5) called the model %d times"
           % len(model.calls))
    for x, y, _, _ in model.calls:
        c.shape("a batch's x", x, (4, 6))
        c.known("a batch's y", y, x + 1)
    c.true(not any(call[2] for call in model.calls),
           "estimate_loss ran the model with gradients on: wrap it in `with no_grad():`")
    c.true(is_grad_enabled(), "gradients are still off after estimate_loss returned")
    c.true(model.w.grad is None, "estimate_loss changed a gradient")
    c.true(isinstance(value, float), "estimate_loss should return a Python float, got %s"
           % type(value).__name__)
    c.known("the estimate (mean of the 5 losses)", value,
            np.mean([call[3] for call in model.calls]))


# ----- train -----------------------------------------------------------------------------------
def _gpt(c, seed, **sizes):
    GPT, GPTConfig = c.get("GPT", module="gpt"), c.get("GPTConfig", module="gpt")
    return GPT(GPTConfig(**sizes), rng=_rng(seed))


@STEP.check("each_step_is_one_update_with_the_scheduled_lr")
def train_updates(c):
    """train with SGD on data whose every window is the same: each step is one update
    p -= lr(s) * dL/dp with fresh gradients, and each evaluation is logged."""
    train, SGD = c.get("train"), c.get("SGD", module="optim")
    sizes = dict(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model, twin = _gpt(c, 20, **sizes), _gpt(c, 21, **sizes)
    for p, q in zip(model.parameters(), twin.parameters()):
        q.data = np.array(p.data, copy=True)
    data = np.full(30, 2, dtype=np.int64)            # every window: x = y = [2, 2, 2, 2]
    lrs = [0.5, 0.2, 0.1]
    logged = []
    history = train(model, SGD(model.parameters(), lr=0.0), data, data, steps=3, batch_size=2,
                    block_size=4, lr_schedule=lambda s: lrs[s], clip=None, eval_every=1,
                    eval_iters=1, rng=_rng(22), log=lambda *a: logged.append(a))
    x = np.full((2, 4), 2, dtype=np.int64)
    losses = []
    for lr in lrs + [0.0]:                           # the same steps, done here on the twin
        for q in twin.parameters():
            q.grad = None
        _, loss = twin(x, x)
        losses.append(float(c.array(loss)))
        loss.backward()
        for q in twin.parameters():
            q.data = q.data - lr * q.grad
    for i, (p, q) in enumerate(zip(model.parameters(), twin.parameters())):
        c.known("parameter %d after 3 steps" % i, p.data, q.data)
    c.equal("the steps of the history", [int(h[0]) for h in history], [0, 1, 2])
    c.known("the train losses of the history", np.array([h[1] for h in history]),
            np.array(losses[:3]))
    c.known("the val losses of the history (after each update)",
            np.array([h[2] for h in history]), np.array(losses[1:]))
    c.known("the arguments of log", np.array(logged, dtype=float),
            np.array(history, dtype=float))


# ----- the final exam --------------------------------------------------------------------------
TARGET = 2.0                                    # nats per character on the validation text
MILESTONES = {50: 3.3, 100: 2.9, 200: 2.6, 300: 2.4}
STEPS, BATCH, BLOCK = 600, 32, 32
SIZES = dict(block_size=BLOCK, n_layer=2, n_head=4, n_embd=64)


def _char_corpus():
    """Python's pydoc texts as character ids (int64): train (first 90%), val (last 10%)."""
    from tinyllm.data.corpus import load_corpus
    text = load_corpus("pydoc")
    chars = sorted(set(text))
    ids = {ch: i for i, ch in enumerate(chars)}
    data = np.array([ids[ch] for ch in text], dtype=np.int64)
    n_val = len(data) // 10
    return data[:-n_val], data[-n_val:], len(chars)


class _CountingModel:
    """The student's GPT, counting the forward passes run with gradients on."""

    def __init__(self, model, is_grad_enabled):
        self.model, self.is_grad_enabled = model, is_grad_enabled
        self.with_grad = 0

    def __call__(self, *args, **kwargs):
        self.with_grad += bool(self.is_grad_enabled())
        return self.model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


@STEP.check("trains_a_gpt_to_val_loss_2_on_pydoc", time_limit=300)
def train_pydoc(c):
    """A 2-layer GPT (n_embd 64, float32) trained by train with AdamW and warmup_cosine_lr on
    the pydoc corpus, by character, reaches a validation loss <= 2.0 nats in 500 steps."""
    train = c.get("train")
    AdamW, warmup_cosine_lr = c.get("AdamW", module="optim"), c.get("warmup_cosine_lr",
                                                                    module="optim")
    no_grad, is_grad_enabled = (c.get("no_grad", module="autograd"),
                                c.get("is_grad_enabled", module="autograd"))
    train_data, val_data, vocab_size = _char_corpus()
    model = _gpt(c, 0, vocab_size=vocab_size, **SIZES)
    for p in model.parameters():
        p.data = np.asarray(p.data, dtype=np.float32)
    windows = np.random.default_rng(2024).integers(0, len(val_data) - BLOCK, size=(16, BATCH))

    def val_loss():
        losses = []
        with no_grad():
            for starts in windows:
                x = np.stack([val_data[i:i + BLOCK] for i in starts])
                y = np.stack([val_data[i + 1:i + 1 + BLOCK] for i in starts])
                losses.append(float(c.array(model(x, y)[1])))
        return float(np.mean(losses))

    counted = _CountingModel(model, is_grad_enabled)
    reached = {}

    def log(step, train_loss, student_val_loss):
        if counted.with_grad > step + 1:
            raise CheckFailed("by step %d train ran the model %d times with gradients on: "
                              "evaluation must run under no_grad (see estimate_loss)"
                              % (step, counted.with_grad))
        if step in MILESTONES:
            reached[step] = val_loss()
            if reached[step] > MILESTONES[step]:
                raise CheckFailed("after step %d the validation loss is %.3f, above the "
                                  "milestone %.2f: training stopped early"
                                  % (step, reached[step], MILESTONES[step]))

    optimizer = AdamW(model.parameters(), lr=0.0)   # the schedule sets lr at every step
    train(counted, optimizer, train_data, val_data, steps=STEPS, batch_size=BATCH,
          block_size=BLOCK, clip=1.0, eval_every=50, eval_iters=2, rng=_rng(1), log=log,
          lr_schedule=lambda s: warmup_cosine_lr(s, 25, STEPS, 5e-3, 5e-4))
    missed = sorted(set(MILESTONES) - set(reached))
    c.true(not missed, "log was never called at step %s: train should evaluate and log "
           "when step %% eval_every == 0" % missed[:1])
    c.true(counted.with_grad == STEPS, "train ran %d forward passes with gradients for %d "
           "steps; it should run one per step" % (counted.with_grad, STEPS))
    final = val_loss()
    with no_grad():
        logits_dtype = c.array(model(np.zeros((1, 4), dtype=np.int64))[0]).dtype
    c.note("validation loss %.3f after %d steps (expected <= %.1f; milestones %s against "
           "%s), logits %s" % (final, STEPS, TARGET,
                               ", ".join("%.2f" % reached[s] for s in sorted(reached)),
                               ", ".join("%.1f" % MILESTONES[s] for s in sorted(reached)),
                               logits_dtype))
    c.true(final <= TARGET, "after %d steps the validation loss is %.3f; it should be <= %.1f"
           % (STEPS, final, TARGET))
