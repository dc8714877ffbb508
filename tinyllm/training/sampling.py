"""Decoding: turning a language model's next-token logits into text.

A language model gives, after reading tokens x_1..x_t, one logit z_v per vocabulary entry v;
p(x_{t+1} = v) = softmax(z)_v. Decoding picks a token, appends it and repeats:

- greedy: the argmax every step (deterministic; tends to loop on a small model);
- temperature T: sample from softmax(z / T); T -> 0 approaches greedy, T = 1 the model's own
  distribution, T > 1 flattens it;
- top-k: sample only among the k largest logits;
- top-p (nucleus): sample only among the smallest set of most probable tokens whose total
  probability reaches p;
- repetition penalty r (CTRL, Keskar et al. 2019, as Hugging Face applies it): before all of
  the above, every token already in the sequence (prompt included) has its logit z divided by
  r when z > 0 and multiplied by r when z < 0, which lowers its probability either way for
  r > 1;
- beam search: keep the ``beam_size`` most probable partial continuations (by total
  log-probability) instead of one; it finds sequences that greedy decoding misses when the
  best first token does not start the best sequence.

Temperature, top-k and top-p are those of ``tinyllm.models.sampling.sample_next_token``;
``token_probabilities`` returns the distribution it samples from. A ``seed`` (or a NumPy
``Generator``) makes a sample repeatable: the same seed gives the same text.

Models are driven through a *stepper* (``stepper_for``): a GPT re-reads its context, cropped to
its last ``block_size`` tokens, for every new token; an LSTM carries its state and reads only
the newest token.
"""

import codecs

import numpy as np

from tinyllm.autograd import Tensor
from tinyllm.models import LSTMLanguageModel
from tinyllm.models.sampling import sample_next_token, top_k_filter, top_p_filter
from tinyllm.training.evaluation import evaluating


# ----- the next-token distribution ----------------------------------------------------------
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


def _softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


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


def _log_softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


# ----- steppers: one model call per new token -----------------------------------------------
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
    """The stepper that drives ``model`` (see the module docstring)."""
    if isinstance(model, LSTMLanguageModel):
        return RecurrentStepper(model)
    config = getattr(model, "config", None)
    return ContextStepper(model, getattr(config, "block_size", None))


def _prompt_array(prompt_ids):
    ids = np.asarray(prompt_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("the prompt must be a non-empty 1-d sequence of token ids, got shape %s"
                         % (ids.shape,))
    return ids


# ----- sampling and greedy decoding ---------------------------------------------------------
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
    stepper = stepper_for(model)
    history = list(ids)
    new_ids = []
    with evaluating(model):
        logits = stepper.start(ids[None, :])
        for i in range(max_new_tokens):
            logits = apply_repetition_penalty(logits, [history], repetition_penalty)
            next_id = int(sample_next_token(logits, temperature, top_k, top_p, generator)[0])
            new_ids.append(next_id)
            history.append(next_id)
            if on_token is not None:
                on_token(next_id)
            if i + 1 < max_new_tokens:
                logits = stepper.advance(np.array([next_id]))
    return new_ids


def greedy(model, prompt_ids, max_new_tokens, repetition_penalty=1.0, on_token=None):
    """Greedy decoding: ``generate`` with temperature 0 (the argmax every step)."""
    return generate(model, prompt_ids, max_new_tokens, temperature=0.0,
                    repetition_penalty=repetition_penalty, on_token=on_token)


# ----- beam search --------------------------------------------------------------------------
def beam_search(model, prompt_ids, max_new_tokens, beam_size=4, eos_id=None,
                length_penalty=1.0, repetition_penalty=1.0):
    """The continuation of one prompt with the highest total log-probability found by keeping
    the ``beam_size`` best partial continuations; returns its new ids (a list).

    Every step extends each kept continuation by every token, scores an extension by
    sum_t log p(y_t | prompt, y_<t) (with the repetition penalty applied to each beam's own
    history) and keeps the ``beam_size`` best. An extension that ends in ``eos_id`` is
    finished; the search stops when ``beam_size`` continuations have finished or after
    ``max_new_tokens`` tokens. Finished continuations of n tokens are ranked by
    score / n ** length_penalty (they may differ in length); without an eos all have
    ``max_new_tokens`` tokens and the raw scores decide. ``beam_size=1`` is greedy decoding.
    """
    ids = _prompt_array(prompt_ids)
    if not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
        raise ValueError("beam_size must be a positive int, got %r" % (beam_size,))
    if max_new_tokens < 1:
        return []
    stepper = stepper_for(model)
    beams = [([], 0.0)]                    # (new tokens, total log-probability)
    finished = []                          # (normalised score, new tokens)
    with evaluating(model):
        logits = stepper.start(ids[None, :])
        for _ in range(max_new_tokens):
            histories = [list(ids) + tokens for tokens, _ in beams]
            log_probs = _log_softmax(apply_repetition_penalty(logits, histories,
                                                              repetition_penalty))
            totals = np.array([score for _, score in beams])[:, None] + log_probs
            beams, rows = _next_beams(beams, totals, beam_size, eos_id, length_penalty,
                                      finished)
            if len(finished) >= beam_size or not beams:
                break
            stepper.reorder(np.array(rows))
            logits = stepper.advance(np.array([tokens[-1] for tokens, _ in beams]))
    if len(finished) < beam_size:          # out of steps: the unfinished ones compete too
        finished.extend((score / len(tokens) ** length_penalty, tokens)
                        for tokens, score in beams)
    return max(finished, key=lambda item: item[0])[1]


def _next_beams(beams, totals, beam_size, eos_id, length_penalty, finished):
    """(the best non-eos extensions, at most beam_size, and the beam each came from); the eos
    extensions among the best beam_size go to ``finished``."""
    V = totals.shape[1]
    order = np.argsort(-totals.ravel(), kind="stable")[:2 * beam_size]
    next_beams, rows = [], []
    for rank, flat in enumerate(order):
        beam, token = divmod(int(flat), V)
        tokens, score = beams[beam][0] + [token], float(totals[beam, token])
        if token == eos_id:
            if rank < beam_size:
                finished.append((score / len(tokens) ** length_penalty, tokens))
            continue
        next_beams.append((tokens, score))
        rows.append(beam)
        if len(next_beams) == beam_size:
            break
    return next_beams, rows


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
