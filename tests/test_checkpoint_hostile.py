"""Checkpoints a stranger sends: every hostile file is refused with one CheckpointError line
before anything large is allocated (zip bombs, huge declared shapes, forged headers, NaN
weights), and the commands that read checkpoints exit with status 2 and one line on stderr."""

import io
import json
import struct
import zipfile

import numpy as np
import pytest

from tinyllm import random
from tinyllm.cli import main
from tinyllm.training import checkpoint as ckpt
from tinyllm.training import CheckpointError, load_checkpoint, save_checkpoint
from tinyllm.training.config import TrainConfig

from test_checkpoint import trained_gpt

WTE = "model/transformer.wte.weight"


@pytest.fixture
def good(tmp_path):
    model, args, tokenizer, optimizer = trained_gpt()
    config = TrainConfig(n_layer=1, n_head=2, n_embd=8, block_size=8, steps=10, warmup=0,
                         out=str(tmp_path)).to_dict()
    return save_checkpoint(tmp_path / "good.npz", model, "gpt", args, tokenizer=tokenizer,
                           optimizer=optimizer, config=config, step=3,
                           rng_state=random.get_rng_state(),
                           history={"step": [1], "train_loss": [4.0]})


def contents(path):
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return json.loads(arrays.pop(ckpt.HEADER_KEY).tobytes()), arrays


def forge(path, out, change_header=None, change_arrays=None, sign=True):
    """A copy of checkpoint ``path`` with header/arrays changed and (by default) a checksum
    that matches them, so that only the check under test can refuse it."""
    header, arrays = contents(path)
    if change_arrays:
        change_arrays(arrays)
        header["arrays"] = {n: [v.dtype.str, list(v.shape)] for n, v in arrays.items()}
    if change_header:
        change_header(header)
    if sign:
        header["sha256"] = ckpt.checkpoint_checksum(header, arrays)
    arrays[ckpt.HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


def refused(path, match, **kwargs):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, **kwargs)
    assert "\n" not in str(info.value)


@pytest.fixture
def no_array_decompressed(monkeypatch):
    """Fail the test if any array but the header is decompressed."""
    real = ckpt._read_array

    def spy(path, archive, info, layout):
        assert info.filename == ckpt.HEADER_KEY + ".npy", "decompressed " + info.filename
        return real(path, archive, info, layout)
    monkeypatch.setattr(ckpt, "_read_array", spy)


