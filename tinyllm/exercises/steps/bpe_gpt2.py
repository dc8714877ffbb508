"""Checks of step bpe_gpt2 (chapter 16): GPT-2's byte-level BPE, with its pre-tokenization regex,
its byte-to-unicode map, the greatest-bytes tie-break and special tokens.

Small texts give merges derived by hand (chapter 16's "the cat sat on the mat"); six pydoc
topics of the bundled corpus give merges and the ids of a held-out topic that are compared with
the values recorded from the reference solution, which were checked against tinyllm's
``BPETokenizer`` when they were recorded.
"""

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import SolutionError

STEP = Step(
    name="bpe_gpt2", chapter=16, module="bpe_gpt2",
    title="GPT-2's byte-level BPE: pre-tokenization, special tokens, greatest-bytes ties",
    teaches="How GPT-2 cuts text into chunks with a regex before any merge, why its files "
            "write bytes as printable characters (the space as Ġ), how a tie between equally "
            "frequent pairs is broken by the greatest pair of byte strings, how a chunk is "
            "encoded by applying the merge of lowest rank first, and why special tokens are "
            "cut out whole before everything else.",
    minutes=120,
    hints=(
        "bytes_to_unicode: build the list of printable bytes from the three ranges, map each to "
        "chr(b), then walk b = 0..255 and give every byte not yet mapped chr(256 + n), n "
        "counting up from 0. pretokenize is one call: regex.findall(GPT2_SPLIT_PATTERN, text).",
        "train_bpe: count the chunks first, {chunk: how often}, with each chunk a tuple of "
        "one-byte strings (bytes([b]) for b in chunk.encode('utf-8')). A pair's count is the "
        "sum over chunks of count * (its occurrences in the chunk, overlapping ones included).",
        "Ties: max(counts, key=lambda p: (counts[p], p[0], p[1])) with p a pair of bytes "
        "objects: Python compares bytes byte by byte, and tuples element by element. Replace "
        "the pair in every chunk left to right, jumping two places after a replacement.",
        "Special tokens: cut each text at them before pre-tokenizing (walk the text; at each "
        "place try the special tokens longest first). In train_bpe drop them; in encode emit "
        "the id whose vocab entry is token.encode('utf-8'). Learn vocab_size - 256 - "
        "len(special_tokens) merges, then give the special tokens the ids after the merges.",
        "encode a chunk: tokens = its single bytes; rank = {pair: k}; while some adjacent pair "
        "is in rank, merge (left to right) the pair of smallest rank; map each token to its id "
        "with {bytes: id} inverted from vocab. decode: b''.join(vocab[i] for i in ids)"
        ".decode('utf-8', errors='replace'), raising ValueError for an id not in vocab.",
    ))

EOT = "<|endoftext|>"


def _vocab_and_merges(result, what="train_bpe"):
    """(vocab, merges) checked for their types: a dict int -> bytes, a list of (bytes, bytes)."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise SolutionError("%s must return (vocab, merges), got %s"
                            % (what, type(result).__name__))
    vocab, merges = result
    if not isinstance(vocab, dict) or not all(isinstance(i, int) and isinstance(t, bytes)
                                              for i, t in vocab.items()):
        raise SolutionError("%s: vocab must be a dict id (int) -> bytes" % what)
    try:
        merges = [(a, b) for a, b in merges]
    except (TypeError, ValueError):
        raise SolutionError("%s: merges must be a list of pairs (bytes, bytes)" % what) from None
    if not all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in merges):
        raise SolutionError("%s: merges must be a list of pairs (bytes, bytes)" % what)
    return vocab, merges


def _merges(c, texts, vocab_size, special_tokens=()):
    return _vocab_and_merges(c.get("train_bpe")(texts, vocab_size, special_tokens))[1]


def _ids(result):
    return [int(i) for i in result]


def _as_hex(merges):
    """A merge as the hex of its two byte strings, "61 74" for (b"a", b"t"), as an array."""
    return np.array(["%s %s" % (a.hex(), b.hex()) for a, b in merges])


def _pydoc_documents():
    return [PYDOC_TOPICS[name] for name in sorted(PYDOC_TOPICS)]


def _pydoc_tokenizer(c):
    """The student's vocab and merges of the six pydoc topics, joined by <|endoftext|>."""
    return _vocab_and_merges(c.get("train_bpe")([EOT.join(_pydoc_documents())],
                                                PYDOC_VOCAB_SIZE, [EOT]))


