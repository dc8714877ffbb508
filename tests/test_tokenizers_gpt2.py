"""BPETokenizer: GPT-2's byte-level BPE, held to Hugging Face's `tokenizers` and to tiktoken."""

import hashlib
import json
import os
import sys
import tempfile
import tracemalloc
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("regex")

from tinyllm.data import load_corpus, load_tokenizer                      # noqa: E402
from tinyllm.data.tokenizers.gpt2 import (GPT2_SPLIT_PATTERN, BPETokenizer,  # noqa: E402
                                          bytes_to_unicode, split_streamed_text,
                                          token_to_string)

FEW = settings(max_examples=30, deadline=None)
# Overlapping special tokens: where "<|endoftext|>!" appears, the longer one wins.
SPECIALS = ["<|endoftext|>", "<|end|>", "<|endoftext|>!"]
HARD_TEXT = ("Üñíçødé naïve café 我非常喜欢这个产品 🙂👍🏽 🇫🇷 ١٢٣ don't"
             "  \n\n\t x\r\n  ")

# Characters that are unassigned in this Python's Unicode database (category Cn) are left out:
# the regex package and Hugging Face's Rust regex each carry their own, possibly newer, Unicode
# tables, and a code point assigned in one version (U+3D000, say, a letter to regex 2026.12, Cn
# to Python 3.11) is classified differently by the two.
unicode_text = st.one_of(
    st.text(st.characters(exclude_categories=["Cn"]), max_size=60),
    st.lists(st.sampled_from(list("ab '\n\t\r_1é我🙂\u0301<|>!") + SPECIALS),
             max_size=40).map("".join),
)


@pytest.fixture(scope="module")
def pydoc_text():
    return load_corpus("pydoc")


@pytest.fixture(scope="module")
def sample_text(pydoc_text):
    """Several thousand lines of English and Python with special tokens among them."""
    code = load_corpus("stdlib", max_bytes=200_000)
    lines = (pydoc_text + code).splitlines(keepends=True)[:6000]
    text = "".join(line + ("<|endoftext|>" if i % 50 == 0 else "")
                   + ("<|endoftext|>!" if i % 77 == 0 else "") + ("<|end|>" if i % 91 == 0 else "")
                   for i, line in enumerate(lines))
    return text + HARD_TEXT + "<|end|><|endoftext|><|endoftext|>!!"


