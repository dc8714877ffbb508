"""Corpora, the train/validation split, token files and batching."""

import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.data import (bucket_by_length, collate_seq2seq, get_lm_batch, iterate_lm_batches,
                          load_corpus, load_tokens, mask_tokens, pad_sequences, save_tokens,
                          train_val_split)

FEW = settings(max_examples=25, deadline=None)


# ----- corpora ------------------------------------------------------------------------------
def test_pydoc_corpus_is_large_and_deterministic():
    text = load_corpus()
    assert len(text.encode("utf-8")) > 400_000
    assert load_corpus("pydoc") == text
    from pydoc_data.topics import topics
    assert topics["if"] in text and topics["while"] in text
    assert text.index(topics["if"]) < text.index(topics["while"])      # sorted key order


def test_stdlib_corpus_is_python_source_within_the_limit():
    text = load_corpus("stdlib", max_bytes=150_000)
    assert 50_000 < len(text.encode("utf-8")) <= 150_000
    assert "def " in text and "import " in text
    assert load_corpus("stdlib", max_bytes=150_000) == text
    # it starts with a whole file of the library, followed by a blank line
    root = Path(sysconfig.get_paths()["stdlib"])
    candidates = [p for p in root.rglob("*.py") if "site-packages" not in p.parts
                  and p.stat().st_size <= 150_000]
    assert any(text.startswith(p.read_bytes().decode("utf-8", "replace") + "\n\n")
               for p in candidates)


def test_user_file_corpus(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("It was a dark and stormy night. 我非常喜欢这个产品\n", encoding="utf-8")
    assert load_corpus(path) == path.read_text(encoding="utf-8")
    assert load_corpus(str(path)) == path.read_text(encoding="utf-8")


def test_folder_corpus_reads_text_files_in_sorted_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.md").write_text("first")
    (tmp_path / "sub" / "c.txt").write_text("third")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / ".hidden").write_text("secret")
    (tmp_path / "empty.txt").write_text("")
    assert load_corpus(tmp_path) == "first\n\nsecond\n\nthird"


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a built-in corpus.*nor an existing"):
        load_corpus(tmp_path / "nope.txt")


def test_empty_corpus_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(ValueError, match=r"corpus file .*empty\.txt is empty"):
        load_corpus(path)
    path.write_text("  \n\n ")
    with pytest.raises(ValueError, match="is empty \\(it holds only whitespace\\)"):
        load_corpus(path)


def test_binary_corpus_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(ValueError, match="looks binary: it contains NUL bytes"):
        load_corpus(path)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text: byte 0xe9 at offset 3"):
        load_corpus(latin1)


def test_folder_without_text_files_is_a_clear_error(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "b.txt").write_text("")
    with pytest.raises(ValueError, match="has no text files"):
        load_corpus(tmp_path)


# ----- train/validation split ---------------------------------------------------------------
def test_train_val_split_takes_the_last_fraction_for_validation():
    data = np.arange(100)
    train, val = train_val_split(data, val_fraction=0.1)
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(val, np.arange(90, 100))
    train_text, val_text = train_val_split("abcdefghij", val_fraction=0.2)
    assert (train_text, val_text) == ("abcdefgh", "ij")


def test_train_val_split_bad_fraction():
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        train_val_split([1, 2, 3], val_fraction=1.0)


# ----- token files --------------------------------------------------------------------------
def test_token_file_round_trip_is_a_memmap(tmp_path):
    ids = np.random.default_rng(0).integers(0, 512, size=1000)
    path = save_tokens(tmp_path / "train.bin", ids, vocab_size=512)
    loaded = load_tokens(path)
    assert isinstance(loaded, np.memmap)
    assert loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, ids)
    np.testing.assert_array_equal(load_tokens(tmp_path / "train.json"), ids)


def test_token_file_uses_uint32_for_large_vocabularies(tmp_path):
    ids = [0, 70_000, 5]
    save_tokens(tmp_path / "big", ids)
    loaded = load_tokens(tmp_path / "big")
    assert loaded.dtype == np.uint32
    assert loaded.tolist() == ids


def test_truncated_token_file_is_a_clear_error(tmp_path):
    path = save_tokens(tmp_path / "val.bin", np.arange(100), vocab_size=100)
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(ValueError, match="truncated or corrupt: its header says 100 tokens of "
                                         "uint16 \\(200 bytes\\) but the file holds 150 bytes"):
        load_tokens(path)


def test_token_file_without_header_is_a_clear_error(tmp_path):
    path = save_tokens(tmp_path / "val.bin", np.arange(10))
    (tmp_path / "val.json").unlink()
    with pytest.raises(FileNotFoundError, match="val.json does not exist"):
        load_tokens(path)


def test_save_tokens_rejects_ids_outside_the_vocabulary(tmp_path):
    with pytest.raises(ValueError, match=r"ids must lie in \[0, vocab_size=10\), found 12"):
        save_tokens(tmp_path / "x", [1, 12], vocab_size=10)


