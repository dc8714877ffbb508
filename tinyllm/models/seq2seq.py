"""An encoder-decoder Transformer for sequence-to-sequence tasks (translation, ...), as in
"Attention Is All You Need".

    src (B, S) -> embedding * sqrt(d_model) + sinusoidal positions -> encoder -> memory (B, S, d)
    tgt_in (B, T) -> embedding * sqrt(d_model) + positions -> decoder (masked self-attention,
                     cross-attention to memory) -> Linear -> logits (B, T, V_tgt)

Masks: the encoder's self-attention and the decoder's cross-attention ignore the source's
padding (``src_key_padding_mask`` and ``memory_key_padding_mask``, True where src == pad_id);
the decoder's self-attention is causal (position t sees target positions <= t) and ignores the
target's padding. Trained with teacher forcing: the decoder reads tgt_in = [bos, y1, ..., yn]
and must predict tgt_out = [y1, ..., yn, eos] (``tinyllm.data.collate_seq2seq`` builds both);
the loss skips pad_id targets.

At inference the target is produced one token at a time from [bos] until eos:
``greedy_decode`` (the most probable token each step) or ``beam_search`` (keep the
``beam_size`` most probable partial translations).
"""

import math

import numpy as np

from tinyllm import functional as F
from tinyllm import nn
from tinyllm.autograd import Tensor, no_grad
from tinyllm.models.inputs import token_ids
from tinyllm.models.sampling import beam_search_tokens, beam_step


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer (see the module docstring).

    Submodules: ``src_embedding`` (V_src, d), ``tgt_embedding`` (V_tgt, d),
    ``positional_encoding`` (sinusoidal, ``max_len`` positions), ``dropout``, ``encoder`` and
    ``decoder`` (post-LN stacks with a final LayerNorm each, batch-first, like
    ``torch.nn.Transformer``), ``output_projection`` (Linear d -> V_tgt). ``activation``
    ("relu" as in the paper, or "gelu") is the feed-forward networks'.
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model, nhead, num_encoder_layers,
                 num_decoder_layers, dim_feedforward, dropout=0.1, max_len=512, pad_id=0,
                 bos_id=1, eos_id=2, activation="relu"):
        super().__init__()
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.d_model, self.max_len = d_model, max_len
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_embedding = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model)
        self.positional_encoding = nn.SinusoidalPositionalEncoding(d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        encoder_layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                                   activation=activation, batch_first=True)
        decoder_layer = nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout,
                                                   activation=activation, batch_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, num_encoder_layers,
                                             norm=nn.LayerNorm(d_model))
        self.decoder = nn.TransformerDecoder(decoder_layer, num_decoder_layers,
                                             norm=nn.LayerNorm(d_model))
        self.output_projection = nn.Linear(d_model, tgt_vocab_size)
        # Embeddings of variance 1/d: times sqrt(d) they have unit size, like the positions.
        nn.init.normal_(self.src_embedding.weight, 0.0, d_model ** -0.5)
        nn.init.normal_(self.tgt_embedding.weight, 0.0, d_model ** -0.5)

    # ----- the two halves -----------------------------------------------------------------
    def _embed(self, embedding, ids):
        x = embedding(ids) * math.sqrt(self.d_model)
        return self.dropout(self.positional_encoding(x))

    def encode(self, src):
        """Returns (memory (B, S, d_model), src_padding_mask (B, S), True at padding)."""
        src = token_ids("Seq2SeqTransformer", src, self.src_vocab_size, self.max_len,
                        arg_name="src")
        src_padding_mask = src == self.pad_id
        memory = self.encoder(self._embed(self.src_embedding, src),
                              src_key_padding_mask=src_padding_mask)
        return memory, src_padding_mask

    def decode(self, tgt_in, memory, src_padding_mask):
        """The decoder's hidden states (B, T, d_model) for tgt_in (B, T) given the encoder's
        memory; position t sees tgt_in[:, :t + 1] and every real source position."""
        tgt_in = token_ids("Seq2SeqTransformer", tgt_in, self.tgt_vocab_size, self.max_len,
                           arg_name="tgt_in")
        T = tgt_in.shape[1]
        return self.decoder(self._embed(self.tgt_embedding, tgt_in), memory,
                            tgt_mask=nn.generate_square_subsequent_mask(T),
                            tgt_key_padding_mask=tgt_in == self.pad_id,
                            memory_key_padding_mask=src_padding_mask)

    def forward(self, src, tgt_in, tgt_out=None):
        """Returns ``(logits, loss)``: logits (B, T, V_tgt) for src (B, S) and tgt_in (B, T);
        loss (None without tgt_out) the mean cross-entropy against tgt_out (B, T) over the
        positions where tgt_out is not pad_id."""
        memory, src_padding_mask = self.encode(src)
        logits = self.output_projection(self.decode(tgt_in, memory, src_padding_mask))
        if tgt_out is None:
            return logits, None
        tgt_out = tgt_out.data if isinstance(tgt_out, Tensor) else np.asarray(tgt_out)
        B, T, V = logits.shape
        if tgt_out.shape != (B, T):
            raise ValueError("Seq2SeqTransformer: tgt_out of shape %s does not match tgt_in of "
                             "shape %s" % (tgt_out.shape, (B, T)))
        return logits, F.cross_entropy(logits.reshape(B * T, V), tgt_out.reshape(-1),
                                       ignore_index=self.pad_id)

    # ----- decoding -----------------------------------------------------------------------
    def _next_log_probs(self, ys, memory, src_padding_mask):
        """log p(next token | ys, src) for each row of ys (k, t): a (k, V_tgt) array."""
        h = self.decode(ys, memory, src_padding_mask)
        return self.output_projection(h[:, -1]).log_softmax(-1).data

    def _check_max_len(self, max_len):
        max_len = self.max_len if max_len is None else max_len
        if not 1 <= max_len <= self.max_len:
            raise ValueError("Seq2SeqTransformer: max_len must lie in [1, %d] (the decoder "
                             "reads at most max_len positions), got %r" % (self.max_len, max_len))
        return max_len

    def greedy_decode(self, src, max_len=None):
        """The most probable next token at every step, for a batch src (B, S).

        Returns an int64 tensor (B, 1 + n): bos, then the chosen tokens up to and including
        eos; rows that end sooner are padded with pad_id after their eos. Stops when every
        row has produced eos, or after ``max_len`` tokens (default and upper limit: the
        model's max_len). Runs under ``no_grad``; call ``eval()`` first (dropout).
        """
        max_len = self._check_max_len(max_len)
        with no_grad():
            memory, src_padding_mask = self.encode(src)
            B = memory.shape[0]
            ys = np.full((B, 1), self.bos_id, dtype=np.int64)
            finished = np.zeros(B, dtype=bool)
            for _ in range(max_len):
                next_id = np.argmax(self._next_log_probs(ys, memory, src_padding_mask), axis=-1)
                next_id = np.where(finished, self.pad_id, next_id)
                ys = np.concatenate([ys, next_id[:, None]], axis=1)
                finished |= next_id == self.eos_id
                if finished.all():
                    break
        return Tensor(ys)

    def beam_search(self, src, beam_size=4, max_len=None, length_penalty=1.0):
        """The best translation of one source sentence src (1, S) found by beam search.

        Keeps the ``beam_size`` best partial hypotheses. Each step extends every hypothesis
        by every token and ranks the extensions by their total log-probability
        sum_t log p(y_t | y_<t, src); the best non-eos extensions form the next beam, and an
        extension ending in eos among the top ``beam_size`` is a finished hypothesis. Search
        stops when ``beam_size`` hypotheses have finished, or after ``max_len`` tokens (the
        unfinished ones then join the finished).

        Length normalisation: a hypothesis of n tokens (eos counted, bos not) scores
        sum of log-probabilities / n ** length_penalty. Log-probabilities are negative, so the
        raw sum (length_penalty = 0) prefers short outputs; 1 compares the average per
        token; larger values favour longer outputs more.

        Returns an int64 tensor (1, 1 + n): bos, the tokens, eos (if reached). With
        ``beam_size=1`` this is ``greedy_decode``'s result. Runs under ``no_grad``. The search
        is ``tinyllm.models.sampling.beam_search_tokens``, as for the language models.
        """
        max_len = self._check_max_len(max_len)
        if beam_size < 1:
            raise ValueError("Seq2SeqTransformer: beam_size must be at least 1, got %r"
                             % (beam_size,))
        src_shape = np.shape(src.data if isinstance(src, Tensor) else src)
        if len(src_shape) != 2 or src_shape[0] != 1:
            raise ValueError("Seq2SeqTransformer: beam_search decodes one sentence at a time: "
                             "src must have shape (1, S), got %s" % (src_shape,))
        with no_grad():
            memory, src_padding_mask = self.encode(src)
            stepper = _DecoderStepper(self, memory, src_padding_mask)
            tokens = beam_search_tokens(stepper, [self.bos_id], max_len, beam_size, self.eos_id,
                                        length_penalty)
        return Tensor(np.array([[self.bos_id] + tokens], dtype=np.int64))

    def _next_beams(self, beams, totals, beam_size, length_penalty, finished):
        """``beam_step`` with this model's eos, for hypotheses that start with bos."""
        return beam_step(beams, totals, beam_size, self.eos_id, length_penalty, finished,
                         prompt_length=1)[0]


class _DecoderStepper:
    """The next-token step of beam search (``tinyllm.models.sampling.beam_search_tokens``):
    the decoder re-reads each beam's output ys (k, t) against the one encoded source."""

    def __init__(self, model, memory, src_padding_mask):
        self.model, self.memory, self.src_padding_mask = model, memory, src_padding_mask
        self.ys = None

    def start(self, ys):
        self.ys = np.asarray(ys, dtype=np.int64)
        return self._log_probs()

    def advance(self, next_ids):
        self.ys = np.concatenate([self.ys, np.asarray(next_ids)[:, None]], axis=1)
        return self._log_probs()

    def reorder(self, rows):
        self.ys = self.ys[rows]

    def _log_probs(self):
        rows = np.zeros(len(self.ys), dtype=np.int64)      # every beam reads the same source
        return self.model._next_log_probs(self.ys, self.memory[rows],
                                          self.src_padding_mask[rows])
