"""``BPETokenizer``: GPT-2's byte-level BPE; reads and writes GPT-2's and Hugging Face's files.

A ``BPETokenizer`` is two tables and a regular expression:

- ``vocab``: id -> the bytes the token spells (GPT-2: 50,257 ids; ids 0..255 spell the 256 bytes
  in GPT-2's own order, id 50256 is ``<|endoftext|>``);
- ``merges``: the pairs of byte strings ``(a, b)`` learned in training, in order. The position of a
  pair in this list is its *rank*: rank 0 was learned first, from the most frequent pair;
- ``pattern``: the pre-tokenization regex that cuts text into chunks ("words") before any merge.

Encoding ``text``
-----------------
1. Cut out the special tokens (``<|endoftext|>``); each one becomes its single id. Where two
   special tokens could start at the same place the longest wins (``<|a|><|b|>`` before ``<|a|>``).
2. Cut the rest into chunks with ``pattern``, GPT-2's by default (``GPT2_SPLIT_PATTERN``)::

       's|'t|'re|'ve|'m|'ll|'d     English contractions
        ?\\p{L}+                    an optional space and a run of letters (any script)
        ?\\p{N}+                    an optional space and a run of digits
        ?[^\\s\\p{L}\\p{N}]+          an optional space and a run of other symbols
       \\s+(?!\\S)                  whitespace, leaving the last space to the next word
       \\s+                         any remaining whitespace

   ``\\p{L}`` and ``\\p{N}`` need the ``regex`` package (``pip install tinyllm[tokenizers]``);
   Python's ``re`` has no Unicode classes.
3. Merge each chunk: start from its UTF-8 bytes, one token each; while some adjacent pair of
   tokens is in ``merges``, merge every occurrence (left to right) of the pair with the LOWEST
   rank. The ids of the final tokens are the chunk's ids. A text repeats its words, so the result
   of each chunk is cached.

Decoding joins the bytes of the ids and decodes UTF-8 (U+FFFD for a character cut in the middle).

GPT-2's byte-to-unicode map
---------------------------
GPT-2's files (``vocab.json``, ``merges.txt``) and Hugging Face's ``tokenizer.json`` store tokens
as *strings*, not bytes, and a space separates the two halves of a merge. So every byte is first
given a visible character (``bytes_to_unicode``): the 188 printable Latin-1 bytes (``!``..``~``,
``¡``..``¬``, ``®``..``ÿ``) stand for themselves and the other 68 (controls, space, ...) get the
characters U+0100, U+0101, ... in order. The space 0x20 becomes ``Ġ`` (U+0120), the newline 0x0A
``Ċ`` (U+010A): GPT-2's token ``Ġthe`` is the bytes ``b" the"``.

Training
--------
``BPETokenizer.train_from_iterator(texts, vocab_size, special_tokens)`` (or ``train_from_files``)
learns merges as in GPT-2: count the adjacent pairs of every chunk, merge the most frequent pair,
repeat. The tie-break is part of the definition: **among pairs with equal counts, the
lexicographically greatest pair of byte strings ``(a, b)`` is merged first** (compare ``a``, then
``b``, as Python compares ``(bytes, bytes)`` tuples). Pair counts are updated after each merge for
the chunks that held the pair, never recounted. The ids of a trained tokenizer: 0..255 the bytes
(id = byte value), then the merges in order, then the special tokens.
"""

import json
from collections import Counter
from pathlib import Path

from tinyllm.data.tokenizers.bpe import _learn_merges, merge_pair
from tinyllm.data.tokenizers.common import (check_special_tokens, resolve_allowed_special,
                                            split_on_special, write_json)

GPT2_SPLIT_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                      r"""|\s+(?!\S)|\s+""")

_CACHE_LIMIT = 100_000