PYDOC_VOCAB_SIZE = 256 + 150 + 1            # the bytes, 150 merges, <|endoftext|>


def _tinyllm_tokenizer():
    """tinyllm's BPETokenizer trained as _pydoc_tokenizer (called only when recording)."""
    from tinyllm.data import BPETokenizer
    return BPETokenizer.train_from_iterator([EOT.join(_pydoc_documents())], PYDOC_VOCAB_SIZE,
                                            [EOT])


# ----- bytes_to_unicode and pretokenize ------------------------------------------------------
@STEP.check("bytes_to_unicode_is_gpt2s_map")
def byte_map(c):
    """Printable Latin-1 bytes stand for themselves, the 68 others get U+0100, U+0101, ... in
    order: the space is Ġ (U+0120), the newline Ċ (U+010A); the whole map as recorded."""
    mapping = c.get("bytes_to_unicode")()
    c.true(isinstance(mapping, dict) and sorted(mapping) == list(range(256)),
           "bytes_to_unicode() must be a dict with the keys 0..255")
    c.true(len(set(mapping.values())) == 256, "bytes_to_unicode(): two bytes share a character")
    for byte, char in [(ord("!"), "!"), (ord("~"), "~"), (0xA1, "¡"), (0xAC, "¬"), (0xAE, "®"),
                       (0xFF, "ÿ"), (0, "\u0100"), (ord("\n"), "\u010a"), (ord(" "), "Ġ"),
                       (0x7F, "\u0121"), (0xA0, "\u0142"), (0xAD, "\u0143")]:
        c.equal("bytes_to_unicode()[0x%02X]" % byte, mapping[byte], char)
    c.equal("b' the' written with the map", "".join(mapping[b] for b in b" the"), "Ġthe")

    def tinyllms_map():
        from tinyllm.data.tokenizers import bytes_to_unicode
        reference = bytes_to_unicode()
        return np.array([ord(reference[b]) for b in range(256)])
    c.expect("the code points of bytes 0..255",
             np.array([ord(mapping[b]) for b in range(256)]), reference=tinyllms_map)


@STEP.check("pretokenize_cuts_chunks_like_gpt2")
def pretokenize_by_hand(c):
    """The chapter's example; contractions only in lower case; a run of spaces leaves its last
    space to the next word; the chunks of a mixed text as recorded, joining back to it."""
    pretokenize = c.get("pretokenize")
    c.equal("pretokenize(\"Hello world's 42 cats!!  Ok\")",
            list(pretokenize("Hello world's 42 cats!!  Ok")),
            ["Hello", " world", "'s", " 42", " cats", "!!", " ", " Ok"])
    c.equal("pretokenize(\"I'll DON'T\")", list(pretokenize("I'll DON'T")),
            ["I", "'ll", " DON", "'", "T"])
    c.equal("pretokenize('x   \\n\\n  y\\t z  ')", list(pretokenize("x   \n\n  y\t z  ")),
            ["x", "   \n\n ", " y", "\t", " z", "  "])
    text = MIXED_TEXT
    chunks = list(pretokenize(text))
    c.equal("''.join(pretokenize(text))", "".join(chunks), text)

    def tinyllms_chunks():
        from tinyllm.data.tokenizers import GPT2_SPLIT_PATTERN
        import regex
        return np.array(regex.findall(GPT2_SPLIT_PATTERN, text))
    c.expect("the chunks of a text of English, code, Chinese and emoji", np.array(chunks),
             reference=tinyllms_chunks)


# ----- training --------------------------------------------------------------------------------
@STEP.check("train_bpe_the_cat_sat_on_the_mat_by_hand")
def train_by_hand(c):
    """Chapter 16, section 3: at (3 times), then the tie th/he goes to th (t > h), the, and
    seven merges of single pairs in the order of the greatest byte strings."""
    vocab, merges = _vocab_and_merges(c.get("train_bpe")(["the cat sat on the mat"], 266))
    c.equal("merges of 'the cat sat on the mat'", merges,
            [(b"a", b"t"), (b"t", b"h"), (b"th", b"e"), (b"s", b"at"), (b"o", b"n"),
             (b"m", b"at"), (b"c", b"at"), (b" ", b"the"), (b" ", b"sat"), (b" ", b"on")])
    c.equal("vocab[0..255]", [vocab.get(b) for b in range(256)], [bytes([b]) for b in range(256)])
    c.equal("vocab[256], vocab[258], vocab[265]", [vocab.get(256), vocab.get(258),
                                                   vocab.get(265)], [b"at", b"the", b" on"])
    c.equal("len(vocab)", len(vocab), 266)


