"""``ByteBPETokenizer``: byte-level byte-pair encoding, trained from scratch (as in GPT-2).

The idea
--------
Text is UTF-8 bytes, so the 256 byte values are a vocabulary that can spell ANY text (Chinese
and emoji included): ids 0..255 are the bytes. Training then repeats one step until the
vocabulary is big enough:

    count every adjacent pair of ids in the training text,
    take the most frequent pair (a, b), give it the next free id n,
    replace every (a, b) by n.

Worked example (the classic one): in ``"aaabdaaabac"`` the pair ``(a, a)`` occurs 4 times
(overlapping pairs count, as in GPT-2 and minbpe), more than any other, so the first merge is
``(97, 97) -> 256`` and the text becomes ``[256, a, b, d, 256, a, b, a, c]``. Next ``(a, b)``
and ``(256, a)`` both occur twice; ties go to the smallest pair of ids, ``(97, 98) -> 257``.

Pre-tokenization
----------------
Merges never cross the boundaries of the chunks that ``SPLIT_PATTERN`` cuts the text into, so
a token never glues the end of one word to the start of the next (and "dog." / "dog!" / "dog"
share the token for " dog"). The pattern is GPT-2's, written for Python's ``re`` module, which
has no ``\\p{L}`` / ``\\p{N}``:

    's|'t|'re|'ve|'m|'ll|'d     English contractions
     ?[^\\W\\d_]+                 an optional space and a run of letters  (GPT-2: ' ?\\p{L}+')
     ?\\d+                        an optional space and a run of digits   (GPT-2: ' ?\\p{N}+')
     ?(?:[^\\s\\w]|_)+             an optional space and a run of other symbols
    \\s+(?!\\S)                   whitespace, leaving the last space to the next word
    \\s+                          any remaining whitespace

Every character falls in one of these classes, so the chunks join back to the original text.

Encoding
--------
A chunk's bytes are merged in the order the merges were learned: repeatedly find the adjacent
pair with the lowest merge rank and merge it, until no pair of the chunk has been learned.
Results are cached per chunk (texts repeat their words a lot).

Ids: 0..255 bytes, 256..256+len(merges)-1 merges in the order learned, then the special tokens.
``decode`` joins the bytes and decodes UTF-8; a sequence that cuts a character in the middle
(a sampled one can) shows U+FFFD for the incomplete bytes.
"""

import heapq
import re
import warnings
from collections import Counter, defaultdict

from tinyllm.data.tokenizers.common import (check_special_tokens, check_token_ids, check_type,
                                            read_json, resolve_allowed_special, split_on_special,
                                            write_json)

