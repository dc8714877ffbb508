"""Checks of step bpe (chapter 9): byte-level BPE training, encoding and decoding.

Small texts give merges derived by hand (the classic "aaabdaaabac"); a paragraph of English
and Chinese is compared with the values recorded from the reference solution, which were
checked against an independent trainer written below on byte strings instead of ids.
"""

from collections import Counter

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import SolutionError

STEP = Step(
    name="bpe", chapter=9, module="bpe",
    title="byte-pair encoding: train, encode, decode",
    teaches="How byte-level BPE builds a vocabulary by merging the most frequent adjacent "
            "pair again and again, why the 256 bytes can spell any text, and why decoding "
            "must join the bytes before it decodes UTF-8.",
    minutes=75,
    hints=(
        "Start from ids = list(text.encode('utf-8')). Keep vocab, a list where vocab[id] is "
        "the bytes the id spells: bytes([b]) for b < 256, then vocab[a] + vocab[b] for each "
        "merge (a, b).",
        "Count pairs with Counter(zip(ids, ids[1:])): every adjacent position counts, so in "
        "'aaa' the pair (a, a) is counted twice.",
        "Ties: max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]])). Python "
        "compares bytes objects lexicographically, and tuples element by element.",
        "Replacing: walk i from left to right; if (ids[i], ids[i + 1]) is the pair, append the "
        "new id and jump i += 2, else append ids[i] and i += 1. 'aaa' becomes [aa, a].",
        "encode: apply merge 0 to the whole sequence, then merge 1, and so on (merge k makes "
        "id 256 + k). decode: b''.join(vocab[i] for i in ids).decode('utf-8', "
        "errors='replace'); decoding token by token breaks a character whose bytes are in "
        "two tokens.",
    ))

TRAIN_TEXT = (
    "The encoder reads the input text and the decoder writes the output text. "
    "The LSTM layer encodes the input text; the decoder also uses an LSTM layer, "
    "with a Dense layer at the end for the output. The Dense layer has as many units as "
    "the vocabulary. "
    "编码器：LSTM层用于编码输入文本。"
    "解码器：解码器同样使用LSTM层，并在最后使用Dense层进行输出。"
    "Dense层的单元数量与词汇表大小相同，用于生成输出文本。"
    "The forget gate says how much of the old memory to keep; the input gate says how "
    "much of the candidate to write; the output gate says how much of the memory to show. "
    "遗忘门决定保留多少旧的记忆，"
    "输入门决定写入多少，输出门决定显示多少。")

HELD_OUT = [
    "The output gate of the encoder layer.",
    "解码器的输出门。",
    "tokens 🙂 and ünïcödé, mixed: LSTM层 encodes 文本",
]


def _merges(result, what="train_bpe"):
    try:
        return [tuple(int(i) for i in pair) for pair in result]
    except (TypeError, ValueError):
        raise SolutionError("%s must return a list of pairs (id_a, id_b), got %r"
                             % (what, result)) from None


def _ids(result):
    return [int(i) for i in result]


# ----- independent implementations, used only when recording -----------------------------------
def _train_on_byte_strings(text, vocab_size):
    """BPE on a list of byte strings (not ids): merging b"a", b"b" makes b"ab"."""
    tokens = [bytes([b]) for b in text.encode("utf-8")]
    ids = {bytes([b]): b for b in range(256)}
    merges = []
    while 256 + len(merges) < vocab_size and len(tokens) > 1:
        counts = Counter(zip(tokens, tokens[1:]))
        best = max(counts.items(), key=lambda item: (item[1], item[0]))[0]
        merged, out, i = best[0] + best[1], [], 0
        while i < len(tokens):
            if tuple(tokens[i:i + 2]) == best:
                out.append(merged)
                i += 2
            else:
                out.append(tokens[i])
                i += 1
        tokens = out
        merges.append((ids[best[0]], ids[best[1]]))
        ids[merged] = 255 + len(merges)
    return np.array(merges)


def _encode_by_rank(text, merges):
    """minbpe's encoder: repeatedly merge the pair of lowest rank present in the ids."""
    rank = {tuple(pair): k for k, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) > 1:
        pairs = [p for p in zip(ids, ids[1:]) if p in rank]
        if not pairs:
            break
        pair = min(pairs, key=rank.get)
        out, i = [], 0
        while i < len(ids):
            if tuple(ids[i:i + 2]) == pair:
                out.append(256 + rank[pair])
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return np.array(ids)


# ----- training --------------------------------------------------------------------------------
@STEP.check("train_bpe_merges_aaabdaaabac_by_hand")
def train_by_hand(c):
    """"aaabdaaabac": (a, a) occurs 4 times -> 256; then (aa, a) -> 257 and (aaa, b) -> 258,
    then the tie of four single pairs goes to (d, aaab) -> 259."""
    train_bpe = c.get("train_bpe")
    c.equal("train_bpe('aaabdaaabac', 260)", _merges(train_bpe("aaabdaaabac", 260)),
            [(97, 97), (256, 97), (257, 98), (100, 258)])