# ----- language-model batches ---------------------------------------------------------------
def test_lm_batch_windows_and_shifted_targets():
    tokens = np.arange(1000, 1300)                   # token value = 1000 + position
    x, y = get_lm_batch(tokens, batch_size=16, block_size=8, generator=np.random.default_rng(1))
    assert x.shape == y.shape == (16, 8)
    assert x.dtype == y.dtype == np.int64
    starts = x[:, 0] - 1000
    np.testing.assert_array_equal(x, tokens[starts[:, None] + np.arange(8)])
    np.testing.assert_array_equal(y, x + 1)          # the next token
    assert starts.min() >= 0 and (starts + 8).max() < len(tokens)


@FEW
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 12), st.integers(0, 5))
def test_lm_batch_windows_lie_within_the_data(seed, batch_size, block_size, extra):
    tokens = np.arange(block_size + 1 + extra)
    x, y = get_lm_batch(tokens, batch_size, block_size, generator=np.random.default_rng(seed))
    assert x.min() >= 0 and y.max() <= len(tokens) - 1
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_lm_batch_is_reproducible_with_a_seed():
    tokens = np.random.default_rng(0).integers(0, 50, size=500)
    a = get_lm_batch(tokens, 4, 16, generator=np.random.default_rng(7))
    b = get_lm_batch(tokens, 4, 16, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    tinyllm.manual_seed(3)
    c = get_lm_batch(tokens, 4, 16)
    tinyllm.manual_seed(3)
    d = get_lm_batch(tokens, 4, 16)
    np.testing.assert_array_equal(c[0], d[0])


def test_lm_batch_from_a_memmap(tmp_path):
    path = save_tokens(tmp_path / "t", np.arange(200) % 97, vocab_size=97)
    x, y = get_lm_batch(load_tokens(path), 3, 10, generator=np.random.default_rng(0))
    assert type(x) is np.ndarray and x.dtype == np.int64
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])


def test_lm_batch_too_short_is_a_clear_error():
    with pytest.raises(ValueError, match="holds 8 tokens, but one window needs block_size \\+ 1 "
                                         "= 9"):
        get_lm_batch(np.arange(8), batch_size=2, block_size=8)


def test_iterate_lm_batches_predicts_each_token_once():
    tokens = np.arange(103)
    batches = list(iterate_lm_batches(tokens, batch_size=4, block_size=10))
    xs = np.concatenate([x for x, _ in batches])
    ys = np.concatenate([y for _, y in batches])
    assert [len(x) for x, _ in batches] == [4, 4, 2]   # windows start at 0, 10, ..., 90
    np.testing.assert_array_equal(ys.ravel(), np.arange(1, 101))
    np.testing.assert_array_equal(xs.ravel(), np.arange(0, 100))
    assert len(list(iterate_lm_batches(tokens, 4, 10, max_batches=1))) == 1


# ----- padding ------------------------------------------------------------------------------
def test_pad_sequences_on_the_keras_example():
    sentences = ["I love my dog", "I love my cat", "You love my dog!"]
    word_index = {"<pad>": 0, "love": 1, "my": 2, "i": 3, "dog": 4, "cat": 5, "you": 6}
    sequences = [[word_index[w.strip("!").lower()] for w in s.split()] for s in sentences]
    padded, mask = pad_sequences(sequences, maxlen=5, padding="post")
    np.testing.assert_array_equal(padded, [[3, 1, 2, 4, 0], [3, 1, 2, 5, 0], [6, 1, 2, 4, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0]] * 3)
    assert padded.dtype == np.int64 and mask.dtype == bool