# ----- zip bombs and huge declarations ----------------------------------------------------
def write_bomb_member(archive, name, shape, zero_bytes, chunk=1 << 20):
    """A .npy zip entry declaring ``shape`` float32, holding ``zero_bytes`` zeros streamed
    through the zip file's deflate in chunks (so the test itself never holds them)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape})
    with archive.open(name + ".npy", "w", force_zip64=True) as f:
        f.write(header.getvalue())
        zeros = bytes(chunk)
        for start in range(0, zero_bytes, chunk):
            f.write(zeros[:min(chunk, zero_bytes - start)])


def rewrite_with_bomb(good, out, shape, zero_bytes):
    header, arrays = contents(good)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            if name != WTE:
                with archive.open(name + ".npy", "w") as f:
                    np.lib.format.write_array(f, value)
        write_bomb_member(archive, WTE, shape, zero_bytes)
        with archive.open(ckpt.HEADER_KEY + ".npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(json.dumps(header).encode(), np.uint8))
    return out


def test_a_zip_bomb_beyond_the_limit_is_refused_before_decompression(good, tmp_path,
                                                                     no_array_decompressed):
    n = 8 * 2 ** 20                                     # 32 MiB of zeros, ~32 KiB compressed
    bomb = rewrite_with_bomb(good, tmp_path / "bomb.npz", (n,), 4 * n)
    assert bomb.stat().st_size < 2 ** 20
    refused(bomb, r"holds 32\.\d MiB of arrays, more than the 1\.0 MiB .*--max-checkpoint-bytes",
            max_bytes=2 ** 20)


def test_a_member_whose_npy_shape_disagrees_with_its_zip_size_is_refused(good, tmp_path,
                                                                         no_array_decompressed):
    bomb = rewrite_with_bomb(good, tmp_path / "bomb.npz", (1_500_000_000,), 4096)  # says 6 GB
    refused(bomb, r"declares shape \(1500000000,\) \(6000000000 bytes\) but its zip entry")


def test_a_forged_zip_directory_size_is_refused_before_decompression(good, tmp_path,
                                                                     no_array_decompressed):
    data = bytearray(good.read_bytes())
    entry = data.index(b"PK\x01\x02")
    with zipfile.ZipFile(good) as archive:      # the central directory entry of the wte array
        names = [info.filename for info in archive.infolist()]
    for _ in range(names.index(WTE + ".npy")):
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 24:entry + 28] = struct.pack("<I", 0xFFFFFFF0)     # uncompressed size: 4 GiB
    forged = tmp_path / "forged.npz"
    forged.write_bytes(bytes(data))
    refused(forged, r"more than the 2\.0 GiB this command loads")


def test_a_huge_declared_shape_in_the_header_is_refused(good, tmp_path, no_array_decompressed):
    def huge(header):
        header["arrays"][WTE] = ["<f4", [10 ** 12]]
    refused(forge(good, tmp_path / "f.npz", huge),
            r"does not fit a gpt model .*has shape \(1000000000000,\)")


def test_a_huge_model_in_the_arguments_is_refused_before_building_it(good, tmp_path):
    def huge(header):
        header["model_args"].update(n_embd=65536, n_layer=64)
    refused(forge(good, tmp_path / "f.npz", huge),
            r"describes a gpt model of about 12\.\d TiB, more than the 2\.0 GiB")


# ----- the header's structure ---------------------------------------------------------------
@pytest.mark.parametrize("field, value, match", [
    ("optimizer", {"foo": 1}, "'optimizer' must be null or"),
    ("step", None, "'step' must be an integer >= 0, got null"),
    ("step", -3, "'step' must be an integer >= 0"),
    ("arrays", [], "'arrays' must be an object of"),
    ("config", [1, 2], "'config' must be an object"),
    ("config", {"lr": "fast"}, "its training config is unusable"),
    ("config", {"n_layer": 0}, "its training config is unusable: n_layer"),
    ("history", {"train_loss": "low"}, "'history' must be an object of lists of numbers"),
    ("rng_state", "seed", "'rng_state' must be an object or null"),
    ("rng_state", {"bit_generator": "PCG64"}, "its random-generator state is unusable"),
    ("tokenizer", {"type": "CharTokenizer"}, "unusable tokenizer"),
    ("model_args", {"n_embd": [8]}, "'model_args' must be an object of numbers"),
    ("model_args", {"n_embd": "wide"}, "its model arguments cannot build a gpt model"),
    ("model_type", "transformer-xl", "'model_type' must be one of gpt"),
    ("extra", 7, "'extra' must be an object"),
])
def test_a_header_field_of_the_wrong_type_or_range_is_refused(good, tmp_path, field, value,
                                                              match):
    def change(header):
        header[field] = value
    refused(forge(good, tmp_path / "f.npz", change), match)


def test_a_missing_or_unknown_header_field_is_refused(good, tmp_path):
    refused(forge(good, tmp_path / "a.npz", lambda h: h.pop("history")), "it has no 'history'")
    refused(forge(good, tmp_path / "b.npz", lambda h: h.update(evil=1)), "unknown field")


def test_deeply_nested_json_is_refused(good, tmp_path):
    def deep(header):
        header["extra"] = {"x": 0}
    path = forge(good, tmp_path / "deep.npz", deep, sign=False)
    header, arrays = contents(path)
    text = json.dumps(header).replace('{"x": 0}', "[" * 100_000 + "]" * 100_000)
    arrays[ckpt.HEADER_KEY] = np.frombuffer(text.encode(), np.uint8)
    np.savez(path, **arrays)
    refused(path, "nested too deeply")
    shallow = json.dumps(header).replace('{"x": 0}', "[" * 40 + "]" * 40)
    arrays[ckpt.HEADER_KEY] = np.frombuffer(shallow.encode(), np.uint8)
    np.savez(path, **arrays)
    refused(path, "nested 4\\d deep, more than 16")


def test_nan_in_the_header_json_is_refused(good, tmp_path):
    path = forge(good, tmp_path / "f.npz", lambda h: h.update(step=12345), sign=False)
    header, arrays = contents(path)
    text = json.dumps(header).replace("12345", "NaN")
    arrays[ckpt.HEADER_KEY] = np.frombuffer(text.encode(), np.uint8)
    np.savez(path, **arrays)
    refused(path, "not valid JSON .*NaN is not a JSON number")


def test_the_checksum_covers_the_header(good, tmp_path):
    refused(forge(good, tmp_path / "f.npz", lambda h: h.update(step=999), sign=False),
            "checksum of its header and arrays does not match")


def test_a_version_1_checkpoint_is_refused_clearly(good, tmp_path):
    refused(forge(good, tmp_path / "f.npz", lambda h: h.update(version=1)),
            "format version 1; this tinyllm reads version 2 .*older tinyllm")


def test_a_string_array_is_refused(good, tmp_path):
    def strings(arrays):
        arrays["model/transformer.ln_f.bias"] = np.array(["a"] * 8)
    refused(forge(good, tmp_path / "f.npz", change_arrays=strings), "holds only numbers")


# ----- weights ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_with_a_valid_checksum_are_refused(good, tmp_path, bad):
    def poison(arrays):
        arrays[WTE] = arrays[WTE].copy()
        arrays[WTE][0, 0] = bad
    refused(forge(good, tmp_path / "f.npz", change_arrays=poison),
            "NaN or infinite numbers in %s" % WTE)


def test_a_valid_checkpoint_still_loads_after_the_checks(good):
    checkpoint = load_checkpoint(good)
    assert checkpoint.step == 3 and checkpoint.model_state[WTE.split("/")[1]].dtype == np.float32


# ----- the commands -------------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["generate", "--checkpoint", "{path}", "--max-new-tokens", "2"],
    ["eval", "--checkpoint", "{path}", "--json"],
    ["serve", "--checkpoint", "{path}", "--port", "0"],
    ["train", "--resume", "{path}", "--no-progress"],
])
@pytest.mark.parametrize("case", ["nan weights", "huge model", "null step", "limit"])
def test_commands_refuse_hostile_checkpoints_with_one_line_and_status_2(good, tmp_path, capsys,
                                                                        command, case):
    path = tmp_path / "hostile" / "ckpt.npz"
    path.parent.mkdir()
    extra = []
    if case == "nan weights":
        forge(good, path, change_arrays=lambda a: a.__setitem__(WTE, a[WTE] * np.nan))
    elif case == "huge model":
        forge(good, path, lambda h: h["model_args"].update(n_embd=65536, n_layer=64))
    elif case == "null step":
        forge(good, path, lambda h: h.update(step=None))
    else:
        path.write_bytes(good.read_bytes())
        extra = ["--max-checkpoint-bytes", "1000"]
    status = main([part.format(path=path) for part in command] + extra)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("tinyllm %s: error: " % command[0]), err
