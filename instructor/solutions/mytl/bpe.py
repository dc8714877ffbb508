"""Step bpe (chapter 9): a byte-level byte-pair-encoding tokenizer, trained from scratch.

Text is turned into its UTF-8 bytes, so ids 0..255 (the byte values) can spell any text,
Chinese and emoji included. Training repeats one round until the vocabulary is full:

    count every adjacent pair of ids in the current sequence,
    take the most frequent pair (a, b) and give it the next id, 256 + (number of merges so far),
    replace each occurrence of (a, b), left to right, by the new id.

Counting: every adjacent position counts, overlapping ones included (as in GPT-2 and
minbpe): in the bytes of "aaa" the pair (a, a) occurs twice. Replacing goes left to right
without overlap: "aaa" becomes [aa, a].

Ties: among pairs of equal count, the pair whose byte strings (bytes(a), bytes(b)) are
lexicographically greatest is merged first (bytes(id) is the text an id spells: one byte, or
the bytes of its two halves joined). So (b"d", b"aaab") beats (b"aaab", b"d"), since b"d" >
b"aaab", and (b"aa", b"a") beats (b"a", b"b").

A merge list ``merges`` is a list of pairs (a, b) of ids: merge i made id 256 + i.
"""

from collections import Counter


def _pair_counts(ids):
    """{(a, b): how many adjacent positions hold a then b}, overlapping ones included."""
    return Counter(zip(ids, ids[1:]))


def _merge(ids, pair, new_id):
    """Replace each occurrence of ``pair`` in ``ids`` by ``new_id``, left to right:
    _merge([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _vocab(merges):
    """The byte string of every id: a list, vocab[id]."""
    vocab = [bytes([b]) for b in range(256)]
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])
    return vocab


def train_bpe(text, vocab_size):
    """Learn ``vocab_size - 256`` merges from ``text`` (a str); returns them, a list of pairs.

    Each round merges the most frequent adjacent pair of the current ids (overlapping
    occurrences counted, ties to the greatest (bytes(a), bytes(b)), see the module's
    docstring). Training stops early if the text has become a single id (no pair is left).
    Raises ValueError naming ``vocab_size`` if it is below 256.
    """
    if vocab_size < 256:
        raise ValueError("train_bpe: vocab_size must be at least 256 (the bytes), got %d"
                         % vocab_size)
    ids = list(text.encode("utf-8"))
    vocab = _vocab([])
    merges = []
    while len(vocab) < vocab_size:
        counts = _pair_counts(ids)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))
        new_id = len(vocab)
        ids = _merge(ids, pair, new_id)
        merges.append(pair)
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
    return merges


def encode(text, merges):
    """The ids of ``text``: its UTF-8 bytes with the merges applied in the order they were
    learned (merge 0 over the whole sequence, then merge 1, ...)."""
    ids = list(text.encode("utf-8"))
    for index, pair in enumerate(merges):
        ids = _merge(ids, tuple(pair), 256 + index)
    return ids


def decode(ids, merges):
    """The text the ids spell: the bytes of all ids joined, then decoded as UTF-8 (bytes that
    are not valid UTF-8, such as a character cut in two, become U+FFFD: errors="replace").

    Raises ValueError naming the id if one is outside [0, 256 + len(merges)).
    """
    vocab = _vocab(merges)
    pieces = []
    for i in ids:
        if not 0 <= i < len(vocab):
            raise ValueError("decode: id %d is not in the vocabulary of %d ids" % (i, len(vocab)))
        pieces.append(vocab[i])
    return b"".join(pieces).decode("utf-8", errors="replace")