@STEP.check("train_bpe_breaks_ties_by_the_greatest_byte_strings")
def train_ties(c):
    """Equal counts: the greatest (a, b) of byte strings wins: a decides first (bac: (b, a)
    before (a, c)), then b; bytes, not ids (c > bb though 99 < 256), not the first pair."""
    c.equal("train_bpe(['bac'], 257)", _merges(c, ["bac"], 257), [(b"b", b"a")])
    c.equal("train_bpe(['babcbbbb'], 259)", _merges(c, ["babcbbbb"], 259),
            [(b"b", b"b"), (b"c", b"bb"), (b"cbb", b"bb")])
    c.equal("train_bpe(['zab'], 258)", _merges(c, ["zab"], 258), [(b"z", b"a"), (b"za", b"b")])


@STEP.check("train_bpe_counts_pairs_inside_chunks")
def train_counts(c):
    """A pair counts once per occurrence (overlapping: 'aaa' holds (a, a) twice) and once per
    occurrence of its chunk; no pair crosses two chunks or two texts."""
    c.equal("train_bpe(['aaa bb'], 257)", _merges(c, ["aaa bb"], 257), [(b"a", b"a")])
    c.equal("train_bpe(['yz ab ab'], 257) (' ab' occurs twice)",
            _merges(c, ["yz ab ab"], 257), [(b"a", b"b")])
    c.equal("train_bpe(['ab', 'cd'], 258) (two texts)", _merges(c, ["ab", "cd"], 258),
            [(b"c", b"d"), (b"a", b"b")])
    c.equal("train_bpe(['ab. cd'], 260)", _merges(c, ["ab. cd"], 260),
            [(b"c", b"d"), (b"a", b"b"), (b" ", b"cd")])


@STEP.check("train_bpe_replaces_left_to_right")
def train_replaces(c):
    """'aaab': (a, a) makes [aa, a, b], not [aa, aa, a, b]; then (aa, a) and (aaa, b)."""
    c.equal("train_bpe(['aaab'], 259)", _merges(c, ["aaab"], 259),
            [(b"a", b"a"), (b"aa", b"a"), (b"aaa", b"b")])
    c.equal("train_bpe(['aaaa'], 258)", _merges(c, ["aaaa"], 258),
            [(b"a", b"a"), (b"aa", b"aa")])


@STEP.check("train_bpe_keeps_special_tokens_whole")
def train_special(c):
    """<|x|> is cut out before pre-tokenization: its characters join no merge, and it takes
    the id after the merges; vocab_size counts it."""
    vocab, merges = _vocab_and_merges(c.get("train_bpe")(["<|x|><|x|> ab<|x|>"], 258,
                                                         ["<|x|>"]))
    c.equal("merges of '<|x|><|x|> ab<|x|>'", merges, [(b"a", b"b")])
    c.equal("vocab[256], vocab[257]", [vocab.get(256), vocab.get(257)], [b"ab", b"<|x|>"])
    vocab, merges = _vocab_and_merges(c.get("train_bpe")(["ab cd"], 259, ["<|x|>", "<|y|>"]))
    c.equal("train_bpe(['ab cd'], 259, 2 special tokens): merges", merges, [(b"c", b"d")])
    c.equal("... vocab[256], vocab[257], vocab[258]",
            [vocab.get(256), vocab.get(257), vocab.get(258)], [b"cd", b"<|x|>", b"<|y|>"])
    c.equal("... len(vocab)", len(vocab), 259)


@STEP.check("train_bpe_limits")
def train_limits(c):
    """vocab_size below 256 + the special tokens is a ValueError naming vocab_size; training
    stops when no pair is left."""
    train_bpe = c.get("train_bpe")
    c.raises("train_bpe(['hello'], 255)", lambda: train_bpe(["hello"], 255), (ValueError,),
             contains=("vocab_size",))
    c.raises("train_bpe(['hello'], 256, ['<|endoftext|>'])",
             lambda: train_bpe(["hello"], 256, [EOT]), (ValueError,), contains=("vocab_size",))
    vocab, merges = _vocab_and_merges(train_bpe(["hello"], 256))
    c.equal("train_bpe(['hello'], 256)", (len(vocab), merges), (256, []))
    vocab, merges = _vocab_and_merges(train_bpe(["ab", "b"], 300, [EOT]))
    c.equal("train_bpe(['ab', 'b'], 300, ['<|endoftext|>']) (one pair is all there is)",
            (merges, vocab.get(257), len(vocab)), ([(b"a", b"b")], EOT.encode(), 258))