def test_pad_sequences_keras_defaults_pad_and_truncate_at_the_front():
    padded, mask = pad_sequences([[1, 2], [1, 2, 3, 4, 5, 6, 7]], maxlen=5)
    np.testing.assert_array_equal(padded, [[0, 0, 0, 1, 2], [3, 4, 5, 6, 7]])
    np.testing.assert_array_equal(mask, [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    padded, _ = pad_sequences([[1, 2, 3, 4, 5, 6, 7]], maxlen=5, truncating="post", value=-1)
    np.testing.assert_array_equal(padded, [[1, 2, 3, 4, 5]])


def keras_pad_reference(sequences, maxlen, padding, truncating, value):
    """Keras's loop, written out: cut, then place at the front or the back."""
    out = []
    for s in sequences:
        s = list(s)
        if len(s) > maxlen:
            s = s[len(s) - maxlen:] if truncating == "pre" else s[:maxlen]
        fill = [value] * (maxlen - len(s))
        out.append(s + fill if padding == "post" else fill + s)
    return out


@FEW
@given(st.lists(st.lists(st.integers(1, 9), max_size=8), min_size=1, max_size=5),
       st.one_of(st.none(), st.integers(0, 9)), st.sampled_from(["pre", "post"]),
       st.sampled_from(["pre", "post"]))
def test_pad_sequences_matches_the_keras_rules(sequences, maxlen, padding, truncating):
    padded, mask = pad_sequences(sequences, maxlen, padding, truncating, value=0)
    width = max(len(s) for s in sequences) if maxlen is None else maxlen
    expected = np.array(keras_pad_reference(sequences, width, padding, truncating, 0),
                        dtype=np.int64).reshape(len(sequences), width)
    np.testing.assert_array_equal(padded, expected)
    np.testing.assert_array_equal(mask, padded != 0)      # real ids are 1..9


def test_pad_sequences_bad_option():
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post', got 'end'"):
        pad_sequences([[1]], padding="end")


def test_collate_seq2seq_shifts_the_target_by_one():
    pad, bos, eos = 0, 1, 2
    batch = collate_seq2seq([[5, 6, 7], [8]], [[10, 11], [12, 13, 14]], pad, bos, eos)
    np.testing.assert_array_equal(batch.src, [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(batch.src_padding_mask, [[0, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(batch.tgt_in, [[1, 10, 11, 0], [1, 12, 13, 14]])
    np.testing.assert_array_equal(batch.tgt_out, [[10, 11, 2, 0], [12, 13, 14, 2]])
    np.testing.assert_array_equal(batch.tgt_padding_mask, [[0, 0, 0, 1], [0, 0, 0, 0]])
    src, src_padding_mask, tgt_in, tgt_out, tgt_padding_mask = batch     # unpacks in order
    np.testing.assert_array_equal(tgt_in[:, 1:][~tgt_padding_mask[:, 1:]],
                                  tgt_out[:, :-1][~tgt_padding_mask[:, 1:]])


def test_collate_seq2seq_errors():
    with pytest.raises(ValueError, match="2 source sequences but 1 target"):
        collate_seq2seq([[1], [2]], [[3]], 0, 1, 2)
    with pytest.raises(ValueError, match="source sequence 1 is empty"):
        collate_seq2seq([[1], []], [[3], [4]], 0, 1, 2)


# ----- masked language modelling ------------------------------------------------------------
MASK_ID, PAD_ID, CLS_ID, VOCAB = 3, 0, 1, 1000


def masked_sample(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, VOCAB, size=(200, 500))
    ids[:, 0] = CLS_ID
    ids[:, -50:] = PAD_ID
    inputs, labels = mask_tokens(ids, MASK_ID, VOCAB, special_ids=(PAD_ID, CLS_ID),
                                 generator=np.random.default_rng(seed + 1))
    return ids, inputs, labels


def test_mask_tokens_selects_about_15_percent_with_the_80_10_10_rule():
    ids, inputs, labels = masked_sample()
    ordinary = (ids != PAD_ID) & (ids != CLS_ID)
    selected = labels != -100
    assert abs(selected.sum() / ordinary.sum() - 0.15) < 0.005
    n = selected.sum()
    masked = selected & (inputs == MASK_ID)
    unchanged = selected & (inputs == ids)
    replaced = selected & (inputs != MASK_ID) & (inputs != ids)
    assert abs(masked.sum() / n - 0.8) < 0.01
    assert abs(replaced.sum() / n - 0.1) < 0.01             # (a random draw may equal the id)
    assert abs(unchanged.sum() / n - 0.1) < 0.01
    assert set(np.unique(inputs[replaced])).isdisjoint({MASK_ID, PAD_ID, CLS_ID})


def test_mask_tokens_labels_and_untouched_positions():
    ids, inputs, labels = masked_sample(seed=5)
    selected = labels != -100
    np.testing.assert_array_equal(labels[selected], ids[selected])
    np.testing.assert_array_equal(inputs[~selected], ids[~selected])
    assert inputs.dtype == labels.dtype == np.int64


def test_mask_tokens_never_selects_special_tokens_or_padding():
    ids, inputs, labels = masked_sample(seed=9)
    special = (ids == PAD_ID) | (ids == CLS_ID)
    assert (labels[special] == -100).all()
    np.testing.assert_array_equal(inputs[special], ids[special])


def test_mask_tokens_is_reproducible_with_a_seed():
    ids = np.arange(4, 200).reshape(4, 49)
    a = mask_tokens(ids, MASK_ID, 200, generator=np.random.default_rng(2))
    b = mask_tokens(ids, MASK_ID, 200, generator=np.random.default_rng(2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ----- bucketing ----------------------------------------------------------------------------
def test_bucket_by_length_covers_every_index_once():
    rng = np.random.default_rng(0)
    seqs = [[0] * n for n in rng.integers(1, 100, size=1003)]
    batches = bucket_by_length(seqs, batch_size=16, generator=np.random.default_rng(1),
                               bucket_size=160)
    everything = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(everything), np.arange(1003))
    assert all(1 <= len(b) <= 16 for b in batches)


def test_bucket_by_length_groups_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=2000)
    seqs = [[0] * n for n in lengths]
    batches = bucket_by_length(seqs, batch_size=20, generator=np.random.default_rng(1))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.arange(2000), 100)])
    assert spread < 0.2 * random_spread


def test_bucket_by_length_is_reproducible_with_a_seed():
    seqs = [[0] * (i % 17 + 1) for i in range(300)]
    a = bucket_by_length(seqs, 8, generator=np.random.default_rng(4))
    b = bucket_by_length(seqs, 8, generator=np.random.default_rng(4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
