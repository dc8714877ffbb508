"""What each ``--model`` learns: its data, batches, loss, metrics and the sample it prints.

    gpt, lstm   LanguageModelTask   predict the next token of a corpus
    mlm         MaskedLMTask        recover BERT-masked tokens of a corpus
    seq2seq     ReverseDigitsTask   reverse a string of digits: "2718" -> "8172" (synthetic,
                                    nothing to download; BLEU and exact match are reported)
    classifier  LineClassifierTask  tell a line of Python's documentation from a line of its
                                    source code (an LSTM classifier, for POST /predict)

Every task offers the same few methods, which is all the trainer needs to know:

    task.model_type, task.tokenizer, task.model_args()   what to build (checkpoint.py builds it)
    task.data_description()                              what it trains on, in words
    task.train_batch()                                   a random batch (tinyllm's generator)
    task.loss(model, batch)                              the batch's mean loss, a 0-d tensor
    task.val_batches()                                   a FIXED list of (batch, n_targets)
    task.evaluate(model, max_batches)                    metrics on the held-out data
    task.sample(model, generator, n_tokens)              text to print before/after training

``make_task(config, tokenizer)`` picks the task; a resumed run passes the checkpoint's
tokenizer so that the ids mean what they meant before.
"""

import numpy as np

from tinyllm.data import (ByteBPETokenizer, CharTokenizer, collate_seq2seq, get_lm_batch,
                          iterate_lm_batches, load_corpus, mask_tokens, pad_sequences,
                          token_dtype, train_val_split)
from tinyllm.random import default_generator
from tinyllm.models import sampling
from tinyllm.training import evaluation

SAMPLE_TEMPERATURE = 0.8        # the samples printed during training (nanoGPT's sample.py)


def make_tokenizer(kind, text, vocab_size, special_tokens=()):
    """A character tokenizer ("char") or a byte-level BPE ("bpe") trained on ``text``."""
    if kind == "char":
        return CharTokenizer.from_text(text, special_tokens=special_tokens)
    return ByteBPETokenizer(special_tokens=special_tokens).train(text, vocab_size)


class LanguageModelTask:
    """Next-token prediction on a corpus, for "gpt" and "lstm" (see the module docstring).

    The corpus is tokenized once; its last ``val_fraction`` is held out. Training batches are
    random windows (``get_lm_batch``); validation reads the first ``eval_batches`` batches of
    consecutive windows of the held-out part, the same ones at every evaluation.
    """

    special_tokens = ()

    def __init__(self, config, tokenizer=None):
        self.config = config
        self.model_type = config.model
        text = load_corpus(config.corpus)
        self.tokenizer = tokenizer or make_tokenizer(config.tokenizer, text, config.vocab_size,
                                                     self.special_tokens)
        ids = np.array(self.tokenizer.encode(text), dtype=token_dtype(self.tokenizer.vocab_size))
        self.train_ids, self.val_ids = train_val_split(ids, config.val_fraction)
        need = config.block_size + 1
        for name, part in (("training", self.train_ids), ("validation", self.val_ids)):
            if len(part) < need:
                raise ValueError("corpus %s is too small for block_size=%d: its %s part holds %d "
                                 "tokens, but one window needs %d; use more text or a smaller "
                                 "--block-size" % (config.corpus, config.block_size, name,
                                                   len(part), need))
        self._val_batches = None

    def data_description(self):
        return "corpus %s (%s)" % (self.config.corpus, type(self.tokenizer).__name__)

    def model_args(self):
        c, V = self.config, self.tokenizer.vocab_size
        if self.model_type == "gpt":
            return dict(block_size=c.block_size, vocab_size=V, n_layer=c.n_layer,
                        n_head=c.n_head, n_embd=c.n_embd, dropout=c.dropout, bias=True)
        return dict(vocab_size=V, embedding_dim=c.n_embd, hidden_size=c.n_embd,
                    num_layers=c.n_layer, dropout=c.dropout)

    def train_batch(self):
        return get_lm_batch(self.train_ids, self.config.batch_size, self.config.block_size)

    def loss(self, model, batch):
        x, y = batch
        return model(x, y)[1]

    def val_batches(self):
        if self._val_batches is None:
            batches = iterate_lm_batches(self.val_ids, self.config.batch_size,
                                         self.config.block_size, self.config.eval_batches)
            self._val_batches = [(batch, batch[1].size) for batch in batches]
        return self._val_batches

    def evaluate(self, model, max_batches=None):
        """Loss, perplexity and bits per token / char / byte on the held-out part."""
        return evaluation.evaluate_language_model(model, self.tokenizer, self.val_ids,
                                                  self.config.batch_size, self.config.block_size,
                                                  max_batches)

    def sample(self, model, generator, n_tokens):
        """A continuation of a newline (nanoGPT's start), or of the held-out text's first
        token when the vocabulary has no newline."""
        try:
            prompt = self.tokenizer.encode("\n")
        except ValueError:
            prompt = [int(self.val_ids[0])]
        new = sampling.generate(model, prompt, n_tokens, temperature=SAMPLE_TEMPERATURE,
                                generator=generator)
        return self.tokenizer.decode(prompt + new)


