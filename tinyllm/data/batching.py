"""Turning token ids into training batches.

- Language modelling: ``get_lm_batch`` (random windows, for training) and
  ``iterate_lm_batches`` (consecutive windows, for evaluation). The target of a window is the
  window shifted by one token: y[b, t] = tokens[s_b + t + 1] is what the model must predict
  after seeing x[b, :t + 1].
- Classification and sequence-to-sequence: ``pad_sequences`` (Keras's semantics) and
  ``collate_seq2seq``.
- Masked language modelling (BERT): ``mask_tokens`` with the 80/10/10 rule.
- ``bucket_by_length``: batches of sequences of similar length, so little of a batch is padding.

Randomness comes from the NumPy ``Generator`` passed as ``generator=``, or else from
``tinyllm.random.default_generator()`` (reset by ``tinyllm.manual_seed``).
"""

from typing import NamedTuple

import numpy as np

from tinyllm.random import default_generator


def _generator(generator):
    return default_generator() if generator is None else generator


def _check_positive_int(value, name, where):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError("%s: %s must be a positive int, got %r" % (where, name, value))


def _token_array(tokens, block_size, where):
    """``tokens`` as a 1-d array (a memmap stays one), long enough for one window."""
    if not isinstance(tokens, np.ndarray):
        tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError("%s: tokens must be a 1-d array of ids, got shape %s"
                         % (where, tokens.shape))
    if tokens.size and tokens.dtype.kind not in "iu":
        raise TypeError("%s: tokens must be integer ids, got dtype %s" % (where, tokens.dtype))
    if len(tokens) < block_size + 1:
        raise ValueError("%s: the token array holds %d tokens, but one window needs block_size "
                         "+ 1 = %d (the inputs plus the next-token target); use a smaller "
                         "block_size or more text" % (where, len(tokens), block_size + 1))
    return tokens


# ----- language modelling -------------------------------------------------------------------
def get_lm_batch(tokens, batch_size, block_size, generator=None):
    """A batch of random windows for next-token prediction.

    tokens: (N,) ids (a list, an array or the ``np.memmap`` of ``load_tokens``).
    Returns x, y: (B, T) int64 with B = batch_size, T = block_size and, for random starts
    s_b drawn uniformly from [0, N - T - 1],

        x[b, t] = tokens[s_b + t],    y[b, t] = tokens[s_b + t + 1].
    """
    _check_positive_int(batch_size, "batch_size", "get_lm_batch")
    _check_positive_int(block_size, "block_size", "get_lm_batch")
    tokens = _token_array(tokens, block_size, "get_lm_batch")
    starts = _generator(generator).integers(0, len(tokens) - block_size, size=batch_size)
    return _windows(tokens, starts, block_size)


def iterate_lm_batches(tokens, batch_size, block_size, max_batches=None):
    """Consecutive, non-overlapping windows in order, for evaluation (no randomness).

    Window k starts at s_k = k * T for every s_k <= N - T - 1, so the targets y cover
    tokens[1 : 1 + K * T] exactly once. Yields (x, y) pairs of (B, T) int64 arrays; the last
    batch may have fewer than B rows. ``max_batches`` stops early (a quick estimate).
    """
    _check_positive_int(batch_size, "batch_size", "iterate_lm_batches")
    _check_positive_int(block_size, "block_size", "iterate_lm_batches")
    tokens = _token_array(tokens, block_size, "iterate_lm_batches")
    starts = np.arange(0, len(tokens) - block_size, block_size)
    batches = [starts[i:i + batch_size] for i in range(0, len(starts), batch_size)]
    if max_batches is not None:
        batches = batches[:max_batches]
    return (_windows(tokens, batch_starts, block_size) for batch_starts in batches)


def _windows(tokens, starts, block_size):
    """x[b] = tokens[starts[b] : starts[b] + T], y[b] = the same window one token later."""
    index = starts[:, None] + np.arange(block_size)[None, :]          # (B, T)
    x = np.array(tokens[index], dtype=np.int64)                        # reads only these rows
    y = np.array(tokens[index + 1], dtype=np.int64)
    return x, y


