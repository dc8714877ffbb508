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

You write ``train_bpe``, ``encode`` and ``decode`` (and any helpers you like, named with a
leading underscore). Plain Python and NumPy only.
"""

from collections import Counter


def train_bpe(text, vocab_size):
    """Learn ``vocab_size - 256`` merges from ``text`` (a str); returns them, a list of pairs.

    Each round merges the most frequent adjacent pair of the current ids (overlapping
    occurrences counted, ties to the greatest (bytes(a), bytes(b)), see the module's
    docstring). Training stops early if the text has become a single id (no pair is left).
    Raises ValueError naming ``vocab_size`` if it is below 256.

    Example: train_bpe("aaabdaaabac", 257) == [(97, 97)]  ((a, a) occurs 4 times).
    """
    raise NotImplementedError


def encode(text, merges):
    """The ids of ``text`` (a list of ints): its UTF-8 bytes with the merges applied in the
    order they were learned (merge 0 over the whole sequence, then merge 1, ...)."""
    raise NotImplementedError


def decode(ids, merges):
    """The text the ids spell: the bytes of all ids joined, then decoded as UTF-8 (bytes that
    are not valid UTF-8, such as a character cut in two, become U+FFFD: errors="replace").

    Raises ValueError naming the id if one is outside [0, 256 + len(merges)).
    """
    raise NotImplementedError