@pytest.fixture(scope="module")
def hf_folder(pydoc_text):
    """A byte-level BPE trained by Hugging Face's `tokenizers` (8000 ids, GPT-2's layout of
    files), saved as tokenizer.json, vocab.json and merges.txt."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=8000, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(pydoc_text.splitlines(keepends=True), trainer)
    folder = tempfile.mkdtemp(prefix="hf_bpe_")
    hf.save(os.path.join(folder, "tokenizer.json"))
    hf.model.save(folder)
    return folder


@pytest.fixture(scope="module")
def hf_tokenizer(hf_folder):
    import tokenizers
    return tokenizers.Tokenizer.from_file(os.path.join(hf_folder, "tokenizer.json"))


@pytest.fixture(scope="module")
def tok(hf_folder):
    return BPETokenizer.from_tokenizer_json(os.path.join(hf_folder, "tokenizer.json"))


@pytest.fixture(scope="module")
def trained(pydoc_text):
    return BPETokenizer.train_from_iterator([pydoc_text], vocab_size=1000,
                                            special_tokens=["<|endoftext|>"])


# ----- GPT-2's byte-to-unicode map and pre-tokenization ---------------------------------------
def test_byte_to_unicode_map_is_gpt2s():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert all(mapping[b] == chr(b) for b in range(ord("!"), ord("~") + 1))
    assert mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"
    assert mapping[0] == "\u0100" and mapping[127] == "\u0121" and mapping[173] == "\u0143"
    assert token_to_string(b" the") == "Ġthe"


def test_split_pattern_on_an_example():
    tok = BPETokenizer({i: bytes([i]) for i in range(256)}, [])
    assert tok.split_text("Hello world's 42 cats!!  Ok\n東京 ١٢") == [
        "Hello", " world", "'s", " 42", " cats", "!!", " ", " Ok", "\n", "東京", " ١٢"]


@FEW
@given(unicode_text)
def test_split_pattern_equals_hugging_faces_byte_level_pre_tokenizer(text):
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    tok = BPETokenizer({i: bytes([i]) for i in range(256)}, [])
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    try:
        expected = [piece for piece, _ in hf.pre_tokenize_str(text)]
    except Exception:                                   # lone surrogates: not a Rust string
        return
    assert [token_to_string(c.encode("utf-8")) for c in tok.split_text(text)] == expected


# ----- the same ids as Hugging Face's tokenizers ----------------------------------------------
def test_tokenizer_json_gives_hugging_faces_ids(tok, hf_tokenizer, sample_text):
    expected = hf_tokenizer.encode(sample_text).ids
    assert len(expected) > 50_000
    assert tok.encode(sample_text) == expected


def test_vocab_json_and_merges_txt_give_hugging_faces_ids(hf_folder, hf_tokenizer, sample_text):
    tok = BPETokenizer.from_files(os.path.join(hf_folder, "vocab.json"),
                                  os.path.join(hf_folder, "merges.txt"), SPECIALS)
    assert tok.special_tokens == {"<|endoftext|>": 0, "<|end|>": 1, "<|endoftext|>!": 2}
    assert tok.encode(sample_text) == hf_tokenizer.encode(sample_text).ids


def test_saved_files_load_in_hugging_face_and_back(tok, hf_tokenizer, sample_text, tmp_path):
    import tokenizers
    tok.save(tmp_path)
    expected = hf_tokenizer.encode(sample_text).ids
    again = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert again.encode(sample_text).ids == expected
    assert BPETokenizer.load(tmp_path).encode(sample_text) == expected
    assert load_tokenizer(tmp_path).encode(sample_text) == expected
    from_files = BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt",
                                         SPECIALS)
    assert from_files.encode(sample_text) == expected


def test_decode_equals_hugging_faces_and_round_trips(tok, hf_tokenizer, sample_text):
    ids = tok.encode(sample_text)
    assert tok.decode(ids) == sample_text
    assert tok.decode(ids) == hf_tokenizer.decode(ids, skip_special_tokens=False)


def test_overlapping_special_tokens_longest_wins(tok):
    assert tok.encode("<|endoftext|>!<|endoftext|><|end|>") == [2, 0, 1]


def test_special_tokens_as_text_when_not_allowed(tok):
    ids = tok.encode("a<|endoftext|>", allowed_special="none")
    assert 0 not in ids and tok.decode(ids) == "a<|endoftext|>"
    assert tok.encode("<|end|><|endoftext|>", allowed_special={"<|end|>"})[0] == 1


def test_unknown_allowed_special_is_an_error(tok):
    with pytest.raises(ValueError, match="not registered special tokens"):
        tok.encode("x", allowed_special={"<|im_start|>"})


# ----- tiktoken ------------------------------------------------------------------------------
def test_tiktoken_encoding_built_from_the_same_merges_agrees(tok, sample_text):
    tiktoken = pytest.importorskip("tiktoken")
    ordinary = {token: i for i, token in tok.vocab.items() if i not in tok.special_tokens.values()}
    encoding = tiktoken.Encoding("tinyllm_test", pat_str=GPT2_SPLIT_PATTERN,
                                 mergeable_ranks=ordinary, special_tokens=tok.special_tokens)
    assert tok.encode(sample_text) == encoding.encode(sample_text, allowed_special="all")


GPT2_URLS = {"vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
                          "vocab.bpe",
             "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
                             "encoder.json"}


def _tiktoken_cached_gpt2_files():
    """GPT-2's merges (vocab.bpe) and vocabulary (encoder.json) where tiktoken caches them, or
    None: nothing is downloaded."""
    cache = (os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
             or os.path.join(tempfile.gettempdir(), "data-gym-cache"))
    paths = {name: os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
             for name, url in GPT2_URLS.items()}
    return paths if all(os.path.isfile(p) for p in paths.values()) else None


def test_gpt2_files_give_gpt2s_ids(sample_text):
    tiktoken = pytest.importorskip("tiktoken")
    paths = _tiktoken_cached_gpt2_files()
    if paths is None:
        pytest.skip("GPT-2's vocab.bpe and encoder.json are not in tiktoken's cache (tests never "
                    "download); run tiktoken.get_encoding('gpt2') once online to enable this test")
    tok = BPETokenizer.from_files(paths["encoder.json"], paths["vocab.bpe"], ["<|endoftext|>"])
    assert tok.vocab_size == 50257 and tok.special_tokens == {"<|endoftext|>": 50256}
    gpt2 = tiktoken.get_encoding("gpt2")
    text = sample_text.replace("<|endoftext|>!", "!").replace("<|end|>", "")
    assert tok.encode(text) == gpt2.encode(text, allowed_special="all")


# ----- training ------------------------------------------------------------------------------
def test_training_tie_break_prefers_the_greatest_pair_of_byte_strings():
    # "ab cd": the pairs (a, b), (" ", c), (c, d) occur once each. The greatest pair of byte
    # strings is (b"c", b"d"), then (b"a", b"b") beats (b" ", b"cd") since b"a" > b" ".
    tok = BPETokenizer.train_from_iterator(["ab cd"], vocab_size=259)
    assert tok.merges == [(b"c", b"d"), (b"a", b"b"), (b" ", b"cd")]
    assert tok.encode("ab cd") == [257, 258]


def test_training_hand_example_counts_repeated_words():
    # "low low lower": chunks "low" x1, " low" x1, " lower" x1. (l, o) and (o, w) occur 3 times;
    # (o, w) > (l, o), so "ow" first; then (l, ow) 3 times; then (" ", low) twice.
    tok = BPETokenizer.train_from_iterator(["low low lower"], vocab_size=259)
    assert tok.merges == [(b"o", b"w"), (b"l", b"ow"), (b" ", b"low")]


def naive_merges(texts, num_merges):
    """Reference trainer: recount every pair before each merge; max by (count, (bytes, bytes))."""
    import regex
    words = Counter()
    for text in texts:
        words.update(tuple(bytes([b]) for b in c.encode("utf-8"))
                     for c in regex.findall(GPT2_SPLIT_PATTERN, text))
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                counts[pair] += n
        if not counts:
            break
        best = max(counts, key=lambda pair: (counts[pair], pair))
        merges.append(best)
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def test_incremental_training_equals_the_naive_reference(pydoc_text):
    texts = [pydoc_text[:8000], HARD_TEXT * 3, "aaaa bbbb aaaa"]
    tok = BPETokenizer.train_from_iterator(texts, vocab_size=256 + 150)
    assert tok.merges == naive_merges(texts, 150)


def test_trained_ids_are_bytes_then_merges_then_special_tokens(trained):
    assert trained.vocab_size == 1000
    assert all(trained.vocab[i] == bytes([i]) for i in range(256))
    assert trained.vocab[256] == b"".join(trained.merges[0])
    assert trained.special_tokens == {"<|endoftext|>": 999}


def test_special_token_text_in_training_data_is_never_merged():
    tok = BPETokenizer.train_from_iterator(["<|endoftext|>" * 50 + "ab"], vocab_size=258,
                                           special_tokens=["<|endoftext|>"])
    assert tok.merges == [(b"a", b"b")]


def test_training_from_files_equals_training_from_the_whole_text(pydoc_text, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(pydoc_text[:100_000], encoding="utf-8")
    from_file = BPETokenizer.train_from_files([path], vocab_size=600)
    from_text = BPETokenizer.train_from_iterator([pydoc_text[:100_000]], vocab_size=600)
    assert from_file.merges == from_text.merges


def test_training_is_deterministic_and_round_trips(trained, pydoc_text):
    again = BPETokenizer.train_from_iterator([pydoc_text], vocab_size=1000,
                                             special_tokens=["<|endoftext|>"])
    assert again.merges == trained.merges
    text = pydoc_text[:3000] + HARD_TEXT
    assert trained.decode(trained.encode(text)) == text
    assert len(pydoc_text.encode("utf-8")) / len(trained.encode(pydoc_text)) > 2.5


def test_training_vocab_size_too_small_is_an_error():
    with pytest.raises(ValueError, match="at least 256 bytes \\+ 1 special tokens = 257"):
        BPETokenizer.train_from_iterator(["abc"], vocab_size=256, special_tokens=["<|x|>"])


@FEW
@given(unicode_text)
def test_round_trip_on_arbitrary_unicode(trained, text):
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    assert trained.decode(trained.encode(text, allowed_special="none")) == text


# ----- encode_iterable ------------------------------------------------------------------------
def test_encode_iterable_equals_encode_on_files(trained, pydoc_text, tmp_path):
    code = load_corpus("stdlib", max_bytes=100_000)
    path = tmp_path / "text.txt"
    path.write_text(pydoc_text[:50_000] + code + "\n\n  \n", encoding="utf-8")
    with open(path, encoding="utf-8") as f:
        streamed = list(trained.encode_iterable(f))
    assert streamed == trained.encode(path.read_text(encoding="utf-8"))


@FEW
@given(st.lists(unicode_text, max_size=8))
def test_encode_iterable_equals_encode_on_any_pieces(trained, pieces):
    if any(0xD800 <= ord(c) <= 0xDFFF for piece in pieces for c in piece):
        return
    assert list(trained.encode_iterable(pieces)) == trained.encode("".join(pieces))


@pytest.mark.slow
def test_encode_iterable_streams_in_bounded_memory(trained):
    words = ["the", "model", "reads", "tokens", "42", "énorme", "(x)", "我们"]

    def lines(n):
        for i in range(n):
            yield " ".join(words[(i * 7 + k) % len(words)] for k in range(i % 13 + 3)) + ".\n"

    trained.encode("".join(lines(200)))                  # warm the cache of words
    tracemalloc.start()
    count = 0
    for token in trained.encode_iterable(lines(25_000)):
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total_bytes = sum(len(line.encode("utf-8")) for line in lines(25_000))
    assert total_bytes > 900_000 and count > 200_000
    # neither the whole text (> 1.8 MB as a str holding CJK) nor its ids (> 1.6 MB as a list)
    # is ever in memory at once
    assert peak < 500_000, peak


# ----- bad input -----------------------------------------------------------------------------
def test_decode_rejects_ids_outside_the_vocabulary(tok):
    with pytest.raises(ValueError, match="id 8000 is not in the vocabulary .ids run from 0 to "
                                         "7999"):
        tok.decode([5, 8000])
    with pytest.raises(ValueError, match="id -1"):
        tok.decode([-1])


def test_lone_surrogate_is_a_clear_error(tok):
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        tok.encode("a\ud800b")


def test_merges_txt_naming_tokens_not_in_vocab_is_an_error(tmp_path):
    vocab = {token_to_string(bytes([i])): i for i in range(256)}
    vocab["ab"] = 256
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\nab c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="merges.txt: merge 1 .'ab' 'c'. names the token 'abc', "
                                         "which is not in the vocabulary of .*vocab.json"):
        BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="merges.txt line 2: 'a b c' is not a merge"):
        BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_vocab_json_of_another_alphabet_is_an_error(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"▁the": 0}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.json: token '▁the' holds the character '▁', "
                                         "which is not in GPT-2's byte-to-unicode alphabet"):
        BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        BPETokenizer.from_files(tmp_path / "missing.json", tmp_path / "merges.txt")


@pytest.mark.parametrize("kind", ["WordPiece", "Unigram", "Whitespace"])
def test_tokenizer_json_of_another_family_is_an_error(kind, pydoc_text, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers
    if kind == "WordPiece":
        hf = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[UNK]"],
                                            show_progress=False)
    elif kind == "Unigram":
        hf = tokenizers.Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=300, show_progress=False)
    else:
        hf = tokenizers.Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False)
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.train_from_iterator([pydoc_text[:20_000]], trainer)
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    expected = {"WordPiece": "holds a WordPiece model; BPETokenizer reads byte-level BPE",
                "Unigram": "holds a Unigram model; BPETokenizer reads byte-level BPE",
                "Whitespace": "the pre-tokenizer is \\['Whitespace'\\]; BPETokenizer reads "
                              "byte-level BPE"}[kind]
    with pytest.raises(ValueError, match=expected) as error:
        BPETokenizer.from_tokenizer_json(path)
    assert str(path) in str(error.value)


def test_constructor_errors_name_the_problem():
    vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match="merge 0 .b'a', b'b'. needs the token b'ab'"):
        BPETokenizer(vocab, [(b"a", b"b")])
    with pytest.raises(ValueError, match="ids 97 and 300 both spell b'a'"):
        BPETokenizer({**vocab, 300: b"a"}, [])
    with pytest.raises(ValueError, match="special token '<s>' has id 97, which the vocabulary "
                                         "already uses"):
        BPETokenizer(vocab, [], special_tokens={"<s>": 97})


def test_missing_byte_is_a_clear_error():
    tok = BPETokenizer({i: bytes([i]) for i in range(0xC3)}, [])      # no bytes 0xC3..0xFF
    assert tok.encode("ok") == [ord("o"), ord("k")]
    with pytest.raises(ValueError, match="the byte 0xC3 of 'é' has no token; a byte-level "
                                         "vocabulary must hold all 256 single bytes"):
        tok.encode("é")


def test_missing_regex_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "regex", None)
    with pytest.raises(ImportError, match="pip install 'tinyllm\\[tokenizers\\]'"):
        BPETokenizer({i: bytes([i]) for i in range(256)}, [])


def test_split_streamed_text_blocks_join_back_and_end_at_line_breaks():
    blocks = list(split_streamed_text(["ab\n", "cd\n", "\n", "  ef\n", "gh"]))
    assert "".join(blocks) == "ab\ncd\n\n  ef\ngh"
    assert blocks == ["ab\n", "cd\n\n  ef\n", "gh"]
