"""What both tokenizers share: special tokens and their JSON files.

Special tokens
--------------
A special token such as ``"<|endoftext|>"``, ``"<pad>"``, ``"<mask>"``, ``"<bos>"`` or
``"<eos>"`` is a string that gets ONE id of its own, placed after the ordinary vocabulary.
``encode(text, allowed_special=...)`` decides, per call, which of them are read as that single
id when their text appears in ``text``:

- ``"none"`` (the default): no special token is recognised; the characters ``<pad>`` in a
  user's text are encoded as ordinary text, like any other string. Text typed by a user can
  therefore never forge a control token.
- ``"all"``: every registered special token is recognised.
- a set (or list) of names: exactly those are recognised.

Either way ``decode(encode(text, allowed_special=...)) == text``.
"""

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np


def check_special_tokens(special_tokens, owner):
    """The special tokens as a list of distinct, non-empty strings (in the order given)."""
    if isinstance(special_tokens, str):
        raise TypeError("%s: special_tokens must be a list of strings, not the single string %r "
                        "(write [%r])" % (owner, special_tokens, special_tokens))
    tokens = list(special_tokens or ())
    for token in tokens:
        if not isinstance(token, str) or token == "":
            raise ValueError("%s: a special token must be a non-empty string, got %r"
                             % (owner, token))
    duplicates = sorted({t for t in tokens if tokens.count(t) > 1})
    if duplicates:
        raise ValueError("%s: special tokens must be distinct, %s appear more than once"
                         % (owner, duplicates))
    return tokens


def resolve_allowed_special(allowed_special, special_tokens, owner):
    """The set of special-token strings that ``encode`` should read as single ids.

    allowed_special: "none" (or None), "all", or an iterable of registered special tokens.
    """
    if allowed_special is None or allowed_special == "none":
        return set()
    if allowed_special == "all":
        return set(special_tokens)
    if isinstance(allowed_special, str):
        raise ValueError("%s.encode: allowed_special must be 'none', 'all' or a set of special "
                         "tokens, got the string %r (write {%r} for one token)"
                         % (owner, allowed_special, allowed_special))
    allowed = set(allowed_special)
    unknown = sorted(allowed - set(special_tokens))
    if unknown:
        raise ValueError("%s.encode: %s are not registered special tokens; registered: %s"
                         % (owner, unknown, sorted(special_tokens)))
    return allowed


def split_on_special(text, allowed):
    """Cut ``text`` around every occurrence of the strings in ``allowed``.

    Returns a list of (piece, is_special) pairs whose pieces join back to ``text``. When two
    special tokens could match at the same place, the longer one wins.
    """
    if not allowed:
        return [(text, False)] if text else []
    alternatives = "|".join(re.escape(t) for t in sorted(allowed, key=lambda t: (-len(t), t)))
    pieces = re.split("(%s)" % alternatives, text)
    # re.split with one capturing group alternates: text, special, text, special, ..., text
    return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece]


def check_token_ids(ids, vocab_size, owner):
    """``ids`` (a list, 1-d NumPy array or tinyllm Tensor of integers) as a list of Python ints,
    each checked to lie in [0, vocab_size)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError("%s.decode: expected a sequence of token ids, got %s"
                        % (owner, type(ids).__name__))
    if hasattr(ids, "data") and hasattr(ids, "backward"):      # a tinyllm Tensor
        ids = ids.data
    array = np.asarray(ids)
    if array.size == 0:
        return []
    if array.ndim != 1:
        raise ValueError("%s.decode: expected a 1-d sequence of ids, got shape %s "
                         "(decode one row at a time)" % (owner, array.shape))
    if array.dtype.kind not in "iu":
        raise TypeError("%s.decode: token ids must be integers, got dtype %s"
                        % (owner, array.dtype))
    bad = (array < 0) | (array >= vocab_size)
    if bad.any():
        raise ValueError("%s.decode: id %d is outside the vocabulary (ids run from 0 to %d)"
                         % (owner, array[bad][0], vocab_size - 1))
    return array.tolist()


# ----- JSON files ---------------------------------------------------------------------------
def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically: a crash mid-write never leaves a half file
    where a good one used to be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_json(path, what):
    """Read a JSON object from ``path``; ``what`` names the file in error messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("%s file %s does not exist" % (what, path))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError("%s file %s is not valid JSON (%s); it may be truncated or not a %s "
                         "file at all" % (what, path, error, what)) from None
    if not isinstance(data, dict):
        raise ValueError("%s file %s does not hold a JSON object" % (what, path))
    return data


def check_type(data, expected, path):
    """Raise a clear error if a tokenizer dict is not of the ``expected`` class."""
    found = data.get("type")
    if found != expected:
        where = " in %s" % path if path is not None else ""
        raise ValueError("expected a %s%s, found type %r; tinyllm.data.load_tokenizer(path) "
                         "reads any tokenizer file" % (expected, where, found))