class MaskedLMTask(LanguageModelTask):
    """BERT's masked-language-model training on a corpus (model "mlm").

    Each window of ``block_size`` tokens has 15% of its tokens selected (80% of those become
    ``<mask>``, 10% a random token, 10% stay; ``tinyllm.data.mask_tokens``) and the loss is the
    cross-entropy at the selected positions only. The validation windows are masked with a
    fixed generator, so every evaluation scores the same positions.
    """

    special_tokens = ("<pad>", "<mask>")

    def __init__(self, config, tokenizer=None):
        super().__init__(config, tokenizer)
        missing = [t for t in self.special_tokens if t not in self.tokenizer.special_tokens]
        if missing:
            raise ValueError("the mlm task needs the special tokens %s in its tokenizer, which "
                             "lacks %s" % (list(self.special_tokens), missing))
        self.pad_id = self.tokenizer.special_tokens["<pad>"]
        self.mask_id = self.tokenizer.special_tokens["<mask>"]

    def model_args(self):
        c = self.config
        return dict(vocab_size=self.tokenizer.vocab_size, max_len=c.block_size, d_model=c.n_embd,
                    nhead=c.n_head, num_layers=c.n_layer, dim_feedforward=4 * c.n_embd,
                    dropout=c.dropout, pad_id=self.pad_id)

    def mask(self, ids, generator=None):
        """(inputs, labels) of ``mask_tokens``, drawn again until at least one position is
        selected (a batch without targets has no loss to average)."""
        while True:
            inputs, labels = mask_tokens(ids, self.mask_id, self.tokenizer.vocab_size,
                                         special_ids=(self.pad_id,), generator=generator)
            if (labels != -100).any():
                return inputs, labels

    def train_batch(self):
        x, _ = get_lm_batch(self.train_ids, self.config.batch_size, self.config.block_size)
        return self.mask(x)

    def loss(self, model, batch):
        inputs, labels = batch
        return model(inputs, labels)[1]

    def val_batches(self):
        if self._val_batches is None:
            windows = iterate_lm_batches(self.val_ids, self.config.batch_size,
                                         self.config.block_size, self.config.eval_batches)
            self._val_batches = []
            for i, (x, _) in enumerate(windows):
                inputs, labels = self.mask(x, np.random.default_rng([self.config.seed, i]))
                self._val_batches.append(((inputs, labels), int((labels != -100).sum())))
        return self._val_batches

    def evaluate(self, model, max_batches=None):
        """Loss and perplexity at the masked positions, and how often the argmax is right."""
        batches = self.val_batches()[:max_batches]
        correct = total = 0
        with evaluation.evaluating(model):
            loss = evaluation.mean_loss(lambda batch: self.loss(model, batch), batches)
            for (inputs, labels), _ in batches:
                logits, _ = model(inputs)
                selected = labels != -100
                correct += int((logits.data.argmax(-1)[selected] == labels[selected]).sum())
                total += int(selected.sum())
        return {"loss": loss, "perplexity": evaluation.perplexity(loss),
                "bits_per_token": evaluation.bits_per_token(loss),
                "masked_accuracy": correct / total, "tokens": total}

    def sample(self, model, generator, n_tokens):
        """The first held-out window, masked, and the model's guesses for the masks."""
        (inputs, labels), _ = self.val_batches()[0]
        inputs, labels = inputs[:1], labels[:1]
        with evaluation.evaluating(model):
            logits, _ = model(inputs)
        selected = labels[0] != -100
        filled = inputs[0].copy()
        filled[selected] = logits.data[0].argmax(-1)[selected]
        original = np.where(selected, labels[0], inputs[0])
        return ("masked:   %r\nguessed:  %r\noriginal: %r"
                % (self.tokenizer.decode(inputs[0]), self.tokenizer.decode(filled),
                   self.tokenizer.decode(original)))


