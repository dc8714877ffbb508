"""Decoding: turning a language model's next-token logits into tokens, and tokens into text.

A language model gives, after reading tokens x_1..x_t, one logit z_v per vocabulary entry v;
p(x_{t+1} = v) = softmax(z)_v. Decoding picks a token, appends it and repeats. The filters,
applied in this order:

- repetition penalty r (CTRL, Keskar et al. 2019, as Hugging Face applies it): every token
  already in the sequence (prompt included) has its logit z divided by r when z > 0 and
  multiplied by r when z < 0, which lowers its probability either way for r > 1;
- temperature T:  p_v = softmax(z / T)_v.  T < 1 sharpens the distribution (towards the
  argmax), T > 1 flattens it; T = 0 means greedy decoding (the argmax, no randomness), the
  limit of T -> 0 (and tends to loop on a small model);
- top-k: keep only the k largest logits (the others get probability 0);
- top-p (nucleus, Holtzman et al. 2019): sort the probabilities in decreasing order and keep
  the smallest set of tokens whose total probability is >= p; renormalise.

Then one token is drawn from what is left by inverse-CDF sampling: u ~ U(0, 1), token = the
first v with cdf_v > u * cdf_last. ``token_probabilities`` returns that distribution. A ``seed``
(or a NumPy ``Generator``) makes a sample repeatable: the same seed gives the same text.

Beam search keeps the ``beam_size`` most probable partial continuations (by total
log-probability) instead of one; it finds sequences that greedy decoding misses when the best
first token does not start the best sequence.

Models are driven through a *stepper*, the model-specific step that gives the next-token
logits: a GPT or Llama keeps each layer's keys and values and reads only the new token
(``CachedStepper``, the KV cache), or re-reads its context, cropped to its last ``block_size``
tokens, for every new token (``ContextStepper``); an LSTM carries its state and reads only the
newest token (``RecurrentStepper``); a translation model's decoder re-reads its output against the encoded
source (``Seq2SeqTransformer``). ``generate_tokens`` and ``beam_search_tokens`` (with
``beam_step``) are the two decoding loops; ``GPT.generate``, ``LSTMLanguageModel.generate``,
``generate``, ``beam_search`` and ``Seq2SeqTransformer.beam_search`` all run one of them.
"""

import codecs

import numpy as np

from tinyllm import random
from tinyllm.autograd import Tensor, no_grad
from tinyllm.kernels.cpu_runtime import limit_threads
from tinyllm.nn.module import evaluating


# ----- the filter chain: logits (B, V) -> the distribution to sample from --------------------
def _softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def _log_softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def apply_repetition_penalty(logits, previous_ids, penalty):
    """Logits (B, V) with each row's already-seen tokens penalised (see the module docstring).

    previous_ids: (B, T) ids (or a list of B lists); penalty r > 0 (1: no change). Each token
    is penalised once, however often it occurred. Returns a new float64 array.
    """
    if not penalty > 0:
        raise ValueError("repetition_penalty must be > 0 (1 means no penalty), got %r"
                         % (penalty,))
    logits = np.array(logits, dtype=np.float64)
    if penalty == 1.0:
        return logits
    for row, ids in enumerate(previous_ids):
        seen = np.unique(np.asarray(ids, dtype=np.int64))
        z = logits[row, seen]
        logits[row, seen] = np.where(z > 0, z / penalty, z * penalty)
    return logits


def top_k_filter(logits, k):
    """Logits (B, V) with all but the k largest of each row set to -inf (ties at the k-th
    value are kept)."""
    k = min(int(k), logits.shape[-1])
    kth_largest = np.sort(logits, axis=-1)[:, -k][:, None]
    return np.where(logits < kth_largest, -np.inf, logits)


def top_p_filter(probs, p):
    """Probabilities (B, V) restricted to each row's nucleus: the smallest set of the most
    probable tokens whose probabilities sum to >= p, renormalised to sum to 1.

    In decreasing order of probability, a token is kept when the probability of the tokens
    before it is still below p; so the most probable token is always kept.
    """
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_probs, axis=-1) - sorted_probs      # mass of the better tokens
    keep_sorted = before < p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    kept = np.where(keep, probs, 0.0)
    return kept / np.sum(kept, axis=-1, keepdims=True)