@STEP.check("train_bpe_on_pydoc_topics")
def train_pydoc(c):
    """150 merges of six pydoc topics (joined by <|endoftext|>) equal the recorded ones
    (checked against tinyllm's BPETokenizer)."""
    vocab, merges = _pydoc_tokenizer(c)
    c.note("first merges: %s" % ", ".join("%r" % (a + b) for a, b in merges[:6]))
    c.expect("the 150 merges (hex of the two byte strings)", _as_hex(merges),
             reference=lambda: _as_hex(_tinyllm_tokenizer().merges))
    c.equal("vocab[406] (the special token)", vocab.get(406), EOT.encode())


# ----- encoding and decoding -------------------------------------------------------------------
@STEP.check("encode_merges_each_chunk_by_rank")
def encode_by_rank(c):
    """Chapter 16, section 5: ' hat' is [' ', 'h', 'at']; merges never cross chunks; the
    merge of lowest rank goes first, wherever it is in the chunk."""
    encode = c.get("encode")
    vocab, merges = _vocab_and_merges(c.get("train_bpe")(["the cat sat on the mat"], 266))
    c.equal("encode(' hat')", _ids(encode(" hat", vocab, merges)), [32, 104, 256])
    c.equal("encode('at at')", _ids(encode("at at", vocab, merges)), [256, 32, 256])
    c.equal("encode('the cat')", _ids(encode("the cat", vocab, merges)), [258, 32, 262])
    vocab = {b: bytes([b]) for b in range(256)}
    vocab.update({256: b"bc", 257: b"ab"})
    c.equal("encode('abc') with merges [(b, c), (a, b)]",
            _ids(encode("abc", vocab, [(b"b", b"c"), (b"a", b"b")])), [97, 256])
    c.equal("encode('')", _ids(encode("", vocab, [])), [])


@STEP.check("encode_keeps_special_tokens_whole_longest_first")
def encode_special(c):
    """A special token is one id wherever it is; where two start at the same place the longest
    wins (in either order given); without special_tokens its text is ordinary text."""
    encode = c.get("encode")
    long = EOT + "!"
    # "hi there" learns (t, h) and (th, e); the special tokens get the ids 258 and 259.
    vocab, merges = _vocab_and_merges(c.get("train_bpe")(["hi there"], 260, [EOT, long]))
    eot, eot_bang = 258, 259
    for specials in ([EOT, long], [long, EOT]):
        c.equal("encode('a<|endoftext|>!b', specials %s)" % specials,
                _ids(encode("a" + long + "b", vocab, merges, specials)), [97, eot_bang, 98])
    c.equal("encode('hi<|endoftext|><|endoftext|>')",
            _ids(encode("hi" + EOT + EOT, vocab, merges, [EOT, long])), [104, 105, eot, eot])
    plain = _ids(encode(EOT, vocab, merges))
    c.true(len(plain) > 1 and eot not in plain,
           "encode('<|endoftext|>') without special_tokens should be ordinary ids, got %s"
           % plain)
    c.raises("encode('x', special tokens ['<|unknown|>'])",
             lambda: encode("x", vocab, merges, ["<|unknown|>"]), (ValueError,),
             contains=("<|unknown|>",))


@STEP.check("encode_a_pydoc_topic_as_recorded")
def encode_pydoc(c):
    """The held-out topic "while" and a special token, encoded with the 150 merges, give the
    recorded ids (checked against tinyllm's BPETokenizer)."""
    vocab, merges = _pydoc_tokenizer(c)
    text = PYDOC_WHILE + EOT + "while x:\n    pass\n"
    ids = _ids(c.get("encode")(text, vocab, merges, [EOT]))
    c.note("%d bytes -> %d ids" % (len(text.encode("utf-8")), len(ids)))
    c.expect("the ids of the topic 'while'", np.array(ids),
             reference=lambda: np.array(_tinyllm_tokenizer().encode(text)))


