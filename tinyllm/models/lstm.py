"""Recurrent models: an LSTM language model and an LSTM text classifier.

``LSTMLanguageModel`` is the recurrent counterpart of GPT, the model of the Keras example in
document 000 (section 5.2)

    Embedding -> LSTM(128, return_sequences=True) -> LSTM(128, return_sequences=True)
              -> Dense(vocab, softmax)

which, like this model, predicts the next token at every position (both LSTMs return their
whole sequence), so a window of T tokens trains on T predictions:

    idx (B, T) -> embedding (B, T, E) -> num_layers stacked LSTMs (B, T, H) -> Linear -> (B, T, V)

``LSTMClassifier`` is the sentiment model of the documents,

    Embedding(50) -> LSTM(100, tanh) -> Dense(1, sigmoid),

reading a padded batch of reviews and classifying each from the LSTM's hidden state at its
last real token.
"""

import numpy as np

from tinyllm import functional as F
from tinyllm import nn
from tinyllm.autograd import Tensor, no_grad
from tinyllm.models.inputs import token_ids
from tinyllm.models.sampling import RecurrentStepper, generate_tokens


def _targets(model_name, targets, shape):
    data = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if data.shape != shape:
        raise ValueError("%s: targets of shape %s do not match idx of shape %s"
                         % (model_name, data.shape, shape))
    return data


class LSTMLanguageModel(nn.Module):
    """Embedding -> stacked LSTM (batch_first) -> Linear to the vocabulary.

    Submodules: ``embedding`` (V, E), ``lstm`` (``num_layers`` layers of ``hidden_size`` H,
    with ``dropout`` between them), ``dropout`` (on the embeddings and on the LSTM's output),
    ``lm_head`` (Linear H -> V). With ``tie_weights=True`` the output layer shares the
    embedding's (V, E) matrix, which needs E == H. The embedding and the output weights start
    from U(-0.1, 0.1) and the output bias from 0 (PyTorch's word-language-model example), so
    the first logits are small whether or not the weights are tied.
    """

    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers=2, dropout=0.0,
                 tie_weights=False):
        super().__init__()
        if tie_weights and embedding_dim != hidden_size:
            raise ValueError("LSTMLanguageModel: tie_weights needs embedding_dim == hidden_size "
                             "(the output layer reuses the (V, E) embedding as its (V, H) "
                             "weight), got %d and %d" % (embedding_dim, hidden_size))
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.lm_head = nn.Linear(hidden_size, vocab_size)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.lm_head.bias)
        if tie_weights:
            self.lm_head.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.lm_head.weight, -0.1, 0.1)

    def forward(self, idx, targets=None, state=None):
        """Returns ``(logits, loss, state)``.

        idx (B, T) token ids; logits (B, T, V) at every position; loss the mean cross-entropy
        against ``targets`` (B, T) (positions with target -100 are skipped), or None without
        targets. ``state`` is the LSTM's ``(h, c)``, each (num_layers, B, H): pass the state
        returned for the previous window to continue a long text where it stopped (truncated
        backpropagation through time; ``detach_state`` it first, so the gradient stops at the
        window's start). None starts from zeros.
        """
        idx = token_ids("LSTMLanguageModel", idx, self.vocab_size)
        B, T = idx.shape
        x = self.dropout(self.embedding(idx))                  # (B, T, E)
        output, state = self.lstm(x, state)                    # (B, T, H)
        logits = self.lm_head(self.dropout(output))            # (B, T, V)
        loss = None
        if targets is not None:
            targets = _targets("LSTMLanguageModel", targets, (B, T))
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
        return logits, loss, state

    @staticmethod
    def detach_state(state):
        """The state's values cut off from the graph, to carry into the next window."""
        return tuple(s.detach() for s in state)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 generator=None):
        """Extend each sequence of idx (B, T) by ``max_new_tokens`` tokens; returns the
        (B, T + max_new_tokens) int64 tensor of ids.

        The prompt is read once; then each new token is fed alone together with the carried
        state (the recurrence remembers the whole context, so there is no context window to
        crop). Tokens are picked by ``sample_next_token`` (``temperature=0``: greedy; top_k,
        top_p, generator as in ``GPT.generate``). Runs under ``no_grad``; call ``eval()`` first
        if the model has dropout.
        """
        idx = token_ids("LSTMLanguageModel", idx, self.vocab_size)
        return Tensor(generate_tokens(self.stepper(), idx, max_new_tokens, temperature, top_k,
                                      top_p, generator=generator))

    def stepper(self):
        """The next-token step for decoding (``tinyllm.models.sampling``): read the prompt
        once, then only the newest token, carrying the state."""
        return RecurrentStepper(self)