class ReverseDigitsTask:
    """Sequence to sequence on a synthetic task: the target is the source's digits reversed.

    Sources are strings of 1 to min(10, block_size - 1) digits, drawn fresh for every training
    batch; the validation set is ``eval_batches * batch_size`` pairs drawn once from a
    generator seeded by ``seed + 1``. The vocabulary is the ten digits plus ``<pad>``,
    ``<bos>`` and ``<eos>``.
    """

    model_type = "seq2seq"
    special_tokens = ("<pad>", "<bos>", "<eos>")

    def __init__(self, config, tokenizer=None):
        if tokenizer is None and config.tokenizer != "char":
            raise ValueError("the seq2seq task reads digit strings with its own character "
                             "vocabulary; --tokenizer %s does not apply to it" % config.tokenizer)
        if config.block_size < 2:
            raise ValueError("the seq2seq task needs --block-size >= 2 (a digit plus <bos>), "
                             "got %d" % config.block_size)
        self.config = config
        self.tokenizer = tokenizer or CharTokenizer(list("0123456789"),
                                                    special_tokens=self.special_tokens)
        self.pad_id, self.bos_id, self.eos_id = (self.tokenizer.special_tokens[t]
                                                 for t in self.special_tokens)
        self.max_digits = min(10, config.block_size - 1)
        rng = np.random.default_rng(config.seed + 1)
        self.val_pairs = self.random_pairs(config.eval_batches * config.batch_size, rng)
        self._val_batches = None

    def data_description(self):
        return "synthetic digit strings to reverse (1 to %d digits)" % self.max_digits

    def random_pairs(self, n, generator):
        """n (source, target) strings: random digits and the same digits reversed."""
        lengths = generator.integers(1, self.max_digits + 1, size=n)
        sources = ["".join(map(str, generator.integers(0, 10, size=k))) for k in lengths]
        return [(s, s[::-1]) for s in sources]

    def collate(self, pairs):
        """(src, tgt_in, tgt_out) int64 arrays of a list of pairs (``collate_seq2seq``)."""
        src = [self.tokenizer.encode(s) for s, _ in pairs]
        tgt = [self.tokenizer.encode(t) for _, t in pairs]
        batch = collate_seq2seq(src, tgt, self.pad_id, self.bos_id, self.eos_id)
        return batch.src, batch.tgt_in, batch.tgt_out

    def model_args(self):
        c, V = self.config, self.tokenizer.vocab_size
        return dict(src_vocab_size=V, tgt_vocab_size=V, d_model=c.n_embd, nhead=c.n_head,
                    num_encoder_layers=c.n_layer, num_decoder_layers=c.n_layer,
                    dim_feedforward=4 * c.n_embd, dropout=c.dropout, max_len=c.block_size,
                    pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id)

    def train_batch(self):
        return self.collate(self.random_pairs(self.config.batch_size, default_generator()))

    def loss(self, model, batch):
        src, tgt_in, tgt_out = batch
        return model(src, tgt_in, tgt_out)[1]

    def val_batches(self):
        if self._val_batches is None:
            B = self.config.batch_size
            self._val_batches = []
            for i in range(0, len(self.val_pairs), B):
                batch = self.collate(self.val_pairs[i:i + B])
                self._val_batches.append((batch, int((batch[2] != self.pad_id).sum())))
        return self._val_batches

    def translate(self, model, sources):
        """Greedy decodes of a list of digit strings (the output strings)."""
        src = self.collate([(s, s) for s in sources])[0]
        rows = model.greedy_decode(src, max_len=self.max_digits + 1).data
        return [self.output_text(row) for row in rows]

    def output_text(self, row):
        """The digits of a decoded row: what follows <bos>, up to <eos>."""
        digits = []
        for i in row[1:]:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                digits.append(int(i))
        return self.tokenizer.decode(digits)

    def evaluate(self, model, max_batches=None):
        """Loss, perplexity, character-level BLEU and exact-match accuracy of greedy decodes."""
        batches = self.val_batches()[:max_batches]
        B = self.config.batch_size
        pairs = self.val_pairs[:len(batches) * B]
        with evaluation.evaluating(model):
            loss = evaluation.mean_loss(lambda batch: self.loss(model, batch), batches)
            outputs = []
            for i in range(0, len(pairs), B):
                outputs += self.translate(model, [s for s, _ in pairs[i:i + B]])
        targets = [t for _, t in pairs]
        bleu = evaluation.corpus_bleu([list(o) for o in outputs], [list(t) for t in targets])
        exact = sum(o == t for o, t in zip(outputs, targets)) / len(targets)
        return {"loss": loss, "perplexity": evaluation.perplexity(loss),
                "bits_per_token": evaluation.bits_per_token(loss), "bleu": bleu.score,
                "exact_match": exact, "examples": len(targets)}

    def sample(self, model, generator, n_tokens):
        """Four held-out sources with the model's greedy reversal and the right answer."""
        pairs = self.val_pairs[:4]
        with evaluation.evaluating(model):
            outputs = self.translate(model, [s for s, _ in pairs])
        return "\n".join("%-12s -> %-12s (reversed: %s)" % (s, o, t)
                         for (s, t), o in zip(pairs, outputs))


