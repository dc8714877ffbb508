"""Post-training a GPT: supervised fine-tuning (SFT) on a chat template, then direct
preference optimisation (DPO). Chapter 18 derives every formula used here.

The chat template
-----------------
A conversation turn is written as plain text::

    <|user|>
    What does "assert" do?
    <|assistant|>
    Assert statements are a convenient way to insert debugging assertions into a program:<|end|>

``chat_prompt(question)`` is everything up to and including the newline after
``<|assistant|>``; the answer follows and ends with ``<|end|>``, where generation stops. The
markers are spelled in ordinary characters, so the character tokenizer of a GPT pre-trained on
the pydoc corpus encodes them without new token ids (chat models add them to the vocabulary as
special tokens; the idea is the same).

SFT: maximum likelihood on the answer only
------------------------------------------
A prompt of m tokens followed by an answer gives the sequence x_1..x_n. The model reads
x_1..x_{n-1} and position t predicts x_{t+1}; only answer tokens are targets:

    targets[t] = x_{t+1}   if t + 1 > m (an answer token or <|end|>)
                 -100      otherwise (``IGNORE_INDEX``: F.cross_entropy skips it)
    L_SFT = -(1 / #answer tokens) sum_{answer t} log p(x_{t+1} | x_<=t)

Batches pad each row at the end with ``PAD_ID`` inputs and -100 targets (the causal mask keeps
the padding out of the earlier positions).

DPO (Rafailov et al., 2023)
---------------------------
For a prompt x, a chosen answer y_w and a rejected one y_l, with the policy pi (trained) and a
frozen reference model (the SFT model):

    log pi(y | x) = sum over the answer tokens of log pi(token | what precedes it)
    z    = beta * ((log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)))
    L    = -log sigmoid(z)                 (the mean over the pairs)
    dL/dz = sigmoid(z) - 1 = -sigmoid(-z)

The implicit reward of an answer is r(y) = beta * (log pi(y|x) - log ref(y|x)); preference
accuracy is the fraction of pairs with r(y_w) > r(y_l), that is z > 0.

The demo data (offline)
-----------------------
``pydoc_qa_examples``: one question per pydoc topic, `What does "assert" do?`, answered by the
first sentence of the topic's text. ``split_examples`` holds out a fixed fraction;
``preference_pairs`` pairs each question's right answer (chosen) with another topic's
(rejected).

    tinyllm train --task sft [--init-from out/gpt/ckpt.npz]     writes out/sft/ckpt.npz
    tinyllm train --task dpo [--init-from out/sft/ckpt.npz]     writes out/dpo/ckpt.npz
"""

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from tinyllm import functional as F
from tinyllm.autograd import Tensor, no_grad
from tinyllm.models import sampling
from tinyllm.nn.module import evaluating
from tinyllm.nn.utils import clip_grad_norm_
from tinyllm.optim.lr_scheduler import WarmupCosineLR
from tinyllm.training.checkpoint import CHECKPOINT_NAME, load_model, save_checkpoint
from tinyllm.training.config import TrainConfig
from tinyllm.training.trainer import backend_context, train

USER = "<|user|>\n"
ASSISTANT = "\n<|assistant|>\n"
END = "<|end|>"
IGNORE_INDEX = -100             # F.cross_entropy's default ignore_index, as in PyTorch
PAD_ID = 0                      # the input id of padding (never a target, so any id will do)
MIN_ANSWER_CHARS = 20           # a context that leaves less room for an answer is an error


# ----- the chat template --------------------------------------------------------------------
def chat_prompt(question):
    """The text the model reads before it answers: "<|user|>\\n{question}\\n<|assistant|>\\n"."""
    return USER + question + ASSISTANT


def chat_text(question, answer):
    """A whole turn: ``chat_prompt(question) + answer + "<|end|>"``."""
    return chat_prompt(question) + answer + END


# ----- the demo data: questions on Python's pydoc topics ------------------------------------
@dataclass(frozen=True)
class QAExample:
    """One question about a pydoc topic and its answer, the first sentence of the topic."""
    topic: str
    question: str
    answer: str


@dataclass(frozen=True)
class PreferencePair:
    """A question with a chosen (right) and a rejected (another topic's) answer."""
    question: str
    chosen: str
    rejected: str