# ----- padding ------------------------------------------------------------------------------
def pad_sequences(sequences, maxlen=None, padding="pre", truncating="pre", value=0):
    """Pad (and cut) sequences of ids to one length, as Keras's ``pad_sequences`` does.

    sequences: a list of sequences of ints. maxlen: the length of the result (default: the
    longest sequence). padding: "pre" puts the padding before a sequence, "post" after it.
    truncating: a longer sequence loses its "pre" (first) or "post" (last) items. The defaults
    are Keras's ("pre" and "pre"); for transformers "post" padding is the usual choice.

    Returns (padded, mask): padded (N, maxlen) int64, mask (N, maxlen) bool, True at the real
    tokens and False at the padding.

        pad_sequences([[1, 2], [3, 4, 5, 6]], maxlen=3, padding="post")
        -> [[1, 2, 0], [4, 5, 6]], mask [[T, T, F], [T, T, T]]
    """
    for name, option in (("padding", padding), ("truncating", truncating)):
        if option not in ("pre", "post"):
            raise ValueError("pad_sequences: %s must be 'pre' or 'post', got %r"
                             % (name, option))
    rows = []
    for i, seq in enumerate(sequences):
        row = np.asarray(seq)
        if row.size and (row.ndim != 1 or row.dtype.kind not in "iu"):
            raise ValueError("pad_sequences: sequence %d must be a flat sequence of ints, got "
                             "%s of shape %s" % (i, row.dtype, row.shape))
        rows.append(row.astype(np.int64).reshape(-1))
    if maxlen is None:
        maxlen = max((len(r) for r in rows), default=0)
    elif not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError("pad_sequences: maxlen must be a non-negative int, got %r" % (maxlen,))
    padded = np.full((len(rows), maxlen), value, dtype=np.int64)
    mask = np.zeros((len(rows), maxlen), dtype=bool)
    for i, row in enumerate(rows):
        if len(row) > maxlen:
            row = row[len(row) - maxlen:] if truncating == "pre" else row[:maxlen]
        n = len(row)
        if n == 0:
            continue
        columns = slice(0, n) if padding == "post" else slice(maxlen - n, maxlen)
        padded[i, columns] = row
        mask[i, columns] = True
    return padded, mask


class Seq2SeqBatch(NamedTuple):
    """A padded sequence-to-sequence batch (unpacks like a tuple, in this order).

    src (B, S), tgt_in (B, T), tgt_out (B, T): int64 ids; the padding masks are bool and True
    at PADDING, the convention of ``key_padding_mask`` in attention (the opposite of the mask
    of ``pad_sequences``).
    """
    src: np.ndarray
    src_padding_mask: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    tgt_padding_mask: np.ndarray


def collate_seq2seq(src_seqs, tgt_seqs, pad_id, bos_id, eos_id):
    """Pad source/target pairs for an encoder-decoder trained with teacher forcing.

    For a target [t1, t2, t3] the decoder reads   tgt_in  = [bos, t1, t2, t3]
                         and must predict      tgt_out = [t1, t2, t3, eos],
    so at every position the target is the next token. All parts are padded at the end
    ("post") with ``pad_id`` to the longest in the batch; ``tgt_padding_mask`` is shared by
    tgt_in and tgt_out (a loss with ``ignore_index=pad_id`` skips the same positions).
    """
    src_seqs, tgt_seqs = list(src_seqs), list(tgt_seqs)
    if len(src_seqs) != len(tgt_seqs):
        raise ValueError("collate_seq2seq: %d source sequences but %d target sequences"
                         % (len(src_seqs), len(tgt_seqs)))
    if not src_seqs:
        raise ValueError("collate_seq2seq: the batch is empty")
    for i, seq in enumerate(src_seqs):
        if len(seq) == 0:
            raise ValueError("collate_seq2seq: source sequence %d is empty; every source needs "
                             "at least one token (attention over an all-padding row has "
                             "nothing to attend to)" % i)
    src, src_mask = pad_sequences(src_seqs, padding="post", value=pad_id)
    tgt_in, tgt_mask = pad_sequences([[bos_id] + list(t) for t in tgt_seqs], padding="post",
                                     value=pad_id)
    tgt_out, _ = pad_sequences([list(t) + [eos_id] for t in tgt_seqs], padding="post",
                               value=pad_id)
    return Seq2SeqBatch(src, ~src_mask, tgt_in, tgt_out, ~tgt_mask)


