"""``CharTokenizer``: one token per character, as in nanoGPT's Shakespeare model.

The vocabulary is the sorted set of the characters of a training text: with the text
``"hello"`` the characters are ``['e', 'h', 'l', 'o']`` and ``encode("hole") == [1, 3, 2, 0]``.
Special tokens (if any) take the ids after the characters.

Characters the tokenizer never saw
----------------------------------
By default ``encode`` raises a ``ValueError`` that names the unknown characters and suggests
building the tokenizer from a text that contains them. With ``unk_token="<unk>"`` the unknown
token becomes a special token and every unknown character is encoded as its id instead (then
``decode`` gives back ``"<unk>"`` where those characters were, so the round trip is lost for
them).
"""

from tinyllm.data.tokenizers.common import (check_special_tokens, check_token_ids, check_type,
                                            read_json, resolve_allowed_special, split_on_special,
                                            write_json)

_FORMAT_VERSION = 1


class CharTokenizer:
    """Characters <-> ids. Ids: 0..len(chars)-1 for the sorted characters, then the special
    tokens in the order given.

        tok = CharTokenizer.from_text("hello world")
        tok.encode("hold")        # [3, 5, 4, 1]
        tok.decode([3, 5, 4, 1])  # "hold"
    """

    def __init__(self, chars=(), special_tokens=(), unk_token=None):
        special = check_special_tokens(special_tokens, "CharTokenizer")
        if unk_token is not None:
            if not isinstance(unk_token, str) or unk_token == "":
                raise ValueError("CharTokenizer: unk_token must be a non-empty string, got %r"
                                 % (unk_token,))
            if unk_token not in special:
                special.append(unk_token)
        self.unk_token = unk_token
        self._special_names = special
        self._set_chars(chars)

    def _set_chars(self, chars):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError("CharTokenizer: each vocabulary entry must be one character, "
                                 "got %r" % (c,))
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the characters must be distinct")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.special_tokens = {t: len(chars) + k for k, t in enumerate(self._special_names)}
        self.itos = chars + self._special_names

    # ----- building ------------------------------------------------------------------------
    def train(self, text):
        """Make the vocabulary the sorted set of the characters of ``text``; returns self."""
        if not isinstance(text, str):
            raise TypeError("CharTokenizer.train: expected a str, got %s" % type(text).__name__)
        if text == "":
            raise ValueError("CharTokenizer.train: the text is empty, so there are no characters "
                             "to build a vocabulary from")
        self._set_chars(sorted(set(text)))
        return self

    @classmethod
    def from_text(cls, text, special_tokens=(), unk_token=None):
        """A tokenizer whose vocabulary is the characters of ``text``."""
        return cls(special_tokens=special_tokens, unk_token=unk_token).train(text)

    @property
    def vocab_size(self):
        """Number of ids: characters plus special tokens."""
        return len(self.itos)

    # ----- encoding and decoding -----------------------------------------------------------
    def encode(self, text, allowed_special="none"):
        """The list of ids of the characters of ``text`` (see the module docstring for unknown
        characters, and ``tinyllm.data.tokenizers.common`` for ``allowed_special``)."""
        if not isinstance(text, str):
            raise TypeError("CharTokenizer.encode: expected a str, got %s" % type(text).__name__)
        if not self.chars:
            raise ValueError("CharTokenizer.encode: the vocabulary is empty; call "
                             "train(text) or use CharTokenizer.from_text(text) first")
        allowed = resolve_allowed_special(allowed_special, self.special_tokens, "CharTokenizer")
        ids = []
        for piece, is_special in split_on_special(text, allowed):
            if is_special:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(self._encode_plain(piece))
        return ids

    def _encode_plain(self, text):
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        if self.unk_token is not None:
            unk = self.special_tokens[self.unk_token]
            return [stoi.get(c, unk) for c in text]
        unknown = sorted(set(text) - set(stoi))
        shown = ", ".join("%r (U+%04X)" % (c, ord(c)) for c in unknown[:10])
        more = " and %d more" % (len(unknown) - 10) if len(unknown) > 10 else ""
        raise ValueError(
            "CharTokenizer.encode: %d character(s) are not in the vocabulary of %d characters: "
            "%s%s. Build the tokenizer from a text that contains them "
            "(CharTokenizer.from_text(text)), or pass unk_token='<unk>' to map unknown "
            "characters to one id." % (len(unknown), len(self.chars), shown, more))

    def decode(self, ids):
        """The text of ``ids`` (special tokens come back as their strings)."""
        itos = self.itos
        return "".join(itos[i] for i in check_token_ids(ids, self.vocab_size, "CharTokenizer"))

    # ----- files ---------------------------------------------------------------------------
    def to_dict(self):
        """A JSON-ready description (what ``save`` writes and checkpoints embed)."""
        return {"type": "CharTokenizer", "version": _FORMAT_VERSION, "chars": self.chars,
                "special_tokens": self.special_tokens, "unk_token": self.unk_token}

    @classmethod
    def from_dict(cls, data, path=None):
        check_type(data, "CharTokenizer", path)
        try:
            chars, special = data["chars"], data["special_tokens"]
            tok = cls(chars, special_tokens=sorted(special, key=special.get),
                      unk_token=data.get("unk_token"))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError("CharTokenizer file %s is malformed: %s" % (path, error)) from None
        if tok.special_tokens != special:
            raise ValueError("CharTokenizer file %s is malformed: special token ids %s do not "
                             "follow the %d characters" % (path, special, len(chars)))
        return tok

    def save(self, path):
        """Write the tokenizer to ``path`` as JSON (atomically); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by ``save``."""
        return cls.from_dict(read_json(path, "tokenizer"), path)

    def __repr__(self):
        return "CharTokenizer(vocab_size=%d, special_tokens=%s)" % (self.vocab_size,
                                                                    list(self.special_tokens))
