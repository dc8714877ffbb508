"""Tokenizers: CharTokenizer and the byte-level BPE (training, encoding, files, special tokens)."""

import json
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.data import (SPLIT_PATTERN, ByteBPETokenizer, CharTokenizer, load_corpus,
                          load_tokenizer)
from tinyllm.data.tokenizers.bpe import merge_pair

FEW = settings(max_examples=25, deadline=None)

CHINESE = "我非常喜欢这个产品"
EMOJI = "🙂👍🏽 🇫🇷 👩‍👩‍👧"
SPECIALS = ["<|endoftext|>", "<pad>", "<mask>", "<bos>", "<eos>"]

# Arbitrary Unicode text, with a bias towards the hard cases: CJK, emoji, combining marks,
# whitespace runs, digits, apostrophes.
unicode_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from(list("ab '\n\t_1é" + CHINESE + "🙂👍🏽\u0301")),
            max_size=60),
)


@pytest.fixture(scope="module")
def pydoc_text():
    return load_corpus("pydoc")


@pytest.fixture(scope="module")
def bpe(pydoc_text):
    """A BPE with vocabulary 512 (five of them special tokens) trained on the pydoc corpus."""
    return ByteBPETokenizer(special_tokens=SPECIALS).train(pydoc_text, vocab_size=512)


# ----- CharTokenizer ------------------------------------------------------------------------
def test_char_vocabulary_is_the_sorted_set_of_characters():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == 8
    assert tok.encode("hold") == [tok.chars.index(c) for c in "hold"]


@FEW
@given(unicode_text)
def test_char_round_trip_on_its_own_text(text):
    tok = CharTokenizer.from_text(text + "x")           # never empty
    assert tok.decode(tok.encode(text)) == text


def test_char_round_trip_chinese_and_emoji():
    text = "I love it: " + CHINESE + EMOJI
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(CHINESE)) == len(CHINESE)


def test_char_unknown_character_error_names_it():
    tok = CharTokenizer.from_text("hello")
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\).*from a text that contains them"):
        tok.encode("hez")


def test_char_unknown_characters_map_to_unk_token_when_configured():
    tok = CharTokenizer.from_text("hello", unk_token="<unk>")
    unk = tok.special_tokens["<unk>"]
    assert unk == 4                                     # after e, h, l, o
    assert tok.encode("hez") == [tok.stoi["h"], tok.stoi["e"], unk]
    assert tok.decode(tok.encode("hez")) == "he<unk>"


def test_char_special_tokens_follow_the_characters_and_encode_atomically():
    tok = CharTokenizer.from_text("ab", special_tokens=["<pad>", "<eos>"])
    assert tok.special_tokens == {"<pad>": 2, "<eos>": 3}
    assert tok.encode("a<eos>", allowed_special="all") == [0, 3]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("a<eos>")                            # "<eos>" is plain text here: no '<'
    assert tok.decode([0, 3, 2]) == "a<eos><pad>"


def test_char_save_load_round_trip(tmp_path):
    tok = CharTokenizer.from_text("héllo " + CHINESE, special_tokens=["<pad>"], unk_token="?!")
    path = tok.save(tmp_path / "char.json")
    again = CharTokenizer.load(path)
    text = "llo 我喜欢 zz"
    assert again.encode(text) == tok.encode(text)
    assert again.special_tokens == tok.special_tokens
    assert load_tokenizer(path).encode(text) == tok.encode(text)


def test_char_empty_text_and_untrained_errors():
    with pytest.raises(ValueError, match="text is empty"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match=r"call train\(text\)"):
        CharTokenizer().encode("a")


def test_char_decode_rejects_ids_outside_the_vocabulary():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="id 3 is outside the vocabulary"):
        tok.decode([0, 3])


# ----- BPE: the split pattern ---------------------------------------------------------------
@FEW
@given(unicode_text)
def test_split_pattern_chunks_join_back_to_the_text(text):
    assert "".join(re.findall(SPLIT_PATTERN, text)) == text


