"""Using a trained model: a prompt in, text out; a text in, a probability out.

``complete`` serves every model type a checkpoint can hold, so ``tinyllm generate`` and the
server's ``POST /generate`` behave the same:

- "gpt", "lstm": continue the prompt (sampling, greedy or beam search; ``sampling.py``);
- "seq2seq": the prompt is the source sequence; the output is its greedy or beam decode;
- "mlm": every ``<mask>`` in the prompt is replaced by the model's most likely token.

``predict`` serves classifiers ("lstm_classifier"): the probability of the positive class.

Prompts the model cannot read raise ``PromptError`` (a ValueError) with a message for the user:
an empty prompt, characters a character-level tokenizer never saw (each named, with its code
point), a source longer than a seq2seq model reads. A GPT prompt longer than the model's
context is not an error: the model reads its last ``block_size`` tokens, as it does while
generating, and ``complete`` reports that through its ``notice`` function.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinyllm.data import BPETokenizer, CharTokenizer
from tinyllm.models import GPT, sampling
from tinyllm.models.pretrained import from_pretrained, is_pretrained_folder
from tinyllm.nn.module import evaluating
from tinyllm.training.checkpoint import Checkpoint, load_model
from tinyllm.training.model_types import LANGUAGE_MODELS

MASK_TOKEN = "<mask>"
# The range of temperature and repetition_penalty: the logits are divided (or multiplied) by
# them, and outside it that overflows to inf and the probabilities become NaN.
MIN_SCALE, MAX_SCALE = 1e-4, 1e4


class PromptError(ValueError):
    """A prompt or text that the model cannot read."""


class GenerationStopped(Exception):
    """Generation stopped before its end (the client went away, a time limit); the message
    says why."""


class StoppableStepper:
    """A stepper (``sampling``) that asks ``stop()`` before every model call and raises
    ``GenerationStopped(reason)`` when it returns a reason (a string) instead of None."""

    def __init__(self, stepper, stop):
        self.stepper, self.stop = stepper, stop

    def _check(self):
        reason = self.stop()
        if reason is not None:
            raise GenerationStopped(reason)

    def start(self, ids):
        self._check()
        return self.stepper.start(ids)

    def advance(self, next_ids):
        self._check()
        return self.stepper.advance(next_ids)

    def reorder(self, rows):
        self.stepper.reorder(rows)


def load_for_inference(path, max_bytes=None):
    """(model in eval mode, checkpoint) from a tinyllm checkpoint (file or folder) or from a
    Hugging Face model folder (config.json + safetensors weights, see
    ``tinyllm.models.pretrained``). For the latter the checkpoint is built on the spot: model
    type "gpt" or "llama", the model's config, and the folder's tokenizer or None."""
    if not is_pretrained_folder(path):
        return load_model(path, max_bytes=max_bytes)
    model = from_pretrained(path)
    checkpoint = Checkpoint(path=str(path), model_type="gpt" if isinstance(model, GPT)
                            else "llama", model_args=asdict(model.config), model_state={},
                            tokenizer=load_folder_tokenizer(path))
    return model, checkpoint


def load_folder_tokenizer(folder):
    """The tokenizer of a Hugging Face folder: ``tokenizer.json``, or GPT-2's ``vocab.json`` +
    ``merges.txt``, read as a ``BPETokenizer``; None when the folder holds neither."""
    folder = Path(folder)
    tokenizer_json = folder / "tokenizer.json"
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if tokenizer_json.is_file():
        return BPETokenizer.from_tokenizer_json(tokenizer_json)
    if vocab.is_file() and merges.is_file():
        return BPETokenizer.from_files(vocab, merges)
    return None


@dataclass
class GenerationOptions:
    """How to decode: see ``tinyllm.models.sampling``. ``beam`` (a beam size) selects beam
    search; ``temperature=0`` is greedy decoding (the default 0.8 is nanoGPT's sample.py's);
    ``seed`` makes sampling repeatable."""
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = None
    top_p: float = None
    beam: int = None
    repetition_penalty: float = 1.0
    seed: int = None

    def validate(self):
        """Raise ValueError naming the first option out of its range."""
        checks = [
            ("max_new_tokens", self.max_new_tokens, _is_int(self.max_new_tokens)
             and self.max_new_tokens >= 0, "an integer >= 0"),
            ("temperature", self.temperature, _is_number(self.temperature)
             and (self.temperature == 0 or MIN_SCALE <= self.temperature <= MAX_SCALE),
             "a number >= 0 (0 is greedy decoding), and if positive within [%g, %g] "
             "(beyond it the scaled logits overflow)" % (MIN_SCALE, MAX_SCALE)),
            ("top_k", self.top_k, self.top_k is None or (_is_int(self.top_k) and self.top_k >= 1),
             "an integer >= 1"),
            ("top_p", self.top_p, self.top_p is None or (_is_number(self.top_p)
                                                         and 0 < self.top_p <= 1), "in (0, 1]"),
            ("beam", self.beam, self.beam is None or (_is_int(self.beam) and self.beam >= 1),
             "an integer >= 1"),
            ("repetition_penalty", self.repetition_penalty,
             _is_number(self.repetition_penalty)
             and MIN_SCALE <= self.repetition_penalty <= MAX_SCALE,
             "a number in [%g, %g] (1 means no penalty)" % (MIN_SCALE, MAX_SCALE)),
            ("seed", self.seed, self.seed is None or (_is_int(self.seed) and self.seed >= 0),
             "an integer >= 0"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError("%s must be %s, got %r" % (name, expected, value))
        return self


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, bool) and np.isfinite(value)


def encode_prompt(tokenizer, text, allowed_special=()):
    """The ids of ``text``; PromptError for an empty text or, with a character tokenizer,
    for characters outside its vocabulary (all of them named)."""
    if not isinstance(text, str):
        raise PromptError("the prompt must be text, got %s" % type(text).__name__)
    if text == "":
        raise PromptError("the prompt is empty; give the model at least one character to "
                          "continue")
    if isinstance(tokenizer, CharTokenizer):
        known = set(tokenizer.chars)
        plain = text
        for special in allowed_special:
            plain = plain.replace(special, "")
        unknown = sorted(set(plain) - known)
        if unknown:
            shown = ", ".join("%r (U+%04X)" % (c, ord(c)) for c in unknown[:10])
            more = " and %d more" % (len(unknown) - 10) if len(unknown) > 10 else ""
            raise PromptError("the prompt has %d character(s) that the model's tokenizer never "
                              "saw: %s%s; its vocabulary holds the %d characters of its "
                              "training text" % (len(unknown), shown, more, len(known)))
    return tokenizer.encode(text, allowed_special=set(allowed_special))


def complete(model, model_type, tokenizer, prompt, options=None, on_text=None, notice=None,
             stop=None):
    """The model's output for ``prompt`` (see the module docstring), as a string.

    For language models the string is the continuation only (the prompt not repeated).
    on_text(piece) receives the output as it is produced (token by token when sampling; at
    once for beam search and the other model types). notice(message) receives remarks such
    as the cropping of a long prompt. stop(), for gpt and lstm models, is asked before every
    model call: a reason (a string) instead of None ends generation with
    ``GenerationStopped(reason)`` (the server's cancellation when a client goes away).
    """
    options = (options or GenerationOptions()).validate()
    notice = notice or (lambda message: None)
    if model_type in LANGUAGE_MODELS:
        text = _continue(model, model_type, tokenizer, prompt, options, on_text, notice, stop)
        return text
    if model_type == "seq2seq":
        text = _translate(model, tokenizer, prompt, options)
    elif model_type == "mlm":
        text = _fill_masks(model, tokenizer, prompt)
    else:
        raise PromptError("a %r model does not generate text; use predict (POST /predict) for "
                          "classifiers" % model_type)
    if on_text is not None:
        on_text(text)
    return text


def complete_ids(model, checkpoint, prompt_ids, options):
    """The prompt ids followed by the language model's continuation (a list of ints), for a
    prompt given as ids ("464,2068" or "464 2068"), as when a folder has no tokenizer."""
    if checkpoint.model_type not in LANGUAGE_MODELS:
        raise PromptError("--prompt-ids continues token ids with a language model (%s); "
                          "checkpoint %s holds a %r model" % (", ".join(LANGUAGE_MODELS),
                                                              checkpoint.path,
                                                              checkpoint.model_type))
    try:
        ids = [int(i) for i in prompt_ids.replace(",", " ").split()]
    except ValueError:
        raise PromptError("prompt ids must be integers separated by commas or spaces, got %r"
                          % (prompt_ids,)) from None
    vocab_size = model.config.vocab_size
    if not ids or min(ids) < 0 or max(ids) >= vocab_size:
        raise PromptError("prompt ids must be one or more integers in [0, %d) (the model's "
                          "vocabulary), got %r" % (vocab_size, prompt_ids))
    if options.beam is not None:
        new = sampling.beam_search(model, ids, options.max_new_tokens, beam_size=options.beam,
                                   repetition_penalty=options.repetition_penalty)
    else:
        new = sampling.generate(model, ids, options.max_new_tokens, options.temperature,
                                options.top_k, options.top_p, options.repetition_penalty,
                                seed=options.seed)
    return ids + [int(i) for i in new]


def _continue(model, model_type, tokenizer, prompt, options, on_text, notice, stop=None):
    ids = encode_prompt(tokenizer, prompt)
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    if model_type in ("gpt", "llama") and len(ids) > block_size:
        notice(long_prompt_notice(len(ids), block_size))
    stepper = sampling.stepper_for(model)
    if stop is not None:
        stepper = StoppableStepper(stepper, stop)
    if options.beam is not None:
        with evaluating(model):
            new = sampling.beam_search_tokens(stepper, ids, options.max_new_tokens,
                                              beam_size=options.beam,
                                              repetition_penalty=options.repetition_penalty)
        text = tokenizer.decode(new)
        if on_text is not None:
            on_text(text)
        return text
    stream = sampling.TextStream(tokenizer)

    def on_token(next_ids):
        piece = stream.feed(int(next_ids[0]))
        if on_text is not None and piece:
            on_text(piece)

    with evaluating(model):
        out = sampling.generate_tokens(stepper, np.array([ids], dtype=np.int64),
                                       options.max_new_tokens, options.temperature,
                                       options.top_k, options.top_p, options.repetition_penalty,
                                       np.random.default_rng(options.seed), on_token)
    tail = stream.flush()
    if on_text is not None and tail:
        on_text(tail)
    return tokenizer.decode(out[0, len(ids):].tolist())


def long_prompt_notice(length, block_size):
    """What a GPT prompt longer than its context gets told."""
    return ("the prompt is %d tokens long, longer than the model's context of %d: the model "
            "reads only its last %d tokens" % (length, block_size, block_size))


def _translate(model, tokenizer, prompt, options):
    """The decode of the source ``prompt``: its tokens after <bos>, up to <eos>."""
    ids = encode_prompt(tokenizer, prompt)
    if len(ids) > model.max_len:
        raise PromptError("the source is %d tokens long, but this seq2seq model reads at most "
                          "%d" % (len(ids), model.max_len))
    src = np.array([ids], dtype=np.int64)
    with evaluating(model):
        if options.beam is not None:
            row = model.beam_search(src, beam_size=options.beam).data[0]
        else:
            row = model.greedy_decode(src).data[0]
    out = []
    for i in row[1:]:
        if i == model.eos_id:
            break
        if i not in (model.pad_id, model.bos_id):
            out.append(int(i))
    return tokenizer.decode(out)


def _fill_masks(model, tokenizer, prompt):
    """The prompt with each <mask> replaced by the model's most likely token."""
    if MASK_TOKEN not in prompt:
        raise PromptError("a masked language model fills in %s tokens: write the prompt with "
                          "one or more of them, e.g. 'def f(x): ret%s x'" % (MASK_TOKEN,
                                                                             MASK_TOKEN))
    ids = encode_prompt(tokenizer, prompt, allowed_special=(MASK_TOKEN,))
    if len(ids) > model.max_len:
        raise PromptError("the prompt is %d tokens long, but this model reads at most %d"
                          % (len(ids), model.max_len))
    ids = np.array([ids], dtype=np.int64)
    with evaluating(model):
        logits, _ = model(ids)
    masked = ids[0] == tokenizer.special_tokens[MASK_TOKEN]
    filled = ids[0].copy()
    filled[masked] = logits.data[0].argmax(-1)[masked]
    return tokenizer.decode(filled)


def predict(model, tokenizer, text):
    """A classifier's output for ``text``: {"probability": p} for a binary classifier
    (p = sigmoid(logit), the probability of class 1), {"probabilities": [...]} otherwise."""
    ids = np.array([encode_prompt(tokenizer, text)], dtype=np.int64)
    with evaluating(model):
        probs = model.predict_proba(ids, mask=np.ones(ids.shape, dtype=bool)).data
    if model.num_classes == 1:
        return {"probability": float(probs[0])}
    return {"probabilities": [float(p) for p in probs[0]]}
