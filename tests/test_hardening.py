"""Mistakes fail at once, in one line with status 2 and what to fix: training settings that
cannot be saved or cannot fit, output folders, signals, environment, sampling options, corpora,
and the small API mistakes (Linear(0, 2), ragged lists, string arrays)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinyllm as tl
from tinyllm import nn
from tinyllm.cli import main
from tinyllm.data import corpus
from tinyllm.kernels.backend import cuda_available
from tinyllm.training import Trainer, TrainConfig, load_checkpoint, save_checkpoint
from tinyllm.training.trainer import prepare_output_folder

from test_checkpoint import trained_gpt

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--block-size", "8",
        "--batch-size", "2", "--sample-tokens", "0", "--eval-batches", "1", "--no-progress",
        "--backend", "numpy"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 40)
    return path


def run_main(capsys, *argv):
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return status, err


def assert_one_line_error(status, err, command, match):
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("tinyllm %s: error: " % command), err
    assert match in err, err


# ----- settings checked before training -----------------------------------------------------
def test_clip_inf_fails_before_training(tmp_path, capsys, text_file):
    out = tmp_path / "run"
    status, err = run_main(capsys, "train", "--corpus", text_file, "--clip", "inf",
                           "--out", out, *TINY)
    assert_one_line_error(status, err, "train", "clip must be a finite number, got inf")
    assert not out.exists()


def test_out_naming_a_file_fails_before_training(tmp_path, capsys, text_file):
    status, err = run_main(capsys, "train", "--corpus", text_file, "--out", text_file, *TINY)
    assert_one_line_error(status, err, "train", "is a file, not a folder")


def test_an_unwritable_out_fails_before_training(tmp_path, capsys, text_file):
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    status, err = run_main(capsys, "train", "--corpus", text_file, "--out", locked, *TINY)
    assert_one_line_error(status, err, "train", "is not writable")


def test_a_new_run_into_a_folder_with_a_checkpoint_needs_resume_or_overwrite(tmp_path, capsys,
                                                                            text_file):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ckpt.npz").write_bytes(b"an earlier run's checkpoint")
    status, err = run_main(capsys, "train", "--corpus", text_file, "--out", out, *TINY)
    assert_one_line_error(status, err, "train", "already holds a checkpoint: pass --resume")
    assert (out / "ckpt.npz").read_bytes() == b"an earlier run's checkpoint"
    config = TrainConfig(corpus=str(text_file), out=str(out), n_layer=1, n_head=2, n_embd=8,
                         block_size=8, steps=10)
    Trainer(config, progress=False, log=lambda _: None, overwrite=True)      # accepted


def test_orphaned_temporary_checkpoints_are_removed_when_a_run_starts(tmp_path):
    dead_pid = 2 ** 22 + 12345                   # above Linux's pid_max: no such process
    orphan = tmp_path / ("ckpt.npz.%d.0123abcd.tmp" % dead_pid)
    live = tmp_path / ("ckpt.npz.%d.89abcdef.tmp" % os.getppid())     # a live writer's
    orphan.write_bytes(b"half")
    live.write_bytes(b"being written")
    messages = []
    prepare_output_folder(tmp_path, messages.append)
    assert not orphan.exists() and live.exists()
    assert messages == ["removed %s, left by a checkpoint write that was killed midway" % orphan]


@pytest.mark.parametrize("option, value", [("--n-embd", 1_000_000), ("--n-layer", 100_000),
                                           ("--batch-size", 100_000_000)])
def test_sizes_that_cannot_fit_in_memory_fail_before_allocating(tmp_path, capsys, text_file,
                                                                option, value):
    settings = ["--corpus", text_file, "--out", tmp_path / "run", "--no-progress",
                "--sample-tokens", "0", option, value]
    status, err = run_main(capsys, "train", *settings)
    assert_one_line_error(status, err, "train", "needs about")
    assert "of memory, but this machine has" in err and "available" in err


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_checkpoint_and_says_where(tmp_path, text_file, signum, status):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "tinyllm", "train", "--corpus", str(text_file), "--out",
               str(out), "--steps", "100000", "--eval-every", "100000", *TINY]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=tmp_path)
    lines = []
    for line in process.stdout:                 # wait until the loop has started
        lines.append(line)
        if line.startswith("step 0: val loss"):
            break
    time.sleep(1.0)
    process.send_signal(signum)
    output = "".join(lines) + process.communicate(timeout=120)[0]
    assert process.returncode == status, output
    saved = [line for line in output.splitlines() if line.startswith("saved the checkpoint")]
    assert saved and str(out / "ckpt.npz") in saved[0], output
    step = int(saved[0].split()[5])
    assert step >= 1 and load_checkpoint(out).step == step
    assert "tinyllm train --resume" in output


# ----- the environment and the small commands -------------------------------------------------
@pytest.mark.parametrize("value, match", [("bogus", "unknown backend 'bogus'"),
                                          ("cuda", "no CUDA GPU found")])
def test_a_backend_environment_variable_that_cannot_work(value, match):
    if value == "cuda" and cuda_available():
        pytest.skip("this machine has a GPU")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TINYLLM_BACKEND=value)
    result = subprocess.run([sys.executable, "-m", "tinyllm", "demo", "--steps", "1"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and match in result.stderr
    assert result.stderr.startswith("tinyllm demo: error: TINYLLM_BACKEND=%s" % value)


@pytest.mark.parametrize("argv, match", [(["--steps", "-1"], "--steps must be at least 1"),
                                         (["--lr", "nan"], "--lr must be a positive finite")])
def test_demo_refuses_settings_that_cannot_train(capsys, tmp_path, argv, match):
    status, err = run_main(capsys, "demo", "--out", tmp_path, *argv)
    assert_one_line_error(status, err, "demo", match)


@pytest.mark.parametrize("argv, match", [
    (["--temperature", "1e-320"], "temperature must be a number >= 0 (0 is greedy decoding), and if "),
    (["--repetition-penalty", "1e-320"], "repetition_penalty must be a number in"),
    (["--repetition-penalty", "1e308"], "repetition_penalty must be a number in"),
])
def test_generate_refuses_scales_that_overflow_the_logits(tmp_path, capsys, argv, match):
    model, args, tokenizer, _ = trained_gpt()
    path = save_checkpoint(tmp_path / "ckpt.npz", model, "gpt", args, tokenizer=tokenizer)
    status, err = run_main(capsys, "generate", "--checkpoint", path, *argv)
    assert_one_line_error(status, err, "generate", match)


# ----- corpora ------------------------------------------------------------------------------
def test_a_corpus_file_above_the_limit_is_refused_without_reading_it(tmp_path, capsys):
    sparse = tmp_path / "huge.txt"
    with open(sparse, "wb") as f:
        f.truncate(5 * 10 ** 9)                 # 5 GB that take no disk space
    with pytest.raises(ValueError, match="holds 5000000000 bytes, more than the 1073741824"):
        corpus.read_text_file(sparse)
    status, err = run_main(capsys, "train", "--corpus", sparse, "--out", tmp_path / "run",
                           *TINY)
    assert_one_line_error(status, err, "train", "split it or take a part of it")


def test_a_corpus_file_is_read_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / "small.txt"
    path.write_text("abc" * 100)
    monkeypatch.setattr(corpus, "READ_CHUNK_BYTES", 7)
    assert corpus.read_text_file(path) == "abc" * 100
    with pytest.raises(ValueError, match="more than the 299"):
        corpus.read_text_file(path, max_bytes=299)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_a_corpus_folder_is_skipped_not_waited_on(tmp_path):
    (tmp_path / "notes.txt").write_text("some text")
    os.mkfifo(tmp_path / "pipe.txt")
    assert corpus.load_corpus(str(tmp_path)) == "some text"
    with pytest.raises(ValueError, match="is not a regular file"):
        corpus.read_text_file(tmp_path / "pipe.txt")


# ----- the API ------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [(0, 2), (2, 0), (-1, 2)])
def test_linear_refuses_sizes_below_one(sizes):
    with pytest.raises(ValueError, match="Linear: .*_features must be a positive integer"):
        nn.Linear(*sizes)


def test_linear_accepts_numpy_integers():
    assert nn.Linear(np.int64(3), 2).weight.shape == (2, 3)


def test_a_ragged_nested_list_is_a_clear_error():
    with pytest.raises(ValueError, match="tensor: the nested lists are ragged"):
        tl.tensor([[1, 2], [3]])


def test_load_state_dict_refuses_string_arrays():
    layer = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="weight: the checkpoint holds <U1 values"):
        layer.load_state_dict({"weight": np.array([["a", "b"], ["c", "d"]]),
                               "bias": np.zeros(2)})