class LineClassifierTask:
    """Text classification: does a line come from Python's documentation (the pydoc corpus,
    label 0) or from its source code (the stdlib corpus, label 1)? (model "classifier", an
    ``LSTMClassifier`` with one sigmoid output: the probability of "code".)

    Lines are stripped of their indentation (which would give the answer away) and kept when
    they hold at least 30 characters, cut to ``block_size``; as many code lines as
    documentation lines are drawn, shuffled with a generator seeded by ``seed``, and the last
    ``val_fraction`` is held out. Batches are padded after the text (``pad_sequences``); the
    labels are noisy (documentation quotes code, code holds comments), which keeps the task
    from being trivial.
    """

    model_type = "lstm_classifier"
    special_tokens = ("<pad>",)
    classes = ("documentation", "code")
    min_chars = 30

    def __init__(self, config, tokenizer=None):
        self.config = config
        docs, code = (self.lines(load_corpus(name)) for name in ("pydoc", "stdlib"))
        rng = np.random.default_rng(config.seed)
        n = min(len(docs), len(code))
        code = [code[i] for i in np.sort(rng.choice(len(code), n, replace=False))]
        examples = [(line, 0) for line in docs[:n]] + [(line, 1) for line in code]
        examples = [examples[i] for i in rng.permutation(len(examples))]
        self.tokenizer = tokenizer or make_tokenizer(
            config.tokenizer, "\n".join(line for line, _ in examples), config.vocab_size,
            self.special_tokens)
        self.pad_id = self.tokenizer.special_tokens["<pad>"]
        self.train_examples, self.val_examples = train_val_split(examples, config.val_fraction)
        self._val_batches = None

    def data_description(self):
        return "lines of Python's documentation (pydoc) and source code (stdlib)"

    def lines(self, text):
        stripped = (line.strip() for line in text.splitlines())
        return [line[:self.config.block_size] for line in stripped if len(line) >= self.min_chars]

    def collate(self, examples):
        """(ids (B, T), mask (B, T), labels (B,)) of (line, label) pairs, padded at the end."""
        ids, mask = pad_sequences([self.tokenizer.encode(line) for line, _ in examples],
                                  padding="post", value=self.pad_id)
        return ids, mask, np.array([label for _, label in examples], dtype=np.int64)

    def model_args(self):
        c = self.config
        return dict(vocab_size=self.tokenizer.vocab_size, embedding_dim=c.n_embd,
                    hidden_size=c.n_embd, num_classes=1, padding_idx=self.pad_id)

    def train_batch(self):
        rows = default_generator().integers(0, len(self.train_examples), self.config.batch_size)
        return self.collate([self.train_examples[i] for i in rows])

    def loss(self, model, batch):
        ids, mask, labels = batch
        return model(ids, labels, mask=mask)[1]

    def val_batches(self):
        if self._val_batches is None:
            B = self.config.batch_size
            examples = self.val_examples[:self.config.eval_batches * B]
            self._val_batches = [(self.collate(examples[i:i + B]), len(examples[i:i + B]))
                                 for i in range(0, len(examples), B)]
        return self._val_batches

    def evaluate(self, model, max_batches=None):
        """Loss (binary cross-entropy, nats per line) and accuracy on held-out lines."""
        batches = self.val_batches()[:max_batches]
        correct = total = 0
        with evaluation.evaluating(model):
            loss = evaluation.mean_loss(lambda batch: self.loss(model, batch), batches)
            for (ids, mask, labels), n in batches:
                probability = model.predict_proba(ids, mask=mask).data
                correct += int(((probability > 0.5) == (labels == 1)).sum())
                total += n
        return {"loss": loss, "accuracy": correct / total, "examples": total}

    def sample(self, model, generator, n_tokens):
        """Four held-out lines with the model's probability that each is code."""
        examples = self.val_examples[:4]
        ids, mask, _ = self.collate(examples)
        with evaluation.evaluating(model):
            probability = model.predict_proba(ids, mask=mask).data
        return "\n".join("p(code) = %.2f  [%s] %s" % (p, self.classes[label], line[:60])
                         for p, (line, label) in zip(probability, examples))


TASKS = {"gpt": LanguageModelTask, "lstm": LanguageModelTask, "mlm": MaskedLMTask,
         "seq2seq": ReverseDigitsTask, "classifier": LineClassifierTask}


def make_task(config, tokenizer=None):
    """The task of ``config.model`` (see the module docstring)."""
    return TASKS[config.model](config, tokenizer)


def checkpoint_model_type(model):
    """The model type a checkpoint of ``--model model`` holds ("classifier" trains an
    "lstm_classifier"; the others are their own names)."""
    return LineClassifierTask.model_type if model == "classifier" else model