@STEP.check("decode_encode_round_trips_random_unicode")
def round_trip(c):
    """decode(encode(s)) == s for 300 seeded random strings of letters, digits, spaces,
    accents, Chinese, emoji, any code point and <|endoftext|>."""
    encode, decode = c.get("encode"), c.get("decode")
    vocab, merges = _pydoc_tokenizer(c)
    rng = np.random.default_rng(16)
    characters = 0
    pieces = [" ", "  ", "\n", "\t", "\r\n", "'s", "'ll", EOT, "é", "ü", "\u00a0", "你好",
              "🙂", "👍🏽", "e\u0301", "٣", "the", " pass", "42", "!!", "::="]
    for k in range(300):
        parts = []
        for _ in range(int(rng.integers(0, 12))):
            kind = rng.integers(0, 3)
            if kind == 0:
                parts.append(pieces[int(rng.integers(len(pieces)))])
            elif kind == 1:
                parts.append(chr(int(rng.integers(32, 127))))
            else:
                code = int(rng.integers(0, 0x110000 - 0x800))
                parts.append(chr(code + 0x800 if code >= 0xD800 else code))    # no surrogate
        text = "".join(parts)
        characters += len(text)
        back = decode(_ids(encode(text, vocab, merges, [EOT])), vocab)
        c.true(back == text, "decode(encode(%r)) is %r" % (text, back))
    c.note("300 strings, %d characters, all back" % characters)


@STEP.check("decode_joins_the_bytes_before_utf8")
def decode_bytes(c):
    """The three bytes of 你 as three ids are one character; a cut character is U+FFFD; a
    special token decodes to its text."""
    decode = c.get("decode")
    vocab = {b: bytes([b]) for b in range(256)}
    vocab[256] = EOT.encode()
    c.equal("decode([228, 189, 160])", decode([228, 189, 160], vocab), "你")
    c.equal("decode([228, 189])", decode([228, 189], vocab), "\ufffd")
    c.equal("decode([104, 256, 105])", decode([104, 256, 105], vocab), "h" + EOT + "i")
    c.equal("decode([])", decode([], vocab), "")


@STEP.check("decode_rejects_unknown_ids")
def decode_errors(c):
    """An id not in vocab is a ValueError naming it."""
    decode = c.get("decode")
    vocab = {b: bytes([b]) for b in range(256)}
    vocab.update({256: b"at", 257: EOT.encode()})
    c.raises("decode([97, 258])", lambda: decode([97, 258], vocab), (ValueError,),
             contains=("258",))
    c.raises("decode([-1])", lambda: decode([-1], vocab), (ValueError,), contains=("-1",))


# ----- the texts -------------------------------------------------------------------------------
MIXED_TEXT = ("The tokenizer's   job:\n\n    def f(x):  return x**2  # 42 ways\n"
              "GPT-2 读 UTF-8 字节 🙂🙂, naïve café-au-lait!!! it'd THEY'RE 2024年\t\t\n ")

