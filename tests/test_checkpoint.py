"""Checkpoints (tinyllm.training.checkpoint): a full round trip, and clear errors for truncated,
corrupt, foreign and other-model files; writes are atomic."""

import json
import stat

import numpy as np
import pytest

import tinyllm
from tinyllm import random
from tinyllm.data import CharTokenizer
from tinyllm.models import GPT, GPTConfig
from tinyllm.training import checkpoint as ckpt
from tinyllm.training import CheckpointError, load_checkpoint, load_model, save_checkpoint
from tinyllm.training.trainer import configure_optimizer
from tinyllm.training.config import TrainConfig

TEXT = "a tiny corpus for a tiny model.\n" * 4
GPT_ARGS = dict(block_size=8, vocab_size=0, n_layer=1, n_head=2, n_embd=8, dropout=0.0,
                bias=True)


def trained_gpt():
    """A tiny GPT, its tokenizer and an AdamW that has taken one step (non-zero moments)."""
    tokenizer = CharTokenizer.from_text(TEXT)
    args = dict(GPT_ARGS, vocab_size=tokenizer.vocab_size)
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(**args))
    optimizer = configure_optimizer(model, TrainConfig(steps=10, warmup=0))
    ids = np.array([tokenizer.encode(TEXT[:9])])
    _, loss = model(ids[:, :8], ids[:, 1:9])
    loss.backward()
    optimizer.step()
    return model, args, tokenizer, optimizer


@pytest.fixture
def saved(tmp_path):
    model, args, tokenizer, optimizer = trained_gpt()
    path = save_checkpoint(tmp_path / "ckpt.npz", model, "gpt", args, tokenizer=tokenizer,
                           optimizer=optimizer, config={"steps": 10}, step=7,
                           rng_state=random.get_rng_state(),
                           history={"step": [1, 2], "train_loss": [4.5, 4.25]})
    return path, model, tokenizer, optimizer


def test_round_trip_restores_everything(saved):
    path, model, tokenizer, optimizer = saved
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_type == "gpt" and checkpoint.step == 7
    assert checkpoint.config == {"steps": 10}
    assert checkpoint.history == {"step": [1, 2], "train_loss": [4.5, 4.25]}
    assert checkpoint.rng_state == random.get_rng_state()
    assert checkpoint.tokenizer.encode("tiny") == tokenizer.encode("tiny")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(checkpoint.model_state[name], value)
        assert checkpoint.model_state[name].dtype == value.dtype
    saved_state, own_state = checkpoint.optimizer_state, optimizer.state_dict()
    assert saved_state["param_groups"] == own_state["param_groups"]
    for index, state in own_state["state"].items():
        assert saved_state["state"][index]["step"] == state["step"]
        np.testing.assert_array_equal(saved_state["state"][index]["exp_avg_sq"],
                                      state["exp_avg_sq"])


def test_the_rebuilt_model_computes_the_same_logits(saved):
    path, model, _, _ = saved
    rebuilt, checkpoint = load_model(path)
    ids = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(rebuilt(ids)[0].data, model.eval()(ids)[0].data)
    assert not rebuilt.training


def test_a_folder_means_the_checkpoint_inside_it(saved):
    path, _, _, _ = saved
    assert load_checkpoint(path.parent).step == 7


def test_the_optimizer_state_loads_back_into_an_optimizer(saved):
    path, _, _, optimizer = saved
    rebuilt, checkpoint = load_model(path)
    fresh = configure_optimizer(rebuilt, TrainConfig(steps=10, warmup=0))
    fresh.load_state_dict(checkpoint.optimizer_state)
    for p_own, p_new in zip(optimizer.param_groups[0]["params"], fresh.param_groups[0]["params"]):
        np.testing.assert_array_equal(optimizer.state[p_own]["exp_avg"],
                                      fresh.state[p_new]["exp_avg"])


@pytest.mark.parametrize("kept", ["nothing", "30%", "half", "90%", "all but one byte"])
def test_a_truncated_checkpoint_is_reported(saved, kept):
    path, _, _, _ = saved
    data = path.read_bytes()
    size = {"nothing": 0, "30%": len(data) * 3 // 10, "half": len(data) // 2,
            "90%": len(data) * 9 // 10, "all but one byte": len(data) - 1}[kept]
    path.write_bytes(data[:size])
    with pytest.raises(CheckpointError, match="checkpoint .* is truncated or corrupt"):
        load_checkpoint(path)


def test_a_flipped_byte_is_reported(saved):
    path, model, _, _ = saved
    data = bytearray(path.read_bytes())
    weights = model.state_dict()["transformer.wpe.weight"].tobytes()
    offset = bytes(data).index(weights[:64]) + 10
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_arrays_that_do_not_match_the_checksum_are_reported(saved, tmp_path):
    path, _, _, _ = saved
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["model/transformer.wpe.weight"] = arrays["model/transformer.wpe.weight"] + 1
    forged = tmp_path / "forged.npz"
    np.savez(forged, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(forged)


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinyllm checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")


def test_another_format_version_is_refused(saved, tmp_path):
    path, _, _, _ = saved
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays[ckpt.HEADER_KEY].tobytes())
    header["version"] = 99
    arrays[ckpt.HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    future = tmp_path / "future.npz"
    np.savez(future, **arrays)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(future)


def test_a_checkpoint_of_another_model_type_is_refused(saved):
    path, _, _, _ = saved
    with pytest.raises(CheckpointError, match="holds a 'gpt' model, but tinyllm test needs "
                                              "'lstm_classifier'"):
        load_model(path, ("lstm_classifier",), "tinyllm test")


def test_weights_that_do_not_fit_the_saved_arguments_are_refused(tmp_path):
    model, args, tokenizer, _ = trained_gpt()
    path = save_checkpoint(tmp_path / "ckpt.npz", model, "gpt", dict(args, n_embd=16),
                           tokenizer=tokenizer)
    with pytest.raises(CheckpointError, match="does not fit a gpt model"):
        load_model(path)


def test_writing_is_atomic_a_failed_save_keeps_the_old_checkpoint(saved, monkeypatch):
    path, model, tokenizer, _ = saved
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, "gpt", {}, tokenizer=tokenizer, step=8)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.npz"]     # no temp file left
    assert load_checkpoint(path).step == 7


def test_unknown_model_types_and_non_finite_json_are_refused(tmp_path):
    model, args, tokenizer, _ = trained_gpt()
    with pytest.raises(ValueError, match="unknown model type 'transformer-xl'"):
        save_checkpoint(tmp_path / "c.npz", model, "transformer-xl", args)
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "c.npz", model, "gpt", args,
                        history={"train_loss": [float("nan")]})


def test_the_checkpoint_gets_the_usual_file_permissions(saved):
    path, _, _, _ = saved
    reference = path.parent / "reference.txt"
    reference.write_text("written the ordinary way")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
