"""Step bpe_gpt2 (chapter 16): GPT-2's byte-level BPE, with pre-tokenization and special tokens.

A tokenizer here is two tables:

- ``vocab``: a dict id -> the bytes the token spells. Ids 0..255 are the single bytes
  (``vocab[b] == bytes([b])``), then one id per merge in the order learned
  (``vocab[256 + k] == a + b`` for merge k = (a, b)), then the special tokens in the order
  given (``vocab[i] == token.encode("utf-8")``);
- ``merges``: the learned pairs of byte strings ``(a, b)``, in order. The position of a merge
  in the list is its *rank*.

Pre-tokenization. Before any merge the text is cut into chunks with GPT-2's regular expression
``GPT2_SPLIT_PATTERN`` (``\\p{L}`` a letter, ``\\p{N}`` a digit, of any script: it needs the
``regex`` package). Merges never cross a chunk: "Hello world's" is "Hello", " world", "'s".

Training (``train_bpe``): count every adjacent pair of tokens inside every chunk (a chunk that
occurs n times counts n times; overlapping pairs count: "aaa" holds (a, a) twice), merge the
most frequent pair into a new token, replace it in every chunk (left to right: "aaa" becomes
[aa, a]), repeat. Ties: **among equal counts the lexicographically greatest pair of byte
strings (a, b) is merged first**, compared as Python compares tuples of bytes (a first, then
b; a prefix sorts before its extensions, b"a" < b"ab").

Special tokens (``"<|endoftext|>"``) are whole: training cuts them out of the text before
pre-tokenization, so they take part in no merge; encoding emits their one id. Scanning from
the left, where two special tokens start at the same place, the longest wins.

Encoding a chunk: start from its bytes, one token each; while some adjacent pair is a merge,
merge every occurrence (left to right) of the pair of LOWEST rank. Decoding joins the bytes of
the ids and decodes UTF-8 (a character cut in two becomes U+FFFD).

You write ``bytes_to_unicode``, ``pretokenize``, ``train_bpe``, ``encode`` and ``decode`` (and
any helpers you like, named with a leading underscore). Plain Python and the ``regex`` package
(``pip install regex``; Python's ``re`` has no ``\\p{L}``).
"""

import regex

# GPT-2's pre-tokenization pattern, given: contractions, then a run of letters, of digits or of
# other symbols (each with at most one space in front), then whitespace; "\s+(?!\S)" leaves the
# last space of a run to the word that follows. Use it with regex.findall (case-sensitive).
GPT2_SPLIT_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                      r"""|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    """GPT-2's map: byte value (0..255) -> the printable character that stands for it (a dict
    int -> str of one character, 256 entries, all different).

    The 188 printable Latin-1 bytes ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the
    other 68, in increasing order, get chr(256), chr(257), ...: 0x20 (space) -> "Ġ" (U+0120),
    0x0A (newline) -> "Ċ" (U+010A).
    """
    raise NotImplementedError


def pretokenize(text):
    """The chunks of ``text`` (a list of str, which join back to ``text``), cut by
    GPT2_SPLIT_PATTERN: pretokenize("Hello world's") == ["Hello", " world", "'s"]."""
    raise NotImplementedError


def train_bpe(texts, vocab_size, special_tokens=()):
    """Learn GPT-2-style BPE from ``texts`` (a list of str, each a separate document; chunks
    never cross from one to the next).

    Returns (vocab, merges): vocab a dict id -> bytes (ids 0..255 the bytes, then the merges,
    then ``special_tokens``), merges a list of (bytes, bytes). vocab_size counts all three, so
    vocab_size - 256 - len(special_tokens) merges are learned, fewer if no pair is left.
    Special tokens are cut out of the texts before pre-tokenization (they join no merge).
    Ties: the greatest (a, b) of byte strings among the pairs of equal count.
    Raises ValueError naming ``vocab_size`` if it is below 256 + len(special_tokens).

    Example: train_bpe(["the cat sat"], 257) == ({0: b"\\x00", ..., 255: b"\\xff",
    256: b"at"}, [(b"a", b"t")]).
    """
    raise NotImplementedError


def encode(text, vocab, merges, special_tokens=()):
    """The ids of ``text`` (a list of int).

    The special tokens in ``text`` are cut out first (scanning from the left, the longest that
    starts at a place wins) and each becomes the id whose vocab entry is its UTF-8 bytes; the
    pieces between them are pre-tokenized and each chunk is merged by rank (lowest first).
    Raises ValueError naming a special token that is not in ``vocab``.
    """
    raise NotImplementedError


def decode(ids, vocab):
    """The text of ``ids``: the bytes of all ids joined, then decoded as UTF-8 (invalid bytes,
    such as a character cut in two, become U+FFFD: errors="replace").

    Raises ValueError naming the id if one is not in ``vocab``.
    """
    raise NotImplementedError