# Six of Python's pydoc topics (the bundled corpus, as of Python 3.11), the training documents.
PYDOC_TOPICS = {
    'assert': (
        'The "assert" statement\n'
        '**********************\n'
        '\n'
        'Assert statements are a convenient way to insert debugging assertions\n'
        'into a program:\n'
        '\n'
        '   assert_stmt ::= "assert" expression ["," expression]\n'
        '\n'
        'The simple form, "assert expression", is equivalent to\n'
        '\n'
        '   if __debug__:\n'
        '       if not expression: raise AssertionError\n'
        '\n'
        'The extended form, "assert expression1, expression2", is equivalent to\n'
        '\n'
        '   if __debug__:\n'
        '       if not expression1: raise AssertionError(expression2)\n'
        '\n'
        'These equivalences assume that "__debug__" and "AssertionError" refer\n'
        'to the built-in variables with those names.  In the current\n'
        'implementation, the built-in variable "__debug__" is "True" under\n'
        'normal circumstances, "False" when optimization is requested (command\n'
        'line option "-O").  The current code generator emits no code for an\n'
        'assert statement when optimization is requested at compile time.  Note\n'
        'that it is unnecessary to include the source code for the expression\n'
        'that failed in the error message; it will be displayed as part of the\n'
        'stack trace.\n'
        '\n'
        'Assignments to "__debug__" are illegal.  The value for the built-in\n'
        'variable is determined when the interpreter starts.\n'),
    'del': (
        'The "del" statement\n'
        '*******************\n'
        '\n'
        '   del_stmt ::= "del" target_list\n'
        '\n'
        'Deletion is recursively defined very similar to the way assignment is\n'
        'defined. Rather than spelling it out in full details, here are some\n'
        'hints.\n'
        '\n'
        'Deletion of a target list recursively deletes each target, from left\n'
        'to right.\n'
        '\n'
        'Deletion of a name removes the binding of that name from the local or\n'
        'global namespace, depending on whether the name occurs in a "global"\n'
        'statement in the same code block.  If the name is unbound, a\n'
        '"NameError" exception will be raised.\n'
        '\n'
        'Deletion of attribute references, subscriptions and slicings is passed\n'
        'to the primary object involved; deletion of a slicing is in general\n'
        'equivalent to assignment of an empty slice of the right type (but even\n'
        'this is determined by the sliced object).\n'
        '\n'
        'Changed in version 3.2: Previously it was illegal to delete a name\n'
        'from the local namespace if it occurs as a free variable in a nested\n'
        'block.\n'),
    'return': (
        'The "return" statement\n'
        '**********************\n'
        '\n'
        '   return_stmt ::= "return" [expression_list]\n'
        '\n'
        '"return" may only occur syntactically nested in a function definition,\n'
        'not within a nested class definition.\n'
        '\n'
        'If an expression list is present, it is evaluated, else "None" is\n'
        'substituted.\n'
        '\n'
        '"return" leaves the current function call with the expression list (or\n'
        '"None") as return value.\n'
        '\n'
        'When "return" passes control out of a "try" statement with a "finally"\n'
        'clause, that "finally" clause is executed before really leaving the\n'
        'function.\n'
        '\n'
        'In a generator function, the "return" statement indicates that the\n'
        'generator is done and will cause "StopIteration" to be raised. The\n'
        'returned value (if any) is used as an argument to construct\n'
        '"StopIteration" and becomes the "StopIteration.value" attribute.\n'
        '\n'
        'In an asynchronous generator function, an empty "return" statement\n'
        'indicates that the asynchronous generator is done and will cause\n'
        '"StopAsyncIteration" to be raised.  A non-empty "return" statement is\n'
        'a syntax error in an asynchronous generator function.\n'),
    'break': (
        'The "break" statement\n'
        '*********************\n'
        '\n'
        '   break_stmt ::= "break"\n'
        '\n'
        '"break" may only occur syntactically nested in a "for" or "while"\n'
        'loop, but not nested in a function or class definition within that\n'
        'loop.\n'
        '\n'
        'It terminates the nearest enclosing loop, skipping the optional "else"\n'
        'clause if the loop has one.\n'
        '\n'
        'If a "for" loop is terminated by "break", the loop control target\n'
        'keeps its current value.\n'
        '\n'
        'When "break" passes control out of a "try" statement with a "finally"\n'
        'clause, that "finally" clause is executed before really leaving the\n'
        'loop.\n'),
    'continue': (
        'The "continue" statement\n'
        '************************\n'
        '\n'
        '   continue_stmt ::= "continue"\n'
        '\n'
        '"continue" may only occur syntactically nested in a "for" or "while"\n'
        'loop, but not nested in a function or class definition within that\n'
        'loop.  It continues with the next cycle of the nearest enclosing loop.\n'
        '\n'
        'When "continue" passes control out of a "try" statement with a\n'
        '"finally" clause, that "finally" clause is executed before really\n'
        'starting the next loop cycle.\n'),
    'pass': (
        'The "pass" statement\n'
        '********************\n'
        '\n'
        '   pass_stmt ::= "pass"\n'
        '\n'
        '"pass" is a null operation — when it is executed, nothing happens. It\n'
        'is useful as a placeholder when a statement is required syntactically,\n'
        'but no code needs to be executed, for example:\n'
        '\n'
        '   def f(arg): pass    # a function that does nothing (yet)\n'
        '\n'
        '   class C: pass       # a class with no methods (yet)\n'),
}
# The held-out paragraph: the topic "while".
PYDOC_WHILE = (
    'The "while" statement\n'
    '*********************\n'
    '\n'
    'The "while" statement is used for repeated execution as long as an\n'
    'expression is true:\n'
    '\n'
    '   while_stmt ::= "while" assignment_expression ":" suite\n'
    '                  ["else" ":" suite]\n'
    '\n'
    'This repeatedly tests the expression and, if it is true, executes the\n'
    'first suite; if the expression is false (which may be the first time\n'
    'it is tested) the suite of the "else" clause, if present, is executed\n'
    'and the loop terminates.\n'
    '\n'
    'A "break" statement executed in the first suite terminates the loop\n'
    'without executing the "else" clause’s suite.  A "continue" statement\n'
    'executed in the first suite skips the rest of the suite and goes back\n'
    'to testing the expression.\n')