def bytes_to_unicode():
    """GPT-2's map byte value (0..255) -> a printable character standing for it.

    Printable Latin-1 bytes map to themselves; the remaining 68 bytes, in increasing order, map to
    chr(256), chr(257), ...: bytes_to_unicode()[ord(" ")] == "Ġ" and [ord("\\n")] == "Ċ".
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


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}


def token_to_string(token):
    """A token's bytes written with GPT-2's byte-to-unicode map: b" the" -> "Ġthe"."""
    return "".join(BYTE_TO_UNICODE[b] for b in token)


def string_to_token(string, where="BPETokenizer"):
    """The inverse of ``token_to_string``: "Ġthe" -> b" the"; a character outside the map is an
    error naming ``where`` (a file of another kind of tokenizer)."""
    try:
        return bytes(UNICODE_TO_BYTE[c] for c in string)
    except KeyError as error:
        raise ValueError("%s: token %r holds the character %r, which is not in GPT-2's "
                         "byte-to-unicode alphabet; this is not a byte-level BPE vocabulary"
                         % (where, string, error.args[0])) from None


def compile_pattern(pattern):
    """``pattern`` compiled with the ``regex`` package (needed for ``\\p{L}`` and ``\\p{N}``)."""
    try:
        import regex
    except ImportError:
        raise ImportError("BPETokenizer needs the 'regex' package for GPT-2's pre-tokenization "
                          "pattern (\\p{L}, \\p{N}); install it with: pip install "
                          "'tinyllm[tokenizers]'  (or: pip install regex)") from None
    return regex.compile(pattern)


def split_streamed_text(strings):
    """Regroup an iterable of strings (e.g. the lines of a file) into blocks whose pre-tokenization
    chunks are exactly those of the whole text, holding only one line's worth of text at a time.

    A block ends just after a line break "\\n" that has a non-whitespace character on both sides.
    There the whole text has the chunk "\\n" by itself (a run of one whitespace character before
    a letter or symbol), and so does the block, which ends with it; no chunk of GPT-2's pattern
    (or Llama 3's) runs past that line break into the next line, and no match looks behind. So the
    chunks of the blocks are those of the whole text. (A run of two or more whitespace
    characters is no place to cut: before a word its last character goes to the next chunk,
    at the end of a text it does not.) Memory: the longest stretch of text without such a line
    break (a line or a paragraph of indented code, for a file).
    """
    buffer = ""
    for string in strings:
        if not isinstance(string, str):
            raise TypeError("BPETokenizer: expected an iterable of str (e.g. a file opened in "
                            "text mode), got an item of type %s" % type(string).__name__)
        start = max(len(buffer) - 2, 1)         # the text before was searched already
        buffer += string
        cut = buffer.rfind("\n", start, len(buffer) - 1)
        while cut >= start and (buffer[cut + 1].isspace() or buffer[cut - 1].isspace()):
            cut = buffer.rfind("\n", start, cut)
        if cut >= start:
            yield buffer[:cut + 1]
            buffer = buffer[cut + 1:]
    if buffer:
        yield buffer


class BPETokenizer:
    """Byte-level BPE with GPT-2's pre-tokenization, merge order and file formats.

        tok = BPETokenizer.from_files("vocab.json", "merges.txt", ["<|endoftext|>"])  # GPT-2
        tok = BPETokenizer.from_tokenizer_json("tokenizer.json")                       # HF
        tok = BPETokenizer.train_from_iterator(lines, vocab_size=1000,
                                               special_tokens=["<|endoftext|>"])
        ids = tok.encode("Hello world<|endoftext|>")
        tok.decode(ids)        # "Hello world<|endoftext|>"
        tok.save("my_tokenizer")   # vocab.json, merges.txt and tokenizer.json

    vocab: dict id -> bytes; merges: list of (bytes, bytes) in rank order, each half and their
    concatenation in ``vocab``; special_tokens: a list of strings (an id is taken from ``vocab`` if
    it holds the token's bytes, as GPT-2's holds ``<|endoftext|>``, else the next free id) or a
    dict string -> id. ``ignore_merges`` (from some ``tokenizer.json`` files): a chunk that is
    itself in the vocabulary becomes its one id without merging.
    """

    def __init__(self, vocab, merges, special_tokens=None, pattern=GPT2_SPLIT_PATTERN,
                 ignore_merges=False):
        self.vocab = self._check_vocab(vocab)
        self.token_to_id = {token: i for i, token in self.vocab.items()}
        self.merges = [(bytes(a), bytes(b)) for a, b in merges]
        self.pattern = pattern
        self.ignore_merges = bool(ignore_merges)
        self._split = compile_pattern(pattern)
        self.merge_ranks = {}             # (id_a, id_b) -> (rank, id of the merged token)
        for rank, (a, b) in enumerate(self.merges):
            self.merge_ranks[(self._id_of_merge_part(a, rank, a, b),
                              self._id_of_merge_part(b, rank, a, b))] = (
                rank, self._id_of_merge_part(a + b, rank, a, b))
        self.special_tokens = self._assign_special_ids(special_tokens)
        self.id_to_bytes = dict(self.vocab)
        for token, i in self.special_tokens.items():
            self.id_to_bytes[i] = token.encode("utf-8")
        self.byte_ids = [self.token_to_id.get(bytes([b])) for b in range(256)]
        self._cache = {}

    # ----- construction --------------------------------------------------------------------
    @staticmethod
    def _check_vocab(vocab):
        if not isinstance(vocab, dict):
            raise TypeError("BPETokenizer: vocab must be a dict id -> bytes, got %s"
                            % type(vocab).__name__)
        checked, seen = {}, {}
        for i, token in vocab.items():
            if not isinstance(i, int) or i < 0 or not isinstance(token, (bytes, bytearray)):
                raise TypeError("BPETokenizer: vocab must map ids (ints >= 0) to bytes, got "
                                "%r -> %r" % (i, token))
            if token in seen:
                raise ValueError("BPETokenizer: ids %d and %d both spell %r; each token must "
                                 "appear once in the vocabulary" % (seen[token], i, token))
            seen[bytes(token)] = i
            checked[i] = bytes(token)
        return checked

    def _id_of_merge_part(self, token, rank, a, b):
        if token not in self.token_to_id:
            raise ValueError("BPETokenizer: merge %d (%r, %r) needs the token %r, which is not "
                             "in the vocabulary" % (rank, a, b, token))
        return self.token_to_id[token]

    def _assign_special_ids(self, special_tokens):
        if isinstance(special_tokens, dict):
            names = check_special_tokens(list(special_tokens), "BPETokenizer")
            ids = dict(special_tokens)
            for name, i in ids.items():
                if not isinstance(i, int) or i < 0:
                    raise ValueError("BPETokenizer: special token %r has id %r, expected an int "
                                     ">= 0" % (name, i))
                if i in self.vocab and self.vocab[i] != name.encode("utf-8"):
                    raise ValueError("BPETokenizer: special token %r has id %d, which the "
                                     "vocabulary already uses for %r"
                                     % (name, i, self.vocab[i]))
        else:
            names = check_special_tokens(special_tokens or (), "BPETokenizer")
            ids = {}
            next_id = max(self.vocab, default=-1) + 1
            for name in names:
                existing = self.token_to_id.get(name.encode("utf-8"))
                if existing is None:
                    existing, next_id = next_id, next_id + 1
                ids[name] = existing
        if len(set(ids.values())) != len(ids):
            raise ValueError("BPETokenizer: two special tokens share an id: %s" % ids)
        return {name: ids[name] for name in names}

    @classmethod
    def from_files(cls, vocab_path, merges_path, special_tokens=None,
                   pattern=GPT2_SPLIT_PATTERN):
        """Read GPT-2's ``vocab.json`` (token string -> id) and ``merges.txt`` (a "#version"
        line, then one merge per line: the two token strings separated by one space)."""
        vocab = _read_vocab_json(vocab_path, special_tokens)
        merges = _read_merges_txt(merges_path)
        _check_merges_in_vocab(merges, vocab, merges_path, vocab_path)
        return cls(vocab, merges, special_tokens, pattern)

    @classmethod
    def from_tokenizer_json(cls, path):
        """Read a Hugging Face ``tokenizer.json`` of a byte-level BPE (GPT-2, RoBERTa-style
        ``ByteLevel`` pre-tokenizer, or ``Split`` + ``ByteLevel(use_regex=False)`` as in Llama 3).
        Its added tokens marked ``special`` become the special tokens."""
        data = _read_json_object(path, "tokenizer.json")
        pattern, ignore_merges = _check_byte_level_bpe(data, path)
        model = data["model"]
        special = {}
        for added in data.get("added_tokens") or []:
            if isinstance(added, dict) and added.get("special", False):
                special[added["content"]] = added["id"]
        vocab = _vocab_from_strings(model.get("vocab"), path, special)
        merges = _parse_merges(model.get("merges"), path)
        _check_merges_in_vocab(merges, vocab, path, path)
        return cls(vocab, merges, special, pattern, ignore_merges)

    @classmethod
    def load(cls, folder):
        """Read a tokenizer written by ``save(folder)`` (its ``tokenizer.json``)."""
        return cls.from_tokenizer_json(Path(folder) / "tokenizer.json")

    # ----- training ------------------------------------------------------------------------
    @classmethod
    def train_from_iterator(cls, texts, vocab_size, special_tokens=None,
                            pattern=GPT2_SPLIT_PATTERN, verbose=False):
        """Learn a tokenizer of ``vocab_size`` ids (256 bytes + merges + special tokens) from an
        iterable of strings, each a separate document: no chunk crosses from one to the next.
        Special tokens in the text are cut out and never take part in a merge. Ties between
        equally frequent pairs go to the greatest pair of byte strings (see the module doc)."""
        if isinstance(texts, str):
            texts = [texts]
        names = check_special_tokens(special_tokens or (), "BPETokenizer")
        minimum = 256 + len(names)
        if not isinstance(vocab_size, int) or vocab_size < minimum:
            raise ValueError("BPETokenizer.train: vocab_size must be an int of at least 256 "
                             "bytes + %d special tokens = %d, got %r"
                             % (len(names), minimum, vocab_size))
        split = compile_pattern(pattern)
        chunk_counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError("BPETokenizer.train: expected strings, got %s"
                                % type(text).__name__)
            for piece, is_special in split_on_special(text, set(names)):
                if not is_special:
                    chunk_counts.update(split.findall(piece))
        words, counts = [], []
        for chunk, count in sorted(chunk_counts.items()):
            words.append(list(_utf8(chunk, "train")))
            counts.append(count)
        pairs = _learn_merges(words, counts, vocab_size - minimum, verbose,
                              prefer_greatest_bytes=True)
        vocab = {i: bytes([i]) for i in range(256)}
        merges = []
        for a, b in pairs:
            merges.append((vocab[a], vocab[b]))
            vocab[len(vocab)] = vocab[a] + vocab[b]
        return cls(vocab, merges, names, pattern)

    @classmethod
    def train_from_files(cls, paths, vocab_size, special_tokens=None,
                         pattern=GPT2_SPLIT_PATTERN, verbose=False):
        """``train_from_iterator`` on UTF-8 text files, each one document, read a line at a
        time (``split_streamed_text`` keeps the chunks those of the whole file)."""
        if isinstance(paths, (str, Path)):
            paths = [paths]

        def documents():
            for path in paths:
                with open(path, encoding="utf-8") as f:
                    yield from split_streamed_text(f)
        return cls.train_from_iterator(documents(), vocab_size, special_tokens, pattern,
                                       verbose)

    # ----- encoding and decoding -----------------------------------------------------------
    @property
    def vocab_size(self):
        """The number of rows an embedding table needs: the largest id + 1."""
        return max(self.id_to_bytes, default=-1) + 1

    def split_text(self, text):
        """The pre-tokenization chunks of ``text`` (they join back to ``text``)."""
        return self._split.findall(text)

    def encode(self, text, allowed_special="all"):
        """The ids of ``text``. ``allowed_special``: which special tokens are read as their one id:
        "all" (the default, as Hugging Face's tokenizers do), "none" (their text is encoded like
        any other, so a user's text cannot forge them), or a set of names."""
        if not isinstance(text, str):
            raise TypeError("BPETokenizer.encode: expected a str, got %s" % type(text).__name__)
        allowed = resolve_allowed_special(allowed_special, self.special_tokens, "BPETokenizer")
        ids = []
        cache = self._cache
        for piece, is_special in split_on_special(text, allowed):
            if is_special:
                ids.append(self.special_tokens[piece])
                continue
            for chunk in self._split.findall(piece):
                chunk_ids = cache.get(chunk)
                if chunk_ids is None:
                    chunk_ids = self._encode_chunk(chunk)
                ids.extend(chunk_ids)
        return ids

    def encode_iterable(self, strings, allowed_special="all"):
        """Yield the ids of the concatenated ``strings`` (e.g. a file object, line by line) one by
        one, in memory bounded by the longest line: the same ids as ``encode("".join(strings))``.
        """
        for block in split_streamed_text(strings):
            yield from self.encode(block, allowed_special)

    def _encode_chunk(self, chunk):
        """The ids of one pre-tokenization chunk: its bytes merged by rank, lowest first."""
        data = _utf8(chunk, "encode")
        if self.ignore_merges and data in self.token_to_id:
            ids = [self.token_to_id[data]]
        else:
            ids = [self.byte_ids[b] for b in data]
            if None in ids:
                missing = data[ids.index(None)]
                raise ValueError("BPETokenizer.encode: the byte 0x%02X of %r has no token; a "
                                 "byte-level vocabulary must hold all 256 single bytes"
                                 % (missing, chunk))
            ranks = self.merge_ranks
            while len(ids) >= 2:
                best = None
                for pair in zip(ids, ids[1:]):
                    found = ranks.get(pair)
                    if found is not None and (best is None or found[0] < best[1][0]):
                        best = (pair, found)
                if best is None:
                    break
                ids = merge_pair(ids, best[0], best[1][1])
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def decode_bytes(self, ids):
        """The bytes that ``ids`` spell, joined."""
        id_to_bytes = self.id_to_bytes
        try:
            return b"".join([id_to_bytes[i] for i in ids])
        except (KeyError, TypeError):
            pass
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) and not hasattr(i, "__index__"):
                raise TypeError("BPETokenizer.decode: token ids must be integers, got %r" % (i,))
            if int(i) not in id_to_bytes:
                raise ValueError("BPETokenizer.decode: id %d is not in the vocabulary (ids run "
                                 "from 0 to %d)" % (int(i), self.vocab_size - 1))
        return b"".join(id_to_bytes[int(i)] for i in ids)

    def decode(self, ids):
        """The text of ``ids`` (special tokens as their strings, a cut character as U+FFFD)."""
        if isinstance(ids, (str, bytes)):
            raise TypeError("BPETokenizer.decode: expected a sequence of token ids, got %s"
                            % type(ids).__name__)
        if hasattr(ids, "data") and hasattr(ids, "backward"):     # a tinyllm Tensor
            ids = ids.data
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ----- files ---------------------------------------------------------------------------
    def save(self, folder):
        """Write ``vocab.json`` and ``merges.txt`` (GPT-2's format) and ``tokenizer.json``
        (Hugging Face's) into ``folder``; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {token_to_string(token): i for i, token in sorted(self.id_to_bytes.items())}
        merges = ["%s %s" % (token_to_string(a), token_to_string(b)) for a, b in self.merges]
        write_json(folder / "vocab.json", vocab)
        with open(folder / "merges.txt", "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(line + "\n" for line in merges)
        write_json(folder / "tokenizer.json", self.to_tokenizer_json(vocab, merges))
        return folder

    def to_tokenizer_json(self, vocab=None, merges=None):
        """The Hugging Face ``tokenizer.json`` description of this tokenizer, as a dict."""
        if vocab is None:
            vocab = {token_to_string(token): i for i, token in sorted(self.id_to_bytes.items())}
        if merges is None:
            merges = ["%s %s" % (token_to_string(a), token_to_string(b)) for a, b in self.merges]
        added = [{"id": i, "content": name, "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": True}
                 for name, i in self.special_tokens.items()]
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True}
        if self.pattern == GPT2_SPLIT_PATTERN:
            pre_tokenizer = byte_level
        else:
            pre_tokenizer = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated",
                 "invert": False},
                dict(byte_level, use_regex=False)]}
        return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
                "normalizer": None, "pre_tokenizer": pre_tokenizer,
                "post_processor": dict(byte_level, trim_offsets=False),
                "decoder": byte_level,
                "model": {"type": "BPE", "dropout": None, "unk_token": None,
                          "continuing_subword_prefix": None, "end_of_word_suffix": None,
                          "fuse_unk": False, "byte_fallback": False,
                          "ignore_merges": self.ignore_merges, "vocab": vocab,
                          "merges": merges}}

    def __repr__(self):
        return "BPETokenizer(vocab_size=%d, merges=%d, special_tokens=%s)" % (
            self.vocab_size, len(self.merges), list(self.special_tokens))


def _utf8(text, where):
    """``text`` as UTF-8 bytes, with a clear error for lone surrogates (which have none)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("BPETokenizer.%s: the text contains the lone surrogate U+%04X, which is "
                         "not a character and has no UTF-8 bytes"
                         % (where, ord(text[error.start]))) from None


