"""Continuous batching: one thread owns the model and moves every waiting request forward by
one token per forward pass.

Each ``POST /generate`` for a GPT becomes a ``GenerationJob`` (its token ids and its decoding
options). The scheduler's thread loops:

1. admit: waiting jobs join the active batch, first come first served, up to
   ``max_batch_size`` of them; this happens only between steps, so a new request waits at
   most one step to start;
2. step: ONE forward pass for all active jobs, short and long together: each job's context
   (its ids, cropped to the model's last ``block_size``) gives that job's next-token logits
   (``gpt_next_token_logits``); each job then picks its token with its own options and its own
   random generator, exactly as ``sampling.generate_tokens`` would for it alone;
3. finish: a job that has all its tokens leaves the batch and its request is answered at once;
   so does a job whose client went away (``cancel``) or that ran past its time limit, with
   ``GenerationStopped``.

A 1-token request that arrives while a 2000-token one runs thus waits for one step, not for
2000. With ``max_batch_size=1`` the same loop serves one request at a time, in order of
arrival (``tinyllm serve --no-batching``), the baseline of ``benchmarks/bench_serve.py``.

Work that does not batch runs alone, between two steps, as a ``SoloJob``: beam search (its
beams already form a batch of their own), models other than GPT (an LSTM carries a state per
request; seq2seq and mlm models decode differently) and classifier predictions. The active
batch waits meanwhile. Solo generation checks ``stop`` between tokens too (see
``inference.complete``), so an abandoned beam search stops at its next token.

Each step runs under ``no_grad`` and ``evaluating(model)``. tinyllm's grad mode is one flag for
the whole process, not one per thread: train in another process than the one that serves.
"""

import threading
import time
from collections import deque

import numpy as np

from tinyllm.autograd import no_grad
from tinyllm.models.sampling import apply_repetition_penalty, sample_next_token
from tinyllm.nn.module import evaluating
from tinyllm.serving.inference import GenerationStopped


# ----- the model call of one step ------------------------------------------------------------
def gpt_next_token_logits(model, contexts):
    """The next-token logits (B, V) of B contexts of different lengths, in one forward pass.

    contexts: B lists of token ids, each 1 <= L_b <= block_size long. They are padded on the
    right to T = max_b L_b: ids (B, T), row b holding context b at positions 0..L_b-1.
    Attention is causal (position t reads positions s <= t only) and every other part of the
    model (embeddings, LayerNorm, MLP) works position by position, so positions 0..L_b-1 of row
    b never see the padding after them and get the position embeddings wpe[0..L_b-1], exactly
    as when context b is read alone. Its logits are those of its own last position:

        h = GPT blocks(wte[ids] + wpe[0..T-1])          (B, T, C)
        logits_b = lm_head(ln_f(h[b, L_b - 1]))          (V,)

    This is ``GPT.forward`` written out with the last position chosen per row (GPT.forward
    takes position T-1 for every row). It re-reads every context in full at every step; with a
    key-value cache this function becomes the one place to change: each row then feeds only
    its newest token, against the cached keys and values of its earlier ones.
    """
    lengths = np.array([len(context) for context in contexts], dtype=np.int64)
    B, T = len(contexts), int(lengths.max())
    ids = np.zeros((B, T), dtype=np.int64)                 # id 0 pads: it is never read
    for b, context in enumerate(contexts):
        ids[b, :lengths[b]] = context
    transformer = model.transformer
    x = transformer.wte(ids) + transformer.wpe(np.arange(T))                   # (B, T, C)
    for block in transformer.h:
        x = block(x)
    x = transformer.ln_f(x[np.arange(B), lengths - 1])                         # (B, C)
    return model.lm_head(x).data                                               # (B, V)


# ----- jobs ----------------------------------------------------------------------------------
class Job:
    """Work for the model, handed from a request's thread to the scheduler's thread.

    The request's thread waits on ``done``; then ``result`` holds the answer, or ``error`` the
    exception that stopped it. ``cancel()`` (the client went away) and the time limit make
    ``stop_reason()`` say why the work should stop; the scheduler checks it between tokens.
    """

    def __init__(self, time_limit=None):
        self.done = threading.Event()
        self.result = self.error = None
        self.time_limit = time_limit
        self.deadline = None if time_limit is None else time.monotonic() + time_limit
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def stop_reason(self):
        """Why this job must stop now (a sentence), or None to go on."""
        if self.cancelled:
            return "the client went away"
        if self.deadline is not None and time.monotonic() > self.deadline:
            return ("the request took longer than the server's limit of %g s per request; ask "
                    "for fewer tokens" % self.time_limit)
        return None

    def finish(self, result=None, error=None):
        self.result, self.error = result, error
        self.done.set()