# ----- masked language modelling ------------------------------------------------------------
def mask_tokens(ids, mask_token_id, vocab_size, mlm_probability=0.15, special_ids=(),
                generator=None, ignore_index=-100):
    """BERT's masking: returns (inputs, labels), int64 arrays of the shape of ``ids``.

    Each position is selected with probability ``mlm_probability``, except special tokens
    (``special_ids``: put the padding id there too) and ``mask_token_id`` itself, which never
    are. Of the selected positions, with one uniform draw u per position:

        u < 0.8        -> the input becomes mask_token_id              (80%)
        0.8 <= u < 0.9 -> the input becomes a random ordinary token    (10%)
        u >= 0.9       -> the input stays as it is                     (10%)

    A random token is drawn uniformly from the ids in [0, vocab_size) that are neither special
    nor the mask (it may equal the original token, as in BERT).
    labels[i] = ids[i] at the selected positions and ``ignore_index`` everywhere else, so the
    loss (``cross_entropy(..., ignore_index=-100)``) is computed only where a token was chosen.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError("mask_tokens: ids must be integers, got dtype %s" % ids.dtype)
    if not 0 <= mlm_probability <= 1:
        raise ValueError("mask_tokens: mlm_probability must be in [0, 1], got %r"
                         % (mlm_probability,))
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError("mask_tokens: mask_token_id %d is outside the vocabulary [0, %d)"
                         % (mask_token_id, vocab_size))
    never = np.array(sorted(set(int(s) for s in special_ids) | {int(mask_token_id)}))
    ordinary = np.setdiff1d(np.arange(vocab_size), never)
    if ordinary.size == 0:
        raise ValueError("mask_tokens: every id of the vocabulary is special; there is no "
                         "ordinary token to draw a random replacement from")
    rng = _generator(generator)

    selected = (rng.random(ids.shape) < mlm_probability) & ~np.isin(ids, never)
    labels = np.where(selected, ids, ignore_index).astype(np.int64)
    u = rng.random(ids.shape)
    to_mask = selected & (u < 0.8)
    to_random = selected & (u >= 0.8) & (u < 0.9)
    inputs = ids.astype(np.int64)                  # a copy
    inputs[to_mask] = mask_token_id
    inputs[to_random] = rng.choice(ordinary, size=int(to_random.sum()))
    return inputs, labels


# ----- bucketing ----------------------------------------------------------------------------
def bucket_by_length(seqs, batch_size, generator=None, bucket_size=None, shuffle=True):
    """Batches of indices into ``seqs`` whose sequences have similar lengths.

    The scheme: shuffle all indices, cut them into buckets of ``bucket_size`` indices
    (default 50 * batch_size), sort each bucket by sequence length (stable), cut it into batches
    of ``batch_size``, and shuffle the order of the batches. Sorting inside buckets keeps the
    padding small while the shuffles keep the batches different every epoch. With
    ``shuffle=False`` nothing is shuffled: the whole list is one sorted order.

    Returns a list of int64 index arrays; every index appears in exactly one batch, and only
    the last batch of each bucket may be shorter than ``batch_size``.
    """
    _check_positive_int(batch_size, "batch_size", "bucket_by_length")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    n = len(lengths)
    if bucket_size is None:
        bucket_size = 50 * batch_size
    _check_positive_int(bucket_size, "bucket_size", "bucket_by_length")
    rng = _generator(generator) if shuffle else None
    order = rng.permutation(n) if shuffle else np.arange(n)
    if not shuffle:
        bucket_size = max(n, 1)
    batches = []
    for start in range(0, n, bucket_size):
        bucket = order[start:start + bucket_size]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches.extend(bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