def test_split_pattern_matches_gpt2_on_an_example():
    chunks = re.findall(SPLIT_PATTERN, "Hello world's 42 cats!!  Ok\n")
    assert chunks == ["Hello", " world", "'s", " 42", " cats", "!!", " ", " Ok", "\n"]


# ----- BPE: training --------------------------------------------------------------------------
def test_bpe_hand_example_merges():
    # aaabdaaabac: (a, a) occurs 4 times -> 256; then (a, b) and (256, a) tie at 2 and the
    # smaller pair (97, 98) wins -> 257; then (256, 257) occurs twice -> 258.
    tok = ByteBPETokenizer().train("aaabdaaabac", vocab_size=259)
    assert list(tok.merges.items()) == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    assert tok.vocab[258] == b"aaab"


def naive_bpe_merges(text, num_merges):
    """Reference trainer: recount every pair of every chunk from scratch before each merge."""
    chunks = [list(c.encode("utf-8")) for c in re.findall(SPLIT_PATTERN, text)]
    merges = []
    for k in range(num_merges):
        counts = Counter()
        for chunk in chunks:
            counts.update(zip(chunk, chunk[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        chunks = [merge_pair(chunk, best, 256 + k) for chunk in chunks]
    return merges


def test_bpe_incremental_training_equals_the_naive_reference(pydoc_text):
    text = pydoc_text[:6000] + " " + CHINESE * 3 + EMOJI * 2
    tok = ByteBPETokenizer().train(text, vocab_size=256 + 120)
    assert list(tok.merges) == naive_bpe_merges(text, 120)


def test_bpe_reaches_the_requested_vocab_size(bpe):
    assert bpe.vocab_size == 512
    assert len(bpe.merges) == 512 - 256 - len(SPECIALS)
    assert sorted(bpe.special_tokens.values()) == list(range(507, 512))


def test_bpe_training_is_deterministic(pydoc_text):
    text = pydoc_text[:50_000]
    first = ByteBPETokenizer().train(text, vocab_size=400)
    second = ByteBPETokenizer().train(text, vocab_size=400)
    assert first.merges == second.merges


def test_bpe_compresses_english(bpe, pydoc_text):
    sample = pydoc_text[:20_000]
    assert len(bpe.encode(sample)) < 0.6 * len(sample.encode("utf-8"))


def test_bpe_special_token_text_in_training_data_is_never_merged():
    text = "ab<|endoftext|>ab<|endoftext|>ab<|endoftext|>"
    tok = ByteBPETokenizer(["<|endoftext|>"]).train(text, vocab_size=258)
    assert list(tok.merges) == [(ord("a"), ord("b"))]       # '<', '|', ... never paired


def test_bpe_tiny_text_warns_when_it_runs_out_of_pairs():
    with pytest.warns(UserWarning, match="ran out of pairs"):
        tok = ByteBPETokenizer().train("abab", vocab_size=300)
    assert tok.vocab_size == 258                             # (a, b) then (ab, ab)


def test_bpe_vocab_size_below_the_bytes_is_an_error():
    with pytest.raises(ValueError, match="at least 256 bytes \\+ 1 special tokens = 257"):
        ByteBPETokenizer(["<pad>"]).train("abc", vocab_size=256)


# ----- BPE: encoding and decoding -----------------------------------------------------------
@FEW
@given(unicode_text)
def test_bpe_round_trip_on_arbitrary_unicode(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@pytest.mark.parametrize("text", [CHINESE, EMOJI, "naïve café " + CHINESE + EMOJI, "", " \n\t "])
def test_bpe_round_trip_on_text_it_never_saw(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_encoding_equals_applying_the_merges_in_rank_order(bpe, pydoc_text):
    # Reference: apply every merge, in the order learned, to each chunk's bytes.
    for chunk in re.findall(SPLIT_PATTERN, pydoc_text[:3000] + " " + CHINESE):
        ids = list(chunk.encode("utf-8"))
        for pair, new_id in bpe.merges.items():
            ids = merge_pair(ids, pair, new_id)
        assert bpe.encode(chunk) == ids


def test_bpe_decode_of_a_cut_character_shows_the_replacement_character(bpe):
    ids = bpe.encode("我")                                   # 3 UTF-8 bytes
    assert bpe.decode_bytes(ids) == "我".encode("utf-8")
    assert bpe.decode(list(bytes("我", "utf-8")[:2])) == "\ufffd"


def test_bpe_decode_rejects_ids_outside_the_vocabulary(bpe):
    with pytest.raises(ValueError, match="id 512 is outside the vocabulary"):
        bpe.decode([1, 512])


def test_bpe_lone_surrogate_is_a_clear_error(bpe):
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        bpe.encode("a\ud800b")


# ----- BPE: special tokens ------------------------------------------------------------------
def test_bpe_special_tokens_are_atomic_only_when_allowed(bpe):
    text = "<bos>hello<|endoftext|>"
    allowed = bpe.encode(text, allowed_special="all")
    assert allowed[0] == bpe.special_tokens["<bos>"]
    assert allowed[-1] == bpe.special_tokens["<|endoftext|>"]
    assert bpe.decode(allowed) == text
    as_text = bpe.encode(text)                               # default: plain text
    assert not set(as_text) & set(bpe.special_tokens.values())
    assert bpe.decode(as_text) == text
    only_bos = bpe.encode(text, allowed_special={"<bos>"})
    assert only_bos[0] == bpe.special_tokens["<bos>"]
    assert bpe.special_tokens["<|endoftext|>"] not in only_bos


def test_bpe_unknown_allowed_special_is_an_error(bpe):
    with pytest.raises(ValueError, match="'<cls>'.*not registered special tokens"):
        bpe.encode("x", allowed_special={"<cls>"})


def test_duplicate_special_tokens_are_an_error():
    with pytest.raises(ValueError, match="distinct"):
        ByteBPETokenizer(["<pad>", "<pad>"])


def test_add_special_tokens_after_training(pydoc_text):
    tok = ByteBPETokenizer().train(pydoc_text[:5000], vocab_size=300)
    tok.add_special_tokens(["<sep>"])
    assert tok.special_tokens == {"<sep>": 300}
    assert tok.vocab_size == 301
    assert tok.decode(tok.encode("a<sep>", allowed_special="all")) == "a<sep>"


# ----- BPE: files ---------------------------------------------------------------------------
def test_bpe_save_load_gives_identical_encodings(bpe, tmp_path, pydoc_text):
    path = bpe.save(tmp_path / "bpe.json")
    merges = json.loads(path.read_text())["merges"]
    assert all(isinstance(x, int) for pair in merges for x in pair)
    again = ByteBPETokenizer.load(path)
    text = pydoc_text[-5000:] + CHINESE + EMOJI + "<eos>"
    assert again.encode(text, allowed_special="all") == bpe.encode(text, allowed_special="all")
    assert again.special_tokens == bpe.special_tokens
    assert again.vocab == bpe.vocab
    assert isinstance(load_tokenizer(path), ByteBPETokenizer)


def test_load_errors_are_clear(bpe, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(bpe.save(tmp_path / "good.json").read_text()[:100])
    with pytest.raises(ValueError, match="not valid JSON.*truncated"):
        ByteBPETokenizer.load(truncated)
    char_file = CharTokenizer.from_text("abc").save(tmp_path / "char.json")
    with pytest.raises(ValueError, match="expected a ByteBPETokenizer.*found type 'CharTokenizer'"):
        ByteBPETokenizer.load(char_file)
    bad_merge = tmp_path / "bad_merge.json"
    bad_merge.write_text(json.dumps({"type": "ByteBPETokenizer", "pattern": SPLIT_PATTERN,
                                     "merges": [[97, 300]], "special_tokens": {}}))
    with pytest.raises(ValueError, match="malformed.*does not exist yet"):
        load_tokenizer(bad_merge)


def test_decode_accepts_numpy_arrays(bpe):
    ids = bpe.encode("hello world")
    assert bpe.decode(np.array(ids, dtype=np.int64)) == "hello world"
    assert bpe.decode(np.array(ids, dtype=np.uint16)) == "hello world"