# ----- reading files ------------------------------------------------------------------------
def _read_json_object(path, what):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("%s file %s does not exist" % (what, path))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError("%s is not valid JSON (%s); is it a %s file?"
                         % (path, error, what)) from None
    if not isinstance(data, dict):
        raise ValueError("%s does not hold a JSON object; a %s file maps strings to values"
                         % (path, what))
    return data


def _vocab_from_strings(strings, path, special_tokens=()):
    """vocab.json's {token string: id} as {id: bytes}. A string outside GPT-2's byte alphabet is
    allowed only for a special token (spelled by its UTF-8 bytes)."""
    if not isinstance(strings, dict) or not strings:
        raise ValueError("%s: the vocabulary must be a non-empty JSON object token -> id"
                         % path)
    vocab = {}
    for string, i in strings.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise ValueError("%s: token %r has id %r; ids must be integers >= 0"
                             % (path, string, i))
        if i in vocab:
            raise ValueError("%s: id %d is given to two tokens" % (path, i))
        if string in special_tokens:
            vocab[i] = string.encode("utf-8")
        else:
            vocab[i] = string_to_token(string, str(path))
    return vocab


def _read_vocab_json(path, special_tokens):
    data = _read_json_object(path, "vocab.json")
    return _vocab_from_strings(data, path, set(special_tokens or ()))