def pack_to_front(ids, mask, fill):
    """Move each row's real tokens (``mask`` True) to the front, in order, and pad after them.

    ids, mask (B, T) -> packed (B, T') with T' = the longest row's count of real tokens, and
    lengths (B,). "pre" padding [0, 0, 5, 7] and "post" padding [5, 7, 0, 0] both become
    [5, 7], so a left-to-right recurrence reads exactly the real tokens from its initial
    state (what PyTorch's ``pack_padded_sequence`` achieves).
    """
    lengths = mask.sum(axis=1)
    order = np.argsort(~mask, axis=1, kind="stable")           # real positions first, in order
    packed = np.take_along_axis(ids, order, axis=1)
    packed = np.where(np.arange(ids.shape[1]) < lengths[:, None], packed, fill)
    return packed[:, :max(1, lengths.max())], lengths


class LSTMClassifier(nn.Module):
    """Embedding -> LSTM -> Linear: one prediction per padded sequence.

    Submodules: ``embedding`` (V, embedding_dim; the ``padding_idx`` row stays zero),
    ``lstm`` (one layer, ``hidden_size`` H, tanh as every LSTM), ``classifier`` (Linear
    H -> num_classes). The sequence is summed up by the LSTM's hidden state after its LAST
    REAL token: real tokens are packed to the front of each row (``pack_to_front``) before
    the LSTM runs, so padding never changes the output, whether it came before the text
    ("pre", Keras's default) or after it ("post").

    ``num_classes=1`` is binary classification: one logit per sequence, probability
    sigmoid(logit) (the Dense(1, sigmoid) of the documents' example), loss binary
    cross-entropy from the logit. ``num_classes > 1``: C logits, softmax, cross-entropy.
    """

    def __init__(self, vocab_size, embedding_dim=50, hidden_size=100, num_classes=1,
                 padding_idx=0):
        super().__init__()
        self.vocab_size, self.num_classes = vocab_size, num_classes
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.padding_idx = self.embedding.padding_idx          # a negative index counted from V
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, ids, labels=None, mask=None):
        """Returns ``(logits, loss)``.

        ids (B, T) token ids, padded; ``mask`` (B, T) True at real tokens (the mask
        ``tinyllm.data.pad_sequences`` returns); without it every id other than
        ``padding_idx`` is real. Every row needs at least one real token.
        logits: (B,) for binary classification, (B, C) otherwise. loss (None without labels):
        binary cross-entropy with logits against labels (B,) in {0, 1}, or cross-entropy
        against class indices (B,).
        """
        ids = token_ids("LSTMClassifier", ids, self.vocab_size, arg_name="ids")
        mask = self._real_tokens(ids, mask)
        B = ids.shape[0]
        fill = 0 if self.padding_idx is None else self.padding_idx
        packed, lengths = pack_to_front(ids, mask, fill)
        output, _ = self.lstm(self.embedding(packed))                      # (B, T', H)
        last = output[np.arange(B), lengths - 1]                            # (B, H)
        logits = self.classifier(last)                                      # (B, C)
        if self.num_classes == 1:
            logits = logits.reshape(B)
        if labels is None:
            return logits, None
        labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
        if labels.shape != (B,):
            raise ValueError("LSTMClassifier: labels must have shape (B,) = (%d,), got %s"
                             % (B, labels.shape))
        if self.num_classes == 1:
            loss = F.binary_cross_entropy_with_logits(logits, labels.astype(logits.dtype))
        else:
            loss = F.cross_entropy(logits, labels)
        return logits, loss

    def predict_proba(self, ids, mask=None):
        """Probabilities without a graph: sigmoid(logits) (B,) for binary classification,
        softmax(logits) (B, C) otherwise."""
        with no_grad():
            logits, _ = self(ids, mask=mask)
        return logits.sigmoid() if self.num_classes == 1 else logits.softmax(-1)

    def _real_tokens(self, ids, mask):
        if mask is None:
            mask = np.ones(ids.shape, dtype=bool) if self.padding_idx is None \
                else ids != self.padding_idx
        else:
            mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
            if mask.shape != ids.shape or mask.dtype != np.bool_:
                raise ValueError("LSTMClassifier: mask must be a boolean array of the ids' "
                                 "shape %s (True at real tokens), got %s %s"
                                 % (ids.shape, mask.dtype, mask.shape))
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError("LSTMClassifier: sequence %d of the batch has no real tokens "
                             "(all padding); there is nothing to classify" % empty[0])
        return mask
