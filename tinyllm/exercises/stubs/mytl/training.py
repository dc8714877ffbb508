"""Step training (chapter 12): train your GPT, on your own engine, on a real corpus.

A language model learns to predict each next token. A training example is a window of
``block_size`` tokens x and the same window moved one token on, y: at every position t the
target y[t] = x[t + 1] is the token that follows x[0 .. t]. The loop is the one of every
chapter: draw a batch, forward, loss, clear the gradients, backward, clip, step; with a
learning rate that warms up and then decays, and the loss on held-out text measured now and
then (without building a graph: no gradients are needed to measure).

You write ``get_batch``, ``estimate_loss`` and ``train``. The last check is the course's final
exam: your GPT (step gpt), in float32, trained by your ``train`` with your ``AdamW`` and
``warmup_cosine_lr`` (step optim) on Python's pydoc texts, one token per character, must reach
a validation loss of at most 2.0 nats per character in 600 steps (about 20 s with the
reference solutions on two cores). It stops early, with the step and the loss, when the loss
misses a milestone on the way.

Check your work with ``python -m tinyllm.exercises check training``.
"""

import numpy as np

from mytl.autograd import no_grad
from mytl.optim import clip_grad_norm_


def get_batch(data, block_size, batch_size, rng):
    """A batch of training windows drawn at random from ``data``.

    data: a 1-D array of token ids (any integer dtype), length N > block_size.
    Draws batch_size start positions i uniformly from 0 .. N - block_size - 1 with
    ``rng.integers(0, N - block_size, size=batch_size)`` and returns (x, y), two int64 arrays
    (batch_size, block_size): x[b] = data[i_b : i_b + block_size], y[b] = data[i_b + 1 :
    i_b + block_size + 1] (x moved one token on: y[b, t] is the token after x[b, t]).
    """
    raise NotImplementedError


def estimate_loss(model, data, block_size, batch_size, iters, rng):
    """The mean loss of ``model`` over ``iters`` batches of ``get_batch(data, ...)``, a float.

    ``model(x, y)`` returns (logits, loss). Runs under ``no_grad()`` (no graph is built, no
    gradient changes) and in eval mode (``model.eval()``, then ``model.train()`` again).
    """
    raise NotImplementedError


def train(model, optimizer, train_data, val_data, steps, batch_size, block_size,
          lr_schedule=None, clip=1.0, eval_every=100, eval_iters=10, rng=None, log=None):
    """Train ``model`` for ``steps`` steps; returns the history, a list of
    (step, train_loss, val_loss) tuples, one per evaluation.

    Step s = 0 .. steps - 1: if ``lr_schedule`` is given, set ``optimizer.lr =
    lr_schedule(s)``; draw (x, y) = get_batch(train_data, block_size, batch_size, rng);
    _, loss = model(x, y); clear the gradients; backward; if ``clip`` is not None,
    clip_grad_norm_(model.parameters(), clip); optimizer.step().

    After step s, when s % eval_every == 0 or s is the last step: train_loss is the mean of
    the batch losses since the last evaluation, val_loss = estimate_loss(model, val_data,
    block_size, batch_size, eval_iters, rng); append (s, train_loss, val_loss) to the history
    and, if ``log`` is given, call log(s, train_loss, val_loss): if it returns False,
    training stops there. ``rng``: a NumPy Generator (default: np.random.default_rng()).
    """
    raise NotImplementedError