def _parse_merge_line(line, where):
    parts = line.split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError("%s: %r is not a merge; expected two tokens separated by one space"
                         % (where, line))
    return (string_to_token(parts[0], where), string_to_token(parts[1], where))


def _read_merges_txt(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("merges.txt file %s does not exist" % path)
    merges = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if (number == 1 and line.startswith("#version")) or not line:
                continue
            merges.append(_parse_merge_line(line, "%s line %d" % (path, number)))
    return merges


def _parse_merges(merges, path):
    """tokenizer.json's merges: "a b" strings (older files) or [a, b] pairs (newer ones)."""
    if not isinstance(merges, list):
        raise ValueError("%s: model.merges must be a list of merges" % path)
    pairs = []
    for k, merge in enumerate(merges):
        where = "%s merge %d" % (path, k)
        if isinstance(merge, str):
            pairs.append(_parse_merge_line(merge, where))
        elif isinstance(merge, list) and len(merge) == 2 and all(isinstance(m, str)
                                                                  for m in merge):
            pairs.append((string_to_token(merge[0], where), string_to_token(merge[1], where)))
        else:
            raise ValueError("%s is %r; expected \"a b\" or [\"a\", \"b\"]" % (where, merge))
    return pairs


def _check_merges_in_vocab(merges, vocab, merges_path, vocab_path):
    known = set(vocab.values())
    for rank, (a, b) in enumerate(merges):
        for token in (a, b, a + b):
            if token not in known:
                raise ValueError("%s: merge %d (%r %r) names the token %r, which is not in "
                                 "the vocabulary of %s; are the two files from the same "
                                 "tokenizer?" % (merges_path, rank, token_to_string(a),
                                                 token_to_string(b), token_to_string(token),
                                                 vocab_path))


def _check_byte_level_bpe(data, path):
    """The split pattern and ``ignore_merges`` of a byte-level BPE ``tokenizer.json``; a clear
    error for any other kind of tokenizer."""
    model = data.get("model")
    if not isinstance(model, dict):
        raise ValueError("%s has no \"model\" object; is it a Hugging Face tokenizer.json?"
                         % path)
    kind = model.get("type", "BPE" if "merges" in model else None)
    if kind != "BPE":
        raise ValueError("%s holds a %s model; BPETokenizer reads byte-level BPE tokenizers "
                         "(GPT-2 style) only, not WordPiece or Unigram ones" % (path, kind))
    for option in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(option):
            raise ValueError("%s: model.%s is %r; BPETokenizer reads byte-level BPE without "
                             "subword affixes only" % (path, option, model[option]))
    if model.get("byte_fallback"):
        raise ValueError("%s: model.byte_fallback is set (a SentencePiece-style BPE); "
                         "BPETokenizer reads byte-level BPE (GPT-2 style) only" % path)
    if model.get("dropout"):
        raise ValueError("%s: model.dropout is %r; BPETokenizer encodes deterministically "
                         "(BPE-dropout is not supported)" % (path, model["dropout"]))
    if data.get("normalizer") is not None:
        raise ValueError("%s has a normalizer (%s); BPETokenizer reads byte-level BPE "
                         "without normalization only"
                         % (path, data["normalizer"].get("type")
                            if isinstance(data["normalizer"], dict) else data["normalizer"]))
    pre = data.get("pre_tokenizer")
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and \
        pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") if isinstance(step, dict) else step for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        pattern = GPT2_SPLIT_PATTERN
    elif (kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True)
          and isinstance(steps[0].get("pattern"), dict) and "Regex" in steps[0]["pattern"]
          and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert")):
        pattern = steps[0]["pattern"]["Regex"]
    else:
        raise ValueError("%s: the pre-tokenizer is %s; BPETokenizer reads byte-level BPE "
                         "tokenizers, whose pre-tokenizer is ByteLevel (or Split by a regex, "
                         "then ByteLevel without its regex)" % (path, kinds))
    if steps[-1].get("add_prefix_space"):
        raise ValueError("%s: the ByteLevel pre-tokenizer has add_prefix_space=true; "
                         "BPETokenizer encodes text as it is (add_prefix_space=false)" % path)
    return pattern, model.get("ignore_merges", False)