def first_sentence(entry):
    """The first sentence of a pydoc topic's text, on one line.

    The text starts with a title underlined by "*"; the first paragraph after it that is prose
    (not a title underlined by "=", "New in version ..." or an indented block) is taken, its
    whitespace joined, and cut after the first ". " (a sentence may also end in ":" before a
    code block).
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", entry) if p.strip()]
    for paragraph in paragraphs[1:]:
        if (paragraph.startswith(" ") or re.match(r"(New|Changed|Deprecated) in", paragraph)
                or re.search(r"^[=*-]+$", paragraph, re.MULTILINE)):      # a section title
            continue
        text = " ".join(paragraph.split())
        end = text.find(". ")
        return text if end < 0 else text[:end + 1]
    return " ".join(paragraphs[0].split()) if paragraphs else ""


def cut_at_word(text, max_chars):
    """``text`` if it has at most ``max_chars`` characters, else its longest prefix of whole
    words that fits."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars + 1].rsplit(" ", 1)[0]
    return cut if 0 < len(cut) <= max_chars else text[:max_chars]


def pydoc_qa_examples(max_answer_chars=None):
    """One ``QAExample`` per pydoc topic, in sorted topic order: 'What does "X" do?' and the
    first sentence of X's entry (cut at a word to ``max_answer_chars`` if given)."""
    from pydoc_data.topics import topics
    examples = []
    for topic in sorted(topics):
        answer = first_sentence(topics[topic])
        if max_answer_chars is not None:
            answer = cut_at_word(answer, max_answer_chars)
        if answer:
            examples.append(QAExample(topic, 'What does "%s" do?' % topic, answer))
    return examples


def split_examples(examples, held_out_fraction=0.2, seed=0):
    """(train, held_out): a fixed shuffle by ``seed``, the last ``held_out_fraction`` (at least
    one example) held out; each part keeps the original order."""
    if not 0 < held_out_fraction < 1:
        raise ValueError("split_examples: held_out_fraction must lie in (0, 1), got %r"
                         % (held_out_fraction,))
    if len(examples) < 2:
        raise ValueError("split_examples: need at least 2 examples, got %d" % len(examples))
    order = np.random.default_rng(seed).permutation(len(examples))
    n_held_out = max(1, int(round(held_out_fraction * len(examples))))
    held_out = set(order[len(examples) - n_held_out:].tolist())
    return ([e for i, e in enumerate(examples) if i not in held_out],
            [e for i, e in enumerate(examples) if i in held_out])