@STEP.check("train_bpe_counts_overlapping_pairs_and_merges_left_to_right")
def train_overlapping(c):
    """'zzzabab': (z, z) is counted twice, ties with (a, b) and wins it; 'zzz' becomes
    [zz, z], so (zz, z) is a pair of the next rounds."""
    train_bpe = c.get("train_bpe")
    c.equal("train_bpe('zzzabab', 259)", _merges(train_bpe("zzzabab", 259)),
            [(122, 122), (97, 98), (256, 122)])
    c.equal("train_bpe('aaaa', 258)", _merges(train_bpe("aaaa", 258)),
            [(97, 97), (256, 256)])


@STEP.check("train_bpe_breaks_ties_by_the_greatest_byte_strings")
def train_ties(c):
    """Equal counts: the greatest (bytes(a), bytes(b)) wins, compared as byte strings (b"c"
    > b"bb"), not as ids (256 > 99), and not by where the pair first occurs."""
    train_bpe = c.get("train_bpe")
    c.equal("train_bpe('abcd', 258)", _merges(train_bpe("abcd", 258)), [(99, 100), (98, 256)])
    c.equal("train_bpe('babcbbbb', 259)", _merges(train_bpe("babcbbbb", 259)),
            [(98, 98), (99, 256), (257, 256)])


@STEP.check("train_bpe_on_english_and_chinese_text")
def train_paragraph(c):
    """44 merges of a paragraph of English and Chinese equal the recorded ones (checked
    against a trainer on byte strings)."""
    train_bpe = c.get("train_bpe")
    merges = _merges(train_bpe(TRAIN_TEXT, 300))
    c.expect("the 44 merges of the paragraph", np.array(merges),
             reference=lambda: _train_on_byte_strings(TRAIN_TEXT, 300))


@STEP.check("train_bpe_limits")
def train_limits(c):
    """vocab_size 256 learns nothing, < 256 is a ValueError, and training stops when the text
    has become one id."""
    train_bpe = c.get("train_bpe")
    c.equal("train_bpe('hello', 256)", _merges(train_bpe("hello", 256)), [])
    c.equal("train_bpe('ab', 300) (one merge is all there is)", _merges(train_bpe("ab", 300)),
            [(97, 98)])
    c.raises("train_bpe('hello', 255)", lambda: train_bpe("hello", 255), (ValueError,),
             contains=("vocab_size",))


# ----- encoding and decoding -------------------------------------------------------------------
@STEP.check("encode_applies_the_merges_in_order")
def encode_in_order(c):
    """encode of the training text by hand, and of held-out strings (English, Chinese,
    emoji) with the paragraph's merges, as recorded."""
    encode, train_bpe = c.get("encode"), c.get("train_bpe")
    hand = [(97, 97), (256, 97), (257, 98), (100, 258)]
    c.equal("encode('aaabdaaabac')", _ids(encode("aaabdaaabac", hand)), [258, 259, 97, 99])
    c.equal("encode('aaaa') with (a, a) -> 256, (256, a) -> 257",
            _ids(encode("aaaa", [(97, 97), (256, 97)])), [256, 256])
    c.equal("encode('') ", _ids(encode("", hand)), [])
    merges = _merges(train_bpe(TRAIN_TEXT, 300))
    for k, text in enumerate(HELD_OUT):
        c.expect("encode(held-out string %d)" % k, np.array(_ids(encode(text, merges))),
                 reference=lambda text=text: _encode_by_rank(text, merges))


@STEP.check("encode_compresses_the_training_text")
def compression(c):
    """With 44 merges the paragraph's bytes shrink to the recorded number of ids."""
    encode, train_bpe = c.get("encode"), c.get("train_bpe")
    merges = _merges(train_bpe(TRAIN_TEXT, 300))
    ids = _ids(encode(TRAIN_TEXT, merges))
    n_bytes = len(TRAIN_TEXT.encode("utf-8"))
    c.note("%d bytes -> %d ids, %.2f bytes per id" % (n_bytes, len(ids), n_bytes / len(ids)))
    c.expect("number of ids of the training text", len(ids),
             reference=lambda: len(_encode_by_rank(TRAIN_TEXT, _train_on_byte_strings(
                 TRAIN_TEXT, 300).tolist())))


@STEP.check("decode_joins_the_bytes_before_utf8")
def decode_bytes(c):
    """decode(encode(text)) == text for English, Chinese and emoji; the three bytes of 你
    given as three ids decode to one character."""
    decode, encode, train_bpe = c.get("decode"), c.get("encode"), c.get("train_bpe")
    c.equal("decode([228, 189, 160], [])", decode([228, 189, 160], []), "你")
    c.equal("decode([256, 98], [(97, 97)])", decode([256, 98], [(97, 97)]), "aab")
    c.equal("decode([228, 189], []) (a cut character)", decode([228, 189], []), "\ufffd")
    merges = _merges(train_bpe(TRAIN_TEXT, 300))
    for k, text in enumerate(HELD_OUT + [TRAIN_TEXT]):
        c.equal("decode(encode(text %d))" % k, decode(encode(text, merges), merges), text)


@STEP.check("decode_rejects_unknown_ids")
def decode_errors(c):
    """An id outside [0, 256 + len(merges)) is a ValueError naming it."""
    decode = c.get("decode")
    merges = [(97, 97), (256, 97)]
    c.raises("decode([97, 258], two merges)", lambda: decode([97, 258], merges), (ValueError,),
             contains=("258",))
    c.raises("decode([-1], two merges)", lambda: decode([-1], merges), (ValueError,),
             contains=("-1",))