class GenerationJob(Job):
    """One GPT prompt to continue by ``options.max_new_tokens`` tokens in the shared batch.

    ids: the prompt's ids, then each new token as it is chosen. ``add_token`` picks the next
    token from this job's logits as ``sampling.generate_tokens`` does for one prompt: the
    repetition penalty over all ids so far (prompt included), then ``sample_next_token`` with
    the job's temperature, top_k, top_p and its own ``np.random.default_rng(seed)``, so that a
    seeded request gives the same text batched or alone.
    """

    def __init__(self, prompt_ids, options, time_limit=None):
        super().__init__(time_limit)
        self.ids = [int(i) for i in prompt_ids]
        self.prompt_length = len(self.ids)
        self.options = options
        self.generator = np.random.default_rng(options.seed)

    @property
    def new_ids(self):
        return self.ids[self.prompt_length:]

    @property
    def has_all_tokens(self):
        return len(self.ids) - self.prompt_length >= self.options.max_new_tokens

    def context(self, block_size):
        """The ids the model reads for the next token: the last ``block_size`` of them."""
        return self.ids[-block_size:]

    def add_token(self, logits):
        """Choose the next token from this job's logits (V,) and append it."""
        o = self.options
        logits = apply_repetition_penalty(logits[None, :], [self.ids], o.repetition_penalty)
        token = sample_next_token(logits, o.temperature, o.top_k, o.top_p, self.generator)
        self.ids.append(int(token[0]))


class SoloJob(Job):
    """Work that runs alone between two steps: ``work(stop)`` returns the result; ``stop`` is
    this job's ``stop_reason``, for work that can check it between tokens."""

    def __init__(self, work, time_limit=None):
        super().__init__(time_limit)
        self.work = work


# ----- the scheduler -------------------------------------------------------------------------
class Scheduler:
    """The thread that owns ``model`` and runs every job (see the module docstring).

    max_batch_size: the most GenerationJobs in one forward pass (1: one request at a time).
    next_token_logits(model, contexts) -> (B, V): the model call of one step.
    ``steps`` counts forward passes, ``largest_batch`` the most jobs one of them held and
    ``stopped`` the jobs ended early (cancelled or past their time limit).
    """

    def __init__(self, model, max_batch_size=16, next_token_logits=gpt_next_token_logits):
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError("Scheduler: max_batch_size must be an integer >= 1, got %r"
                             % (max_batch_size,))
        self.model, self.max_batch_size = model, max_batch_size
        self.next_token_logits = next_token_logits
        self.block_size = getattr(getattr(model, "config", None), "block_size", None)
        self.waiting, self.active = deque(), []
        self.steps, self.largest_batch, self.stopped = 0, 0, 0
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tinyllm-scheduler", daemon=True)
        self._thread.start()

    def submit(self, job):
        """Queue ``job``; the caller waits on ``job.done``."""
        with self._condition:
            if self._stopping:
                raise RuntimeError("the scheduler has stopped")
            self.waiting.append(job)
            self._condition.notify()
        return job

    def close(self, timeout=5.0):
        """Stop the thread after its current step; unfinished jobs end with GenerationStopped."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._condition:
                while not (self.waiting or self.active or self._stopping):
                    self._condition.wait()
                if self._stopping:
                    break
                solo = self._admit()
            if solo is not None:
                self._run_alone(solo)
            elif self.active:
                self._step()
        for job in list(self.waiting) + self.active:
            job.finish(error=GenerationStopped("the server is shutting down"))

    def _admit(self):
        """Move waiting jobs into the batch, in order, while there is room; a SoloJob at the
        head of the line is returned instead, to run before the next step."""
        while self.waiting and len(self.active) < self.max_batch_size:
            job = self.waiting.popleft()
            if isinstance(job, SoloJob):
                return job
            self.active.append(job)
        return None

    def _run_alone(self, job):
        reason = job.stop_reason()
        if reason is not None:
            self.stopped += 1
            job.finish(error=GenerationStopped(reason))
            return
        try:
            job.finish(result=job.work(job.stop_reason))
        except GenerationStopped as error:
            self.stopped += 1
            job.finish(error=error)
        except Exception as error:          # the request's thread answers with it
            job.finish(error=error)

    def _step(self):
        """One token for every active job, from one forward pass."""
        for job in list(self.active):
            reason = job.stop_reason()
            if reason is not None:
                self.active.remove(job)
                self.stopped += 1
                job.finish(error=GenerationStopped(reason))
            elif job.has_all_tokens:                # max_new_tokens=0
                self.active.remove(job)
                job.finish(result=job.new_ids)
        if not self.active:
            return
        try:
            with evaluating(self.model), no_grad():
                logits = self.next_token_logits(
                    self.model, [job.context(self.block_size) for job in self.active])
            for job, row in zip(self.active, logits):
                job.add_token(row)
        except Exception as error:          # a bug: every request of the batch reports it
            for job in self.active:
                job.finish(error=error)
            self.active = []
            return
        self.steps += 1
        self.largest_batch = max(self.largest_batch, len(self.active))
        for job in [job for job in self.active if job.has_all_tokens]:
            self.active.remove(job)
            job.finish(result=job.new_ids)