SPLIT_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+"""
                 r"""|\s+(?!\S)|\s+""")

_FORMAT_VERSION = 1
_CACHE_LIMIT = 100_000


def merge_pair(ids, pair, new_id):
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right:
    merge_pair([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]."""
    a, b = pair
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class ByteBPETokenizer:
    """Byte-level BPE. Train with ``train(text, vocab_size)``; ``vocab_size`` counts the 256
    bytes, the merges and the special tokens.

        tok = ByteBPETokenizer(special_tokens=["<|endoftext|>"])
        tok.train(text, vocab_size=512)
        ids = tok.encode("hello<|endoftext|>", allowed_special="all")
        tok.decode(ids)   # "hello<|endoftext|>"
    """

    def __init__(self, special_tokens=(), pattern=SPLIT_PATTERN):
        self.pattern = pattern
        self._split = re.compile(pattern)
        self._special_names = check_special_tokens(special_tokens, "ByteBPETokenizer")
        self._set_merges([])

    def _set_merges(self, merges):
        """Rebuild the merge table, the id -> bytes table and the special ids from a list of
        pairs in rank order (pair k gets id 256 + k)."""
        self.merges = {}                                # (a, b) -> id, in rank order
        self.vocab = {i: bytes([i]) for i in range(256)}  # id -> the bytes it spells
        for rank, (a, b) in enumerate(merges):
            new_id = 256 + rank
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError("ByteBPETokenizer: merge %d (%r, %r) uses an id that does not "
                                 "exist yet" % (rank, a, b))
            self.merges[(a, b)] = new_id
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        first_special = 256 + len(self.merges)
        self.special_tokens = {t: first_special + k for k, t in enumerate(self._special_names)}
        self._cache = {}

    @property
    def vocab_size(self):
        """Number of ids: 256 bytes + merges + special tokens."""
        return 256 + len(self.merges) + len(self.special_tokens)

    def add_special_tokens(self, tokens):
        """Register more special tokens after training; they take the next free ids."""
        names = check_special_tokens(self._special_names + list(tokens), "ByteBPETokenizer")
        self._special_names = names
        self.special_tokens = {t: 256 + len(self.merges) + k for k, t in enumerate(names)}

    def split_text(self, text):
        """The pre-tokenization chunks of ``text`` (they join back to ``text``)."""
        return self._split.findall(text)

    # ----- training ------------------------------------------------------------------------
    def train(self, text, vocab_size, verbose=False):
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``; returns self.

        Ties between equally frequent pairs go to the smallest pair (a, b), so training is
        deterministic. Special-token strings inside ``text`` are cut out first and never take
        part in a merge. If no pair is left before the vocabulary is full (a tiny text), training
        stops early with a warning and ``vocab_size`` is smaller than asked for.

        Speed: the text is reduced to its distinct chunks with their counts, and after each
        merge only the chunks that contain the merged pair are updated (with their pair counts);
        a heap finds the most frequent pair.
        """
        if not isinstance(text, str):
            raise TypeError("ByteBPETokenizer.train: expected a str, got %s"
                            % type(text).__name__)
        minimum = 256 + len(self._special_names)
        if not isinstance(vocab_size, int) or vocab_size < minimum:
            raise ValueError("ByteBPETokenizer.train: vocab_size must be an int of at least 256 "
                             "bytes + %d special tokens = %d, got %r"
                             % (len(self._special_names), minimum, vocab_size))
        num_merges = vocab_size - minimum
        words, counts = self._distinct_chunks(text)
        merges = _learn_merges(words, counts, num_merges, verbose)
        self._set_merges(merges)
        if len(merges) < num_merges:
            warnings.warn("ByteBPETokenizer.train: the text ran out of pairs to merge after %d of "
                          "%d merges; vocab_size is %d instead of %d (train on more text)"
                          % (len(merges), num_merges, self.vocab_size, vocab_size))
        return self

    def _distinct_chunks(self, text):
        """The distinct chunks of ``text`` as lists of byte values, with how often each occurs."""
        chunk_counts = Counter()
        for piece, is_special in split_on_special(text, set(self._special_names)):
            if not is_special:
                chunk_counts.update(self._split.findall(piece))
        words, counts = [], []
        for chunk, count in sorted(chunk_counts.items()):
            words.append(list(_utf8(chunk, "train")))
            counts.append(count)
        return words, counts

    # ----- encoding and decoding -----------------------------------------------------------
    def encode(self, text, allowed_special="none"):
        """The ids of ``text``. ``allowed_special``: "none" (default), "all" or a set of special
        tokens to read as single ids (see ``tinyllm.data.tokenizers.common``)."""
        if not isinstance(text, str):
            raise TypeError("ByteBPETokenizer.encode: expected a str, got %s"
                            % type(text).__name__)
        allowed = resolve_allowed_special(allowed_special, self.special_tokens,
                                          "ByteBPETokenizer")
        ids = []
        for piece, is_special in split_on_special(text, allowed):
            if is_special:
                ids.append(self.special_tokens[piece])
                continue
            for chunk in self._split.findall(piece):
                ids.extend(self._encode_chunk(chunk))
        return ids

    def _encode_chunk(self, chunk):
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(_utf8(chunk, "encode"))
        merges = self.merges
        while len(ids) >= 2:
            # the learned pair with the lowest rank (= lowest id) among this chunk's pairs
            pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            ids = merge_pair(ids, pair, merges[pair])
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def decode(self, ids):
        """The text of ``ids``: their bytes joined and decoded as UTF-8 (special tokens come back
        as their strings; incomplete characters as U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids):
        """The raw bytes that ``ids`` spell."""
        special_bytes = {i: t.encode("utf-8") for t, i in self.special_tokens.items()}
        vocab = self.vocab
        return b"".join(vocab[i] if i in vocab else special_bytes[i]
                        for i in check_token_ids(ids, self.vocab_size, "ByteBPETokenizer"))

    # ----- files ---------------------------------------------------------------------------
    def to_dict(self):
        """A JSON-ready description: merges as [a, b] pairs of ids in rank order, so any bytes
        survive the round trip."""
        return {"type": "ByteBPETokenizer", "version": _FORMAT_VERSION, "pattern": self.pattern,
                "merges": [list(pair) for pair in self.merges],
                "special_tokens": self.special_tokens}

    @classmethod
    def from_dict(cls, data, path=None):
        check_type(data, "ByteBPETokenizer", path)
        try:
            special = data["special_tokens"]
            tok = cls(special_tokens=sorted(special, key=special.get), pattern=data["pattern"])
            merges = [(a, b) for a, b in data["merges"]]
            if not all(isinstance(x, int) for pair in merges for x in pair):
                raise ValueError("merges must be pairs of integer ids")
            tok._set_merges(merges)
        except (KeyError, TypeError, AttributeError, ValueError, re.error) as error:
            raise ValueError("ByteBPETokenizer file %s is malformed: %s" % (path, error)) from None
        if tok.special_tokens != special:
            raise ValueError("ByteBPETokenizer file %s is malformed: special token ids %s do not "
                             "follow the %d merges" % (path, special, len(tok.merges)))
        return tok

    def save(self, path):
        """Write the tokenizer to ``path`` as JSON (atomically); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by ``save``."""
        return cls.from_dict(read_json(path, "tokenizer"), path)

    def __repr__(self):
        return "ByteBPETokenizer(vocab_size=%d, merges=%d, special_tokens=%s)" % (
            self.vocab_size, len(self.merges), list(self.special_tokens))