def token_probabilities(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution (B, V) that ``sample_next_token`` draws from for these settings:
    softmax(logits / T), restricted to the top-k logits, then to the top-p nucleus and
    renormalised. ``temperature=0`` gives the one-hot of the argmax (greedy)."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.eye(logits.shape[-1])[np.argmax(logits, axis=-1)]
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    probs = _softmax(logits)
    if top_p is not None:
        probs = top_p_filter(probs, top_p)
    return probs


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One token id per row of ``logits`` (B, V) (a NumPy array): returns int64 ids (B,).

    ``temperature=0`` is greedy decoding (argmax; top_k, top_p and the generator are then not
    used). Random numbers come from ``generator`` (a NumPy ``Generator``) or else from
    ``tinyllm.random.default_generator()``, so ``tinyllm.manual_seed`` makes sampling repeatable.
    """
    if temperature < 0:
        raise ValueError("sample_next_token: temperature must be >= 0 (0 = greedy), got %r"
                         % (temperature,))
    if top_k is not None and top_k < 1:
        raise ValueError("sample_next_token: top_k must be at least 1, got %r" % (top_k,))
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError("sample_next_token: top_p must lie in (0, 1], got %r" % (top_p,))
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    probs = token_probabilities(logits, temperature, top_k, top_p)
    rng = random.default_generator() if generator is None else generator
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]
    return np.sum(cdf <= u, axis=-1).astype(np.int64)      # first index with cdf > u


# ----- steppers: the model-specific step, one model call per new token -----------------------
class ContextStepper:
    """Re-reads the whole context for each new token (a GPT, or any model whose
    ``forward(ids)`` returns the logits first), cropped to its last ``block_size`` tokens."""

    def __init__(self, model, block_size=None):
        self.model = model
        self.block_size = block_size
        self.ids = None

    def start(self, ids):
        """Read the prompts, ids (k, T); return the next-token logits (k, V)."""
        self.ids = np.asarray(ids, dtype=np.int64)
        return self._logits()

    def advance(self, next_ids):
        """Append one token per row (k,); return the next-token logits (k, V)."""
        self.ids = np.concatenate([self.ids, np.asarray(next_ids)[:, None]], axis=1)
        return self._logits()

    def reorder(self, rows):
        """Keep the rows ``rows`` (beam search's survivors, repeats allowed), in that order."""
        self.ids = self.ids[rows]

    def _logits(self):
        context = self.ids if self.block_size is None else self.ids[:, -self.block_size:]
        logits = self.model(context)[0]
        return logits.data[:, -1, :]


# A cached step with at most this many sequences runs on one thread (``limit_threads``): its
# products have that many rows, (k, C) @ (C, N), and read every weight once for k
# multiply-adds, at the speed of memory, which one core nearly saturates; a second thread
# then mostly adds the cost of waking it and waiting for it (see ``blas_threads``).
FEW_ROWS = 4


class CachedStepper:
    """Feeds a decoder only the new token, with every layer's keys and values kept in a KV
    cache (``tinyllm.nn.KVCache``): one step costs O(T) for a context of T tokens, against the
    O(T^2) of re-reading the context (``ContextStepper``), and gives the same logits.

    The model provides ``new_cache(batch_size, max_len)`` and ``model(ids, cache=cache)``,
    which reads ids (B, T_new) after the cached positions (GPT, Llama). The cache is allocated
    once, for ``block_size`` positions.

    Longer contexts, the rule: while the sequence fits in ``block_size`` tokens, each step
    adds one position to the cache. Once it is longer, the model reads the last
    ``block_size`` tokens, as ``ContextStepper`` does; the window then moves by one token
    every step, every token's position changes, and with it every cached key and value, so
    each such step re-reads the window into a fresh cache (the same logits as without the
    cache, at the cost of a full re-read).

    A step for at most ``FEW_ROWS`` sequences runs on one thread (see ``FEW_ROWS``).
    """

    def __init__(self, model, block_size):
        self.model = model
        self.block_size = block_size
        self.ids = None
        self.cache = None

    def start(self, ids):
        """Read the prompts, ids (k, T), into a new cache; return the next-token logits (k, V)."""
        self.ids = np.asarray(ids, dtype=np.int64)
        return self._read_window()

    def advance(self, next_ids):
        """Append one token per row (k,); return the next-token logits (k, V)."""
        next_ids = np.asarray(next_ids, dtype=np.int64)[:, None]
        self.ids = np.concatenate([self.ids, next_ids], axis=1)
        if self.ids.shape[1] > self.block_size:
            return self._read_window()
        if len(next_ids) > FEW_ROWS:
            return self.model(next_ids, cache=self.cache)[0].data[:, -1, :]
        with limit_threads(1):
            return self.model(next_ids, cache=self.cache)[0].data[:, -1, :]

    def reorder(self, rows):
        """Keep the rows ``rows`` (beam search's survivors, repeats allowed), in that order."""
        self.ids = self.ids[rows]
        self.cache.reorder(rows)

    def _read_window(self):
        context = self.ids[:, -self.block_size:]
        self.cache = self.model.new_cache(context.shape[0], self.block_size)
        return self.model(context, cache=self.cache)[0].data[:, -1, :]


class RecurrentStepper:
    """Carries an LSTM language model's state: reads the prompt once, then one token a step."""

    def __init__(self, model):
        self.model = model
        self.state = None

    def start(self, ids):
        logits, _, self.state = self.model(np.asarray(ids, dtype=np.int64))
        return logits.data[:, -1, :]

    def advance(self, next_ids):
        next_ids = np.asarray(next_ids, dtype=np.int64)[:, None]
        logits, _, self.state = self.model(next_ids, state=self.state)
        return logits.data[:, -1, :]

    def reorder(self, rows):
        self.state = tuple(Tensor(s.data[:, rows]) for s in self.state)  # (layers, k, H)


def stepper_for(model):
    """The stepper that drives ``model``: its own ``model.stepper()`` where it has one (GPT,
    LSTMLanguageModel), else a ``ContextStepper`` over the whole context."""
    if hasattr(model, "stepper"):
        return model.stepper()
    config = getattr(model, "config", None)
    return ContextStepper(model, getattr(config, "block_size", None))


# ----- the two decoding loops ----------------------------------------------------------------
def generate_tokens(stepper, ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                    repetition_penalty=1.0, generator=None, on_token=None):
    """Extend each row of ids (B, T) by ``max_new_tokens`` tokens, one at a time; returns the
    (B, T + max_new_tokens) int64 array.

    Each step takes the stepper's next-token logits, applies the repetition penalty and draws
    with ``sample_next_token`` (temperature 0: greedy). ``on_token(next_ids)`` is called with
    every step's new ids (B,) as soon as they are chosen (streaming). Runs under ``no_grad``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if max_new_tokens == 0:
        return ids
    with no_grad():
        logits = stepper.start(ids)
        for i in range(max_new_tokens):
            logits = apply_repetition_penalty(logits, ids, repetition_penalty)
            next_ids = sample_next_token(logits, temperature, top_k, top_p, generator)
            ids = np.concatenate([ids, next_ids[:, None]], axis=1)
            if on_token is not None:
                on_token(next_ids)
            if i + 1 < max_new_tokens:
                logits = stepper.advance(next_ids)
    return ids


def beam_search_tokens(stepper, prompt_ids, max_new_tokens, beam_size=4, eos_id=None,
                       length_penalty=1.0, repetition_penalty=1.0):
    """The continuation of one prompt (1-d ids) with the highest total log-probability found
    by keeping the ``beam_size`` best partial continuations; returns its new ids (a list).

    Every step extends each kept continuation by every token, scores an extension by
    sum_t log p(y_t | prompt, y_<t) (with the repetition penalty applied to each beam's own
    history) and keeps the ``beam_size`` best non-eos extensions. An extension that ends in
    ``eos_id`` among the top ``beam_size`` is finished; the search stops when ``beam_size``
    continuations have finished or after ``max_new_tokens`` tokens (the unfinished ones then
    compete too). A continuation of n tokens (eos counted) scores
    sum of log-probabilities / n ** length_penalty. Log-probabilities are negative, so the raw
    sum (length_penalty = 0) prefers short outputs; 1 compares the average per token; larger
    values favour longer outputs more. ``beam_size=1`` is greedy decoding. Runs under
    ``no_grad``.
    """
    prompt = list(np.asarray(prompt_ids, dtype=np.int64))
    if max_new_tokens < 1:
        return []
    beams = [(prompt, 0.0)]                # (prompt + new tokens, total log-probability)
    finished = []                          # (normalised score, prompt + new tokens)
    with no_grad():
        logits = stepper.start(np.array([prompt], dtype=np.int64))
        for step in range(max_new_tokens):
            histories = [tokens for tokens, _ in beams]
            log_probs = _log_softmax(apply_repetition_penalty(logits, histories,
                                                              repetition_penalty))
            totals = np.array([score for _, score in beams])[:, None] + log_probs
            beams, rows = beam_step(beams, totals, beam_size, eos_id, length_penalty,
                                    finished, len(prompt))
            if len(finished) >= beam_size or not beams or step + 1 == max_new_tokens:
                break
            stepper.reorder(np.array(rows))
            logits = stepper.advance(np.array([tokens[-1] for tokens, _ in beams]))
    if len(finished) < beam_size:          # out of steps: the unfinished ones compete too
        finished.extend((score / (len(tokens) - len(prompt)) ** length_penalty, tokens)
                        for tokens, score in beams)
    return max(finished, key=lambda item: item[0])[1][len(prompt):]


def beam_step(beams, totals, beam_size, eos_id, length_penalty, finished, prompt_length=0):
    """One step of beam search: (the best non-eos extensions, at most beam_size, and the beam
    each came from). ``beams`` holds (tokens, score) pairs, ``totals`` (k, V) each extension's
    total log-probability; the eos extensions among the best beam_size go to ``finished`` as
    (score / n ** length_penalty, tokens), n the tokens after the first ``prompt_length``."""
    V = totals.shape[1]
    order = np.argsort(-totals.ravel(), kind="stable")[:2 * beam_size]
    next_beams, rows = [], []
    for rank, flat in enumerate(order):
        beam, token = divmod(int(flat), V)
        tokens, score = beams[beam][0] + [token], float(totals[beam, token])
        if token == eos_id:
            if rank < beam_size:
                n = len(tokens) - prompt_length
                finished.append((score / n ** length_penalty, tokens))
            continue
        next_beams.append((tokens, score))
        rows.append(beam)
        if len(next_beams) == beam_size:
            break
    return next_beams, rows


# ----- one prompt of any language model --------------------------------------------------
def _prompt_array(prompt_ids):
    ids = np.asarray(prompt_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("the prompt must be a non-empty 1-d sequence of token ids, got shape %s"
                         % (ids.shape,))
    return ids


def generate(model, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             repetition_penalty=1.0, seed=None, generator=None, on_token=None):
    """Continue one prompt by ``max_new_tokens`` tokens; returns the new ids (a list).

    temperature 0 is greedy decoding. Random draws come from ``generator``, else from a new
    ``np.random.default_rng(seed)`` (``seed=None``: unpredictable). ``on_token(id)`` is
    called with every new token as soon as it is chosen (streaming). The model runs in eval
    mode under ``no_grad``.
    """
    ids = _prompt_array(prompt_ids)
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError("max_new_tokens must be a non-negative int, got %r" % (max_new_tokens,))
    if generator is None:
        generator = np.random.default_rng(seed)
    stream = None if on_token is None else (lambda next_ids: on_token(int(next_ids[0])))
    with evaluating(model):
        out = generate_tokens(stepper_for(model), ids[None, :], max_new_tokens, temperature,
                              top_k, top_p, repetition_penalty, generator, stream)
    return out[0, len(ids):].tolist()


def greedy(model, prompt_ids, max_new_tokens, repetition_penalty=1.0, on_token=None):
    """Greedy decoding: ``generate`` with temperature 0 (the argmax every step)."""
    return generate(model, prompt_ids, max_new_tokens, temperature=0.0,
                    repetition_penalty=repetition_penalty, on_token=on_token)


def beam_search(model, prompt_ids, max_new_tokens, beam_size=4, eos_id=None,
                length_penalty=1.0, repetition_penalty=1.0):
    """``beam_search_tokens`` for one prompt of a language model, run in eval mode: the new
    ids (a list) of the best continuation found."""
    ids = _prompt_array(prompt_ids)
    if not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
        raise ValueError("beam_size must be a positive int, got %r" % (beam_size,))
    with evaluating(model):
        return beam_search_tokens(stepper_for(model), ids, max_new_tokens, beam_size, eos_id,
                                  length_penalty, repetition_penalty)


# ----- streaming text -----------------------------------------------------------------------
class TextStream:
    """Text of token ids as they arrive, for printing while generating.

    A byte-level BPE token may hold part of a character's UTF-8 bytes; the stream keeps such
    bytes until the character is complete, so what it returns always joins up to the same
    text as ``tokenizer.decode`` of all the ids.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._bytes = hasattr(tokenizer, "decode_bytes")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id):
        """The new text that ``token_id`` completes (possibly "")."""
        if self._bytes:
            return self._decoder.decode(self.tokenizer.decode_bytes([token_id]))
        return self.tokenizer.decode([token_id])

    def flush(self):
        """Whatever incomplete bytes remain, as U+FFFD."""
        return self._decoder.decode(b"", final=True) if self._bytes else ""