def preference_pairs(examples, seed=0):
    """A ``PreferencePair`` per example: chosen = its answer, rejected = the answer of another
    example of the same list, drawn with a generator seeded by ``seed`` (never the same text)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i, example in enumerate(examples):
        others = [j for j, e in enumerate(examples) if j != i and e.answer != example.answer]
        if not others:
            raise ValueError("preference_pairs: example %r has no other answer to reject"
                             % example.topic)
        rejected = examples[others[int(rng.integers(len(others)))]].answer
        pairs.append(PreferencePair(example.question, example.answer, rejected))
    return pairs


# ----- SFT: inputs and targets masked to the answer -----------------------------------------
def sft_example(tokenizer, question, answer):
    """(input_ids, targets), two int64 arrays of length n - 1 for the n tokens of
    ``chat_text(question, answer)``: input_ids = x_1..x_{n-1}, targets[t] = x_{t+1} where that
    token belongs to the answer (or <|end|>), ``IGNORE_INDEX`` where it belongs to the prompt."""
    prompt = tokenizer.encode(chat_prompt(question))
    ids = np.array(prompt + tokenizer.encode(answer + END), dtype=np.int64)
    targets = ids[1:].copy()
    targets[:len(prompt) - 1] = IGNORE_INDEX
    return ids[:-1], targets


def pad_batch(rows):
    """(input_ids (B, T), targets (B, T)) of a list of (input_ids, targets), T the longest
    row: each row padded at its end with ``PAD_ID`` inputs and ``IGNORE_INDEX`` targets."""
    T = max(len(ids) for ids, _ in rows)
    inputs = np.full((len(rows), T), PAD_ID, dtype=np.int64)
    targets = np.full((len(rows), T), IGNORE_INDEX, dtype=np.int64)
    for b, (ids, target) in enumerate(rows):
        inputs[b, :len(ids)] = ids
        targets[b, :len(target)] = target
    return inputs, targets


def sft_batch(tokenizer, examples):
    """``pad_batch`` of the ``sft_example`` of each QAExample."""
    return pad_batch([sft_example(tokenizer, e.question, e.answer) for e in examples])


def token_log_probs(model, input_ids, targets):
    """log p(targets[b, t] | input_ids[b, :t+1]), a (B, T) tensor; 0 where the target is
    ``IGNORE_INDEX``. ``model`` is a GPT: (B, T) ids -> (B, T, V) logits."""
    return log_probs_of_targets(answer_logits(model, input_ids, targets), targets)


def answer_logits(model, input_ids, targets):
    """The (B, T, V) logits of a GPT at every position of ``input_ids`` (B, T)."""
    input_ids, targets = np.asarray(input_ids), np.asarray(targets)
    if input_ids.shape != targets.shape or input_ids.ndim != 2:
        raise ValueError("token_log_probs: input_ids %s and targets %s must be two (B, T) "
                         "arrays of the same shape" % (input_ids.shape, targets.shape))
    # GPT.forward returns the logits of every position only when it is given targets (its
    # ignore index is -1); its own loss is not used here.
    logits, _ = model(input_ids, np.where(targets == IGNORE_INDEX, -1, targets))
    return logits


def log_probs_of_targets(logits, targets):
    """log softmax(logits[b, t])[targets[b, t]], a (B, T) tensor, 0 where the target is
    ``IGNORE_INDEX`` (-cross_entropy with reduction "none")."""
    B, T = np.shape(targets)
    nll = F.cross_entropy(logits.reshape(B * T, -1), np.asarray(targets).reshape(-1),
                          ignore_index=IGNORE_INDEX, reduction="none")
    return -nll.reshape(B, T)


def sequence_log_probs(model, input_ids, targets):
    """log p(answer | prompt) per row: the sum of ``token_log_probs`` over the answer
    tokens, a (B,) tensor."""
    return token_log_probs(model, input_ids, targets).sum(axis=1)


def sft_loss(model, input_ids, targets):
    """L_SFT: the mean of -log p over the answer tokens of the batch (0-d tensor)."""
    n = int((np.asarray(targets) != IGNORE_INDEX).sum())
    if n == 0:
        raise ValueError("sft_loss: the batch has no answer tokens (every target is %d)"
                         % IGNORE_INDEX)
    return -token_log_probs(model, input_ids, targets).sum() / n


# ----- DPO ----------------------------------------------------------------------------------
def dpo_loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
             reference_rejected_logps, beta=0.1, reduction="mean"):
    """The DPO loss of pairs (Rafailov et al., 2023); all four inputs are (N,) sequence
    log-probabilities (sums over the answer tokens):

        z_i = beta * ((pi_w_i - ref_w_i) - (pi_l_i - ref_l_i))
        l_i = -log sigmoid(z_i) = log(1 + exp(-z_i))
        dl_i/dpi_w_i = -beta sigmoid(-z_i),   dl_i/dpi_l_i = +beta sigmoid(-z_i)

    The reference log-probabilities are constants (a frozen model): pass arrays or tensors
    without gradient. reduction: "mean" (default), "sum" or "none" (the (N,) l_i).
    -log sigmoid(z) is binary cross-entropy with logit z and target 1, which
    ``F.binary_cross_entropy_with_logits`` computes without overflow for any z.
    """
    if not beta > 0:
        raise ValueError("dpo_loss: beta must be positive, got %r" % (beta,))
    shapes = [tuple(np.shape(x.data if isinstance(x, Tensor) else x))
              for x in (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                        reference_rejected_logps)]
    if len(set(shapes)) != 1 or len(shapes[0]) != 1:
        raise ValueError("dpo_loss: the four log-probabilities must be (N,) vectors of the same "
                         "shape (one number per pair), got policy chosen %s, policy rejected "
                         "%s, reference chosen %s, reference rejected %s" % tuple(shapes))
    z = dpo_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                   reference_rejected_logps, beta)
    return F.binary_cross_entropy_with_logits(z, np.ones(z.shape, dtype=z.dtype),
                                              reduction=reduction)


def dpo_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
               reference_rejected_logps, beta=0.1):
    """z = r(y_w) - r(y_l) = beta * ((pi_w - ref_w) - (pi_l - ref_l)), an (N,) tensor."""
    policy_chosen_logps = _tensor(policy_chosen_logps)
    dtype = policy_chosen_logps.dtype
    reference = Tensor(_array(reference_chosen_logps) - _array(reference_rejected_logps),
                       dtype=dtype)
    return beta * ((policy_chosen_logps - policy_rejected_logps) - reference)


def implicit_rewards(policy_logps, reference_logps, beta=0.1):
    """r(y) = beta * (log pi(y|x) - log ref(y|x)), as a NumPy array (a measurement)."""
    return beta * (_array(policy_logps) - _array(reference_logps))


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float64))


def _array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)


def dpo_batch(tokenizer, pairs):
    """(input_ids (2N, T), targets (2N, T)) of N pairs: the N chosen rows, then the N
    rejected rows, padded together so that one forward pass scores both."""
    rows = [sft_example(tokenizer, p.question, p.chosen) for p in pairs]
    rows += [sft_example(tokenizer, p.question, p.rejected) for p in pairs]
    return pad_batch(rows)


def pair_log_probs(model, tokenizer, pairs):
    """(log pi(y_w|x), log pi(y_l|x)), two (N,) tensors, from one forward pass."""
    logps = sequence_log_probs(model, *dpo_batch(tokenizer, pairs))
    N = len(pairs)
    return logps[:N], logps[N:]


# ----- measuring answers --------------------------------------------------------------------
def greedy_answer(model, tokenizer, question, max_new_tokens):
    """The model's greedy answer to ``question``: the text it writes after the prompt, up to
    <|end|> (or ``max_new_tokens`` tokens)."""
    new = sampling.greedy(model, tokenizer.encode(chat_prompt(question)), max_new_tokens)
    return tokenizer.decode(new).split(END)[0]


def sentence_of(text):
    """The first sentence of an answer: up to the first ". " (kept: the ".")."""
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def answer_metrics(model, tokenizer, examples, batch_size=16, generate=True):
    """How well ``model`` answers ``examples`` (eval mode, no gradients):

    exact_match       fraction whose greedy answer's first sentence equals the right one
    token_accuracy    fraction of answer tokens that are the argmax given the right prefix
    answer_logprob    mean log p per answer token of the right answer (nats; 0 is perfect)
    """
    correct_tokens = n_tokens = 0
    total_logprob = 0.0
    with evaluating(model), no_grad():
        for i in range(0, len(examples), batch_size):
            inputs, targets = sft_batch(tokenizer, examples[i:i + batch_size])
            logits = answer_logits(model, inputs, targets)
            answer = targets != IGNORE_INDEX
            correct_tokens += int((logits.data.argmax(-1)[answer] == targets[answer]).sum())
            n_tokens += int(answer.sum())
            total_logprob += float(log_probs_of_targets(logits, targets).data.sum())
        metrics = {"exact_match": math.nan}
        if generate:
            hits = 0
            for e in examples:
                limit = len(tokenizer.encode(e.answer + END)) + 8
                hits += sentence_of(greedy_answer(model, tokenizer, e.question, limit)) == \
                    sentence_of(e.answer)
            metrics["exact_match"] = hits / len(examples)
    metrics.update(token_accuracy=correct_tokens / n_tokens,
                   answer_logprob=total_logprob / n_tokens, examples=len(examples))
    return metrics


def preference_metrics(model, tokenizer, pairs, reference_logps, beta, batch_size=16):
    """DPO's measures on ``pairs`` (eval mode, no gradients); reference_logps: (chosen,
    rejected) arrays of the frozen reference model's log-probabilities.

    dpo_loss              mean -log sigmoid(z)  (log 2 = 0.6931 when pi = ref)
    preference_accuracy   fraction with r(y_w) > r(y_l), i.e. z > 0  (0 when pi = ref)
    reward_margin         mean r(y_w) - r(y_l)
    chosen_more_likely    fraction with log pi(y_w|x) > log pi(y_l|x) (sums over tokens: the
                          shorter answer has an advantage that the reward's ratio cancels)
    """
    chosen, rejected = score_pairs(model, tokenizer, pairs, batch_size)
    ref_chosen, ref_rejected = reference_logps
    z = implicit_rewards(chosen, ref_chosen, beta) - implicit_rewards(rejected, ref_rejected,
                                                                      beta)
    return {"dpo_loss": float(np.mean(np.logaddexp(0.0, -z))),
            "preference_accuracy": float(np.mean(z > 0)), "reward_margin": float(np.mean(z)),
            "chosen_more_likely": float(np.mean(chosen > rejected)), "pairs": len(pairs)}


def score_pairs(model, tokenizer, pairs, batch_size=16):
    """(chosen, rejected): two (N,) arrays of the sequence log-probabilities of ``model``
    (eval mode, no gradients); of the frozen reference, they are computed once."""
    chosen, rejected = [], []
    with evaluating(model), no_grad():
        for i in range(0, len(pairs), batch_size):
            w, l = pair_log_probs(model, tokenizer, pairs[i:i + batch_size])
            chosen.append(w.data)
            rejected.append(l.data)
    return np.concatenate(chosen), np.concatenate(rejected)


# ----- the runs -----------------------------------------------------------------------------
@dataclass
class PostTrainConfig:
    """The settings of ``tinyllm train --task sft`` / ``--task dpo``.

    Without ``init_from``, a small GPT (the pre-training sizes below, context 128 so that a
    question and its answer fit) is first trained for ``pretrain_steps`` on the pydoc corpus;
    DPO without ``init_from`` starts from out/sft/ckpt.npz, running SFT first if it is missing.
    """
    task: str = "sft"               # sft | dpo
    init_from: str = None           # a GPT checkpoint (file or folder) to start from
    out: str = None                 # None: out/sft or out/dpo
    steps: int = None               # None: 150 for sft, 60 for dpo
    batch_size: int = 8             # questions (sft) or pairs (dpo) per step
    lr: float = None                # None: 2e-3 for sft, 1e-4 for dpo
    beta: float = 0.1               # DPO's beta: the strength of the pull back to the reference
    held_out_fraction: float = 0.2
    max_answer_chars: int = 80      # first sentences are cut at a word to this length
    seed: int = 1337
    backend: str = None
    # the brief pre-training when there is no init_from
    pretrain_steps: int = 200
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 128

    def __post_init__(self):
        if self.task not in ("sft", "dpo"):
            raise ValueError("post-training task must be sft or dpo, got %r" % (self.task,))
        if self.out is None:
            self.out = "out/%s" % self.task
        if self.steps is None:
            self.steps = 150 if self.task == "sft" else 60
        if self.lr is None:
            self.lr = 2e-3 if self.task == "sft" else 1e-4
        for name in ("steps", "batch_size", "max_answer_chars", "pretrain_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError("--task %s: %s must be an integer >= 1, got %r"
                                 % (self.task, name, value))
        if not self.lr > 0 or not self.beta > 0:
            raise ValueError("--task %s: lr and beta must be positive, got lr=%r, beta=%r"
                             % (self.task, self.lr, self.beta))

    @classmethod
    def from_settings(cls, task, settings):
        """A config from ``tinyllm train``'s options; an option that does not apply to
        post-training is a ValueError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError("--task %s does not use %s (it takes %s)"
                             % (task, ", ".join("--" + n.replace("_", "-") for n in unknown),
                                ", ".join("--" + n.replace("_", "-") for n in sorted(known)
                                          if n != "task")))
        return cls(task=task, **settings)


@dataclass
class PostTrainResult:
    """What ``run_sft`` and ``run_dpo`` return: the model, its tokenizer, the held-out
    metrics before and after, the training losses and the checkpoint written."""
    model: object
    tokenizer: object
    before: dict
    after: dict
    losses: list
    checkpoint_path: Path
    train_metrics: dict = None


def format_metrics(metrics):
    return ", ".join("%s %s" % (k, "%.4f" % v if isinstance(v, float) else v)
                     for k, v in metrics.items())


def load_or_pretrain(config, log=print):
    """(model, checkpoint's model_args, tokenizer, base TrainConfig dict): the GPT of
    ``config.init_from``, or a small GPT pre-trained briefly into OUT/pretrained."""
    if config.init_from is not None:
        model, checkpoint = load_model(config.init_from, allowed_types=("gpt",),
                                       purpose="post-training")
        if checkpoint.tokenizer is None:
            raise ValueError("checkpoint %s holds no tokenizer, so questions cannot be encoded"
                             % checkpoint.path)
        log("starting from %s (step %d)" % (checkpoint.path, checkpoint.step))
        return model, checkpoint.model_args, checkpoint.tokenizer, checkpoint.config
    log("no --init-from: pre-training a small GPT for %d steps first" % config.pretrain_steps)
    base = TrainConfig(model="gpt", n_layer=config.n_layer, n_head=config.n_head,
                       n_embd=config.n_embd, block_size=config.block_size, batch_size=16,
                       steps=config.pretrain_steps, lr=3e-3, eval_every=config.pretrain_steps,
                       eval_batches=4, sample_tokens=0, seed=config.seed,
                       backend=config.backend, out=str(Path(config.out) / "pretrained"))
    result = train(base, progress=False, log=log)
    return result.model, asdict(result.model.config), result.tokenizer, base.to_dict()


def demo_examples(config, tokenizer, block_size):
    """(train, held_out) QAExamples whose chat texts fit the model's context: answers are cut
    at a word so that prompt + answer + <|end|> is at most block_size + 1 tokens."""
    examples = pydoc_qa_examples()
    longest_prompt = max(len(tokenizer.encode(chat_prompt(e.question))) for e in examples)
    room = min(config.max_answer_chars, block_size + 1 - longest_prompt - len(END))
    if room < MIN_ANSWER_CHARS:
        raise ValueError("a context of block_size=%d leaves %d characters for an answer after "
                         "the longest prompt (%d tokens); post-training needs at least %d: "
                         "pre-train with --block-size 128 or more" % (block_size, room,
                                                                       longest_prompt,
                                                                       MIN_ANSWER_CHARS))
    examples = [replace(e, answer=cut_at_word(e.answer, room)) for e in examples]
    return split_examples(examples, config.held_out_fraction, seed=0)


def fine_tune(model, config, loss_of_batch, draw_batch, log):
    """``config.steps`` updates of ``model``: loss = loss_of_batch(draw_batch()), backward,
    gradient norm clipped at 1, AdamW (lr ``config.lr``, no weight decay: a short fine-tune
    should not shrink the pre-trained weights), warm-up over a tenth of the steps and cosine
    decay to lr / 10. Returns the training losses."""
    optimizer = model.configure_optimizers(weight_decay=0.0, learning_rate=config.lr,
                                           betas=(0.9, 0.99))
    scheduler = WarmupCosineLR(optimizer, config.steps // 10, config.steps, config.lr / 10)
    losses = []
    model.train()
    for step in range(1, config.steps + 1):
        loss = loss_of_batch(draw_batch())
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        losses.append(float(loss.data))
        if step % max(1, config.steps // 5) == 0 or step == config.steps:
            log("step %d: %s loss %.4f" % (step, config.task, np.mean(losses[-10:])))
    model.eval()
    return losses


def _save(config, model, model_args, tokenizer, base_config, metrics):
    path = Path(config.out) / CHECKPOINT_NAME
    extra = {"posttraining": asdict(config), "held_out_metrics": metrics}
    save_checkpoint(path, model, "gpt", model_args, tokenizer=tokenizer, config=base_config,
                    step=config.steps, extra=extra)
    return path


def run_sft(config=None, log=print, **settings):
    """Supervised fine-tuning on the pydoc questions; prints and returns the held-out
    metrics before and after (``PostTrainResult``) and writes OUT/ckpt.npz."""
    config = replace(config or PostTrainConfig(task="sft"), **settings)
    with backend_context(config.backend):
        model, model_args, tokenizer, base_config = load_or_pretrain(config, log)
        train_examples, held_out = demo_examples(config, tokenizer, model_args["block_size"])
        log("SFT on %d questions, %d held out; template:\n%s"
            % (len(train_examples), len(held_out),
               chat_text(train_examples[0].question, train_examples[0].answer)))
        before = answer_metrics(model, tokenizer, held_out)
        log("held-out before SFT: %s" % format_metrics(before))
        rng = np.random.default_rng(config.seed)

        def draw():
            rows = rng.integers(0, len(train_examples), config.batch_size)
            return sft_batch(tokenizer, [train_examples[i] for i in rows])

        losses = fine_tune(model, config, lambda batch: sft_loss(model, *batch), draw, log)
        after = answer_metrics(model, tokenizer, held_out)
        log("held-out after SFT:  %s" % format_metrics(after))
        for e in held_out[:3]:
            log("Q: %s\n  model: %s\n  right: %s" % (
                e.question, greedy_answer(model, tokenizer, e.question,
                                          len(tokenizer.encode(e.answer + END)) + 8), e.answer))
        path = _save(config, model, model_args, tokenizer, base_config,
                     {"before": before, "after": after})
    log("checkpoint %s" % path)
    return PostTrainResult(model, tokenizer, before, after, losses, path)


def run_dpo(config=None, log=print, **settings):
    """DPO on preference pairs of the pydoc questions, from an SFT model (``init_from``,
    default out/sft/ckpt.npz, made by ``run_sft`` if missing) that is also the frozen
    reference; prints and returns the held-out preference metrics before and after."""
    config = replace(config or PostTrainConfig(task="dpo"), **settings)
    if config.init_from is None:
        sft_out = Path(config.out).parent / "sft"
        if not (sft_out / CHECKPOINT_NAME).exists():
            log("no --init-from and no %s: running SFT first" % (sft_out / CHECKPOINT_NAME))
            run_sft(PostTrainConfig(task="sft", out=str(sft_out), seed=config.seed,
                                    backend=config.backend, n_layer=config.n_layer,
                                    n_head=config.n_head, n_embd=config.n_embd,
                                    block_size=config.block_size,
                                    pretrain_steps=config.pretrain_steps), log)
        config = replace(config, init_from=str(sft_out / CHECKPOINT_NAME))
    with backend_context(config.backend):
        model, model_args, tokenizer, base_config = load_or_pretrain(config, log)
        reference, _ = load_model(config.init_from)         # frozen: never given to an optimizer
        for p in reference.parameters():
            p.requires_grad = False
        train_examples, held_out = demo_examples(config, tokenizer, model_args["block_size"])
        train_pairs = preference_pairs(train_examples, seed=config.seed)
        held_out_pairs = preference_pairs(held_out, seed=config.seed)
        log("DPO on %d preference pairs, %d held out, beta %g"
            % (len(train_pairs), len(held_out_pairs), config.beta))
        ref_train = score_pairs(reference, tokenizer, train_pairs)
        ref_held_out = score_pairs(reference, tokenizer, held_out_pairs)
        before = preference_metrics(model, tokenizer, held_out_pairs, ref_held_out, config.beta)
        log("held-out before DPO: %s" % format_metrics(before))
        rng = np.random.default_rng(config.seed)

        def draw():
            return rng.integers(0, len(train_pairs), config.batch_size)

        def loss_of(rows):
            chosen, rejected = pair_log_probs(model, tokenizer, [train_pairs[i] for i in rows])
            return dpo_loss(chosen, rejected, ref_train[0][rows], ref_train[1][rows],
                            beta=config.beta)

        losses = fine_tune(model, config, loss_of, draw, log)
        after = preference_metrics(model, tokenizer, held_out_pairs, ref_held_out, config.beta)
        train_metrics = preference_metrics(model, tokenizer, train_pairs, ref_train, config.beta)
        log("held-out after DPO:  %s" % format_metrics(after))
        log("training pairs after DPO: %s" % format_metrics(train_metrics))
        path = _save(config, model, model_args, tokenizer, base_config,
                     {"before": before, "after": after})
    log("checkpoint %s" % path)
    return PostTrainResult(model, tokenizer, before, after, losses, path, train_metrics)


def run(task, settings, log=print):
    """``tinyllm train --task sft|dpo``: the run of ``task`` with the command's settings."""
    config = PostTrainConfig.from_settings(task, settings)
    return (run_sft if task == "sft" else run_dpo)(config, log)