def _utf8(text, where):
    """``text`` as UTF-8 bytes, with a clear error for lone surrogates (which have none)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start]
        raise ValueError("ByteBPETokenizer.%s: the text contains the lone surrogate U+%04X, "
                         "which is not a character and has no UTF-8 bytes"
                         % (where, ord(bad))) from None


def _learn_merges(words, counts, num_merges, verbose=False, prefer_greatest_bytes=False):
    """The BPE training loop on distinct chunks.

    words: list of chunks, each a list of ids (modified in place); counts: how often each chunk
    occurs. Returns the learned pairs in order; pair k became id 256 + k.

    Ties between equally frequent pairs: the smallest pair of ids (a, b) wins, or, with
    ``prefer_greatest_bytes``, the greatest pair of byte strings (vocab[a], vocab[b]) (the rule
    of ``BPETokenizer``).

    Bookkeeping: ``pair_counts[p]`` = sum over chunks of count * (occurrences of p in the chunk);
    ``where[p]`` = the chunks that may contain p; ``heap`` holds (-count, tie key, pair) entries,
    some stale: an entry is used only if its count is still the pair's current count.
    """
    pair_counts = defaultdict(int)
    where = defaultdict(set)
    for index, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where[pair].add(index)
    vocab = {i: bytes([i]) for i in range(256)}
    # heapq pops the smallest entry; to pop the greatest bytes first, compare strings in which
    # byte x is chr(255 - x), ended by chr(256) so that a prefix sorts after its extensions.
    descending = {i: chr(255 - i) + chr(256) for i in range(256)}

    def tie_key(pair):
        if prefer_greatest_bytes:
            return descending[pair[0]], descending[pair[1]]
        return pair

    heap = [(-count, tie_key(pair), pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while len(merges) < num_merges:
        best = None
        while heap:
            negative_count, _, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) == -negative_count > 0:
                best = pair
                break
        if best is None:
            break                                       # no pairs left: the text is used up
        new_id = 256 + len(merges)
        merges.append(best)
        vocab[new_id] = vocab[best[0]] + vocab[best[1]]
        descending[new_id] = "".join(chr(255 - x) for x in vocab[new_id]) + chr(256)
        if verbose:
            print("merge %d/%d: %s -> %d (%r) had %d occurrences"
                  % (len(merges), num_merges, best, new_id, vocab[new_id], -negative_count))

        changed = set()
        for index in where.pop(best):
            word = words[index]
            new_word = merge_pair(word, best, new_id)
            if len(new_word) == len(word):
                continue                                # a stale entry of `where`
            count = counts[index]
            for pair in zip(word, word[1:]):
                pair_counts[pair] -= count
                changed.add(pair)
            for pair in zip(new_word, new_word[1:]):
                pair_counts[pair] += count
                where[pair].add(index)
                changed.add(pair)
            words[index] = new_word
        for pair in changed:
            count = pair_counts[pair]
            if count > 0:
                heapq.heappush(heap, (-count, tie_key(pair), pair))
            else:
                del pair_counts[pair]
    return merges
