"""Continuous batching: one thread owns the model and moves every waiting request forward by
one token per forward pass.

Each ``POST /generate`` for a GPT becomes a ``GenerationJob`` (its token ids and its decoding
options). The scheduler's thread loops:

1. admit: waiting jobs join the active batch, first come first served, up to
   ``max_batch_size`` of them; this happens only between steps, so a new request waits at
   most one step to start;
2. step: ONE decode pass for all active jobs, short and long together, on a key-value
   cache (``RequestKVCache``): each job owns a row of the cache, which holds the keys and
   values of its tokens so far, so the pass reads only each job's newest token, at that job's
   own position, against its own cached keys (``RequestKVCache.decode``). Newly admitted
   jobs first read their prompts, once, into their rows (``RequestKVCache.prefill``); a job
   whose ids no longer fit in ``block_size`` re-reads its last ``block_size`` ids every step
   (``gpt_next_token_logits``), the rule of ``sampling.CachedStepper``. Each job then picks
   its token with its own options and its own random generator, exactly as
   ``sampling.generate_tokens`` would for it alone;
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

from tinyllm import functional as F
from tinyllm.autograd import Tensor, no_grad
from tinyllm.models.gpt import GPT
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
    takes position T-1 for every row). It re-reads every context in full: the scheduler uses
    it for contexts past ``block_size`` (whose every position moves each step) and when built
    with ``use_cache=False``; otherwise ``RequestKVCache.decode`` reads only the new tokens.
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


class RequestKVCache:
    """The keys and values of every active request, one row ("slot") per request, each row
    with its own length: continuous batching on a KV cache.

    ``cache``: a ``KVCache`` of ``rows`` sequences of up to block_size positions, keys and
    values (n_layer, rows, nh, block_size, hs). A request takes a free slot (``take``), reads
    its prompt into it once (``prefill``, batched over the requests admitted together), then
    adds one position a step (``decode``, batched over requests) and gives the slot back when
    it leaves (``release``).
    NumPy allocates the zeros lazily (the operating system maps a page when it is first
    written), so memory grows with the positions really stored, not with rows * block_size.
    """

    def __init__(self, model, rows):
        self.model = model
        self.cache = model.new_cache(rows)
        self.free = list(range(rows - 1, -1, -1))          # pop() takes the lowest slot

    def take(self):
        return self.free.pop()

    def release(self, slot):
        self.free.append(slot)

    def prefill(self, slots, contexts):
        """Read the contexts (B lists of P_b <= block_size ids) in one pass, storing context
        b's keys and values at positions 0..P_b - 1 of row ``slots[b]``; the next-token logits
        (B, V).

        As in ``gpt_next_token_logits``, the contexts are padded on the right to
        T = max_b P_b and read through the GPT blocks with a fresh ``KVCache`` of T positions
        (``CachedStepper.start`` for several prompts at once); row b's logits are those of
        its last real position P_b - 1. Causal attention keeps the padding out of every real
        position. The padding's own keys and values land at positions P_b..T-1 of the row,
        where ``decode`` masks them (keys j > p_b) until it overwrites them one by one.
        """
        model = self.model
        lengths = np.array([len(context) for context in contexts], dtype=np.int64)
        B, T = len(contexts), int(lengths.max())
        ids = np.zeros((B, T), dtype=np.int64)             # id 0 pads
        for b, context in enumerate(contexts):
            ids[b, :lengths[b]] = context
        own = model.new_cache(B, T)
        transformer = model.transformer
        x = transformer.wte(ids) + transformer.wpe(np.arange(T))                # (B, T, C)
        for layer, block in enumerate(transformer.h):
            x = block(x, own, layer)
        x = transformer.ln_f(x[np.arange(B), lengths - 1])                      # (B, C)
        slots = np.asarray(slots, dtype=np.int64)
        self.cache.keys.data[:, slots, :, :T] = own.keys.data
        self.cache.values.data[:, slots, :, :T] = own.values.data
        return model.lm_head(x).data                                            # (B, V)

    def decode(self, slots, tokens, positions):
        """One new token per request, all in one pass: request b feeds ``tokens[b]`` at position
        p_b = ``positions[b]``, its row ``slots[b]`` holding positions 0..p_b - 1. Returns the
        next-token logits (B, V).

            x_b = wte[token_b] + wpe[p_b]                                  (B, 1, C)
            each block: q, k, v = split(c_attn(ln_1(x)))  (B, nh, 1, hs); k_b, v_b stored at
                position p_b of row slot_b; K_b, V_b = that row's positions 0..S-1, S = max p + 1
                y_b = softmax(q_b K_b^T / sqrt(hs) + M_b) V_b,   M_b[j] = -inf for j > p_b
                x = x + c_proj(y);  x = x + mlp(ln_2(x))
            logits = lm_head(ln_f(x))                                       (B, V)

        The mask M_b hides what row b does not hold yet (the keys of longer requests' positions
        sit beyond p_b), so request b gets the logits it gets alone (``CachedStepper.advance``),
        to float rounding. This is ``GPT.forward`` on a cache written out per row (GPT.forward
        puts the new tokens of every row at the same positions); a step costs O(sum_b p_b)
        attention work instead of the O(sum_b p_b^2) of re-reading every context.
        """
        model, cache = self.model, self.cache
        slots = np.asarray(slots, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        B, S = len(slots), int(positions.max()) + 1
        may_attend = (np.arange(S)[None, :] <= positions[:, None]).reshape(B, 1, 1, S)
        transformer = model.transformer
        x = transformer.wte(np.asarray(tokens, dtype=np.int64)[:, None]) \
            + transformer.wpe(positions[:, None])                            # (B, 1, C)
        for layer, block in enumerate(transformer.h):
            attn = block.attn
            C, nh = attn.n_embd, attn.n_head
            q, k, v = attn.c_attn(block.ln_1(x)).split(C, axis=2)           # (B, 1, C) each
            q, k, v = (t.reshape(B, 1, nh, C // nh).transpose(1, 2) for t in (q, k, v))
            cache.keys.data[layer, slots, :, positions] = k.data[:, :, 0]  # (B, nh, hs)
            cache.values.data[layer, slots, :, positions] = v.data[:, :, 0]
            keys = Tensor(cache.keys.data[layer][slots, :, :S], dtype=x.dtype)  # (B, nh, S, hs)
            values = Tensor(cache.values.data[layer][slots, :, :S], dtype=x.dtype)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=may_attend)
            x = x + attn.c_proj(y.transpose(1, 2).reshape(B, 1, C))
            x = x + block.mlp(block.ln_2(x))
        return model.lm_head(transformer.ln_f(x))[:, 0].data                 # (B, V)


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
        self.slot = None        # its row of the scheduler's RequestKVCache, once it holds one

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
    use_cache: keep each job's keys and values in a ``RequestKVCache`` (a GPT model only) and
    feed only the new tokens; False re-reads every context at every step
    (``gpt_next_token_logits``), the same tokens for more work.
    ``steps`` counts forward passes, ``largest_batch`` the most jobs one of them held and
    ``stopped`` the jobs ended early (cancelled or past their time limit).
    """

    def __init__(self, model, max_batch_size=16, use_cache=True):
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError("Scheduler: max_batch_size must be an integer >= 1, got %r"
                             % (max_batch_size,))
        self.model, self.max_batch_size = model, max_batch_size
        self.use_cache = bool(use_cache) and isinstance(model, GPT)
        self.cache = None                       # a RequestKVCache, made for the first job
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
        """One token for every active job, from one batched pass (plus the prefills)."""
        for job in list(self.active):
            reason = job.stop_reason()
            if reason is not None:
                self._leave(job, error=GenerationStopped(reason))
                self.stopped += 1
            elif job.has_all_tokens:                # max_new_tokens=0
                self._leave(job, result=job.new_ids)
        if not self.active:
            return
        try:
            with evaluating(self.model), no_grad():
                logits = self._next_token_logits(self.active)
            for job, row in zip(self.active, logits):
                job.add_token(row)
        except Exception as error:          # a bug: every request of the batch reports it
            for job in list(self.active):
                self._leave(job, error=error)
            return
        self.steps += 1
        self.largest_batch = max(self.largest_batch, len(self.active))
        for job in [job for job in self.active if job.has_all_tokens]:
            self._leave(job, result=job.new_ids)

    def _leave(self, job, result=None, error=None):
        """Take ``job`` out of the batch, free its cache row and answer its request."""
        self.active.remove(job)
        self._release_slot(job)
        job.finish(result=result, error=error)

    def _release_slot(self, job):
        if job.slot is not None:
            self.cache.release(job.slot)
            job.slot = None

    def _next_token_logits(self, jobs):
        """The next-token logits (B, V) of ``jobs``, in order.

        With the cache, each job is in one of three states: new (no slot yet): its context
        is read into a free row (one batched prefill for all new jobs); cached: its newest
        token joins the one batched ``decode``; past block_size (more than block_size ids):
        its row is freed and its last block_size ids are re-read, in one batch with the
        others past block_size (every position of its window moves each step).
        """
        if not self.use_cache:
            return self._reread_logits(jobs)
        if self.cache is None:
            self.cache = RequestKVCache(self.model, self.max_batch_size)
        logits = [None] * len(jobs)
        prefilling, decoding, rereading = [], [], []
        for b, job in enumerate(jobs):
            if len(job.ids) > self.block_size:
                self._release_slot(job)
                rereading.append(b)
            elif job.slot is None:
                job.slot = self.cache.take()
                prefilling.append(b)
            else:
                decoding.append(b)
        if prefilling:
            rows = self.cache.prefill([jobs[b].slot for b in prefilling],
                                      [jobs[b].ids for b in prefilling])
            for b, row in zip(prefilling, rows):
                logits[b] = row
        if decoding:
            rows = self.cache.decode([jobs[b].slot for b in decoding],
                                     [jobs[b].ids[-1] for b in decoding],
                                     [len(jobs[b].ids) - 1 for b in decoding])
            for b, row in zip(decoding, rows):
                logits[b] = row
        if rereading:
            rows = self._reread_logits([jobs[b] for b in rereading])
            for b, row in zip(rereading, rows):
                logits[b] = row
        return np.stack(logits)

    def _reread_logits(self, jobs):
        """Every job's context (its last block_size ids) read in full: logits (B, V)."""
        return gpt_next_token_logits(self.model, [job.context(self.block_size) for job in jobs])
