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
"""

import regex

GPT2_SPLIT_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                      r"""|\s+(?!\S)|\s+""")

_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)


def bytes_to_unicode():
    """GPT-2's map: byte value (0..255) -> the printable character that stands for it (a dict
    int -> str of one character, 256 entries, all different).

    The 188 printable Latin-1 bytes ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the
    other 68, in increasing order, get chr(256), chr(257), ...: 0x20 (space) -> "Ġ" (U+0120),
    0x0A (newline) -> "Ċ" (U+010A).
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def pretokenize(text):
    """The chunks of ``text`` (a list of str, which join back to ``text``), cut by
    GPT2_SPLIT_PATTERN: pretokenize("Hello world's") == ["Hello", " world", "'s"]."""
    return _SPLIT.findall(text)


def _split_on_special(text, special_tokens):
    """[(piece, is_special), ...] joining back to ``text``; scanning from the left, the longest
    special token starting at a place wins."""
    if not special_tokens:
        return [(text, False)] if text else []
    longest_first = sorted(special_tokens, key=len, reverse=True)
    pieces, start, i = [], 0, 0
    while i < len(text):
        for token in longest_first:
            if text.startswith(token, i):
                if start < i:
                    pieces.append((text[start:i], False))
                pieces.append((token, True))
                i += len(token)
                start = i
                break
        else:
            i += 1
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def _merge(tokens, pair, merged):
    """Replace each occurrence of ``pair`` in ``tokens``, left to right, by ``merged``."""
    out, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def _pair_counts(chunks):
    """{(a, b): sum over chunks of count * (occurrences of a then b in the chunk)}."""
    counts = {}
    for tokens, count in chunks.items():
        for pair in zip(tokens, tokens[1:]):
            counts[pair] = counts.get(pair, 0) + count
    return counts


def train_bpe(texts, vocab_size, special_tokens=()):
    """Learn GPT-2-style BPE from ``texts`` (a list of str, each a separate document; chunks
    never cross from one to the next).

    Returns (vocab, merges): vocab a dict id -> bytes (ids 0..255 the bytes, then the merges,
    then ``special_tokens``), merges a list of (bytes, bytes). vocab_size counts all three, so
    vocab_size - 256 - len(special_tokens) merges are learned, fewer if no pair is left.
    Special tokens are cut out of the texts before pre-tokenization (they join no merge).
    Ties: the greatest (a, b) of byte strings among the pairs of equal count.
    Raises ValueError naming ``vocab_size`` if it is below 256 + len(special_tokens).
    """
    if vocab_size < 256 + len(special_tokens):
        raise ValueError("train_bpe: vocab_size must be at least 256 + %d special tokens = %d, "
                         "got %d" % (len(special_tokens), 256 + len(special_tokens),
                                     vocab_size))
    chunks = {}                            # a chunk as a tuple of byte strings -> its count
    for text in texts:
        for piece, is_special in _split_on_special(text, special_tokens):
            if is_special:
                continue
            for chunk in pretokenize(piece):
                tokens = tuple(bytes([b]) for b in chunk.encode("utf-8"))
                chunks[tokens] = chunks.get(tokens, 0) + 1
    merges = []
    while len(merges) < vocab_size - 256 - len(special_tokens):
        counts = _pair_counts(chunks)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], p[0], p[1]))
        merged = pair[0] + pair[1]
        chunks = {tuple(_merge(list(tokens), pair, merged)): count
                  for tokens, count in chunks.items()}
        merges.append(pair)
    vocab = {b: bytes([b]) for b in range(256)}
    for a, b in merges:
        vocab[len(vocab)] = a + b
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    return vocab, merges


def encode(text, vocab, merges, special_tokens=()):
    """The ids of ``text`` (a list of int).

    The special tokens in ``text`` are cut out first (scanning from the left, the longest that
    starts at a place wins) and each becomes the id whose vocab entry is its UTF-8 bytes; the
    pieces between them are pre-tokenized and each chunk is merged by rank (lowest first).
    Raises ValueError naming a special token that is not in ``vocab``.
    """
    token_to_id = {token: i for i, token in vocab.items()}
    for token in special_tokens:
        if token.encode("utf-8") not in token_to_id:
            raise ValueError("encode: the special token %r is not in the vocabulary" % token)
    rank = {tuple(pair): k for k, pair in enumerate(merges)}
    ids = []
    for piece, is_special in _split_on_special(text, special_tokens):
        if is_special:
            ids.append(token_to_id[piece.encode("utf-8")])
            continue
        for chunk in pretokenize(piece):
            tokens = [bytes([b]) for b in chunk.encode("utf-8")]
            while len(tokens) > 1:
                pairs = [p for p in zip(tokens, tokens[1:]) if p in rank]
                if not pairs:
                    break
                pair = min(pairs, key=rank.get)
                tokens = _merge(tokens, pair, pair[0] + pair[1])
            ids.extend(token_to_id[token] for token in tokens)
    return ids


def decode(ids, vocab):
    """The text of ``ids``: the bytes of all ids joined, then decoded as UTF-8 (invalid bytes,
    such as a character cut in two, become U+FFFD: errors="replace").

    Raises ValueError naming the id if one is not in ``vocab``.
    """
    pieces = []
    for i in ids:
        if i not in vocab:
            raise ValueError("decode: id %d is not in the vocabulary (%d ids)"
                             % (i, len(vocab)))
        pieces.append(vocab[i])
    return b"".join(pieces).decode("utf-8", errors="replace")
