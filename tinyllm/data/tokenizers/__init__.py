"""Tokenizers: text <-> lists of integer ids.

- ``CharTokenizer``: one id per character (a vocabulary of a few dozen ids for English).
- ``ByteBPETokenizer``: byte-level byte-pair encoding trained from scratch, as in GPT-2; it can
  encode any text, whatever characters it holds.
- ``BPETokenizer``: GPT-2's byte-level BPE exactly (its pre-tokenization regex, byte-to-unicode
  map and merge order): reads and writes GPT-2's ``vocab.json`` + ``merges.txt`` and Hugging
  Face's ``tokenizer.json``, trains, and streams ids from a file (``encode_iterable``). Needs the
  optional ``regex`` package.

Both have ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``, a
``special_tokens`` dict (string -> id) and ``save(path)`` / ``load(path)`` as JSON.
``load_tokenizer(path)`` reads either kind of file.
"""

from pathlib import Path

from tinyllm.data.tokenizers.bpe import SPLIT_PATTERN, ByteBPETokenizer
from tinyllm.data.tokenizers.char import CharTokenizer
from tinyllm.data.tokenizers.common import read_json
from tinyllm.data.tokenizers.gpt2 import GPT2_SPLIT_PATTERN, BPETokenizer, bytes_to_unicode

# The tokenizer classes by the "type" field of their JSON files.
TOKENIZER_TYPES = {"CharTokenizer": CharTokenizer, "ByteBPETokenizer": ByteBPETokenizer}


def tokenizer_from_dict(data, path=None):
    """The tokenizer described by ``data`` (a dict made by ``to_dict``)."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in TOKENIZER_TYPES:
        where = " in %s" % path if path is not None else ""
        raise ValueError("unknown tokenizer type %r%s; expected one of %s"
                         % (kind, where, sorted(TOKENIZER_TYPES)))
    return TOKENIZER_TYPES[kind].from_dict(data, path)


def load_tokenizer(path):
    """Read a tokenizer JSON file written by ``save``, whichever kind it is; a folder holding a
    ``tokenizer.json``, or a Hugging Face ``tokenizer.json`` itself, gives a ``BPETokenizer``."""
    if Path(path).is_dir():
        return BPETokenizer.load(path)
    data = read_json(path, "tokenizer")
    if "model" in data and "type" not in data:
        return BPETokenizer.from_tokenizer_json(path)
    return tokenizer_from_dict(data, path)


__all__ = ["CharTokenizer", "ByteBPETokenizer", "SPLIT_PATTERN", "BPETokenizer",
           "GPT2_SPLIT_PATTERN", "bytes_to_unicode", "load_tokenizer",
           "tokenizer_from_dict", "TOKENIZER_TYPES"]
