"""What a new user meets in the first hour: `tinyllm info`, the output folders of each model
kind, the demo's picture, the message of a first run that compiles the kernels, and a busy
port for `tinyllm serve`."""

import os
import re
import socket
import subprocess
import sys

import pytest

import tinyllm
from tinyllm.cli import main
from tinyllm.data import CharTokenizer
from tinyllm.kernels import compilation
from tinyllm.models import GPT, GPTConfig
from tinyllm.training import TrainConfig, save_checkpoint, train
from tinyllm.training.config import MODEL_TYPES

CORPUS = "the quick brown fox jumps over the lazy dog. " * 40
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "0", "--no-progress"]
INFO_FIELDS = ("tinyllm", "Python", "NumPy", "BLAS", "Numba", "backend", "threads", "CUDA",
               "Numba cache")


def tiny_gpt_checkpoint(path):
    tinyllm.manual_seed(0)
    tokenizer = CharTokenizer.from_text(CORPUS)
    args = dict(block_size=16, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16)
    return save_checkpoint(path, GPT(GPTConfig(**args)), "gpt", args, tokenizer=tokenizer)


# ----- tinyllm info -----------------------------------------------------------------------------
def test_info_prints_one_line_per_field(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == list(INFO_FIELDS)
    values = dict(line.split(": ", 1) for line in lines)
    assert values["tinyllm"].startswith(tinyllm.__version__)
    assert values["backend"].startswith(tinyllm.get_backend())
    assert str(compilation.cache_dir()) in values["Numba cache"]
    assert "OMP_WAIT_POLICY" in values["threads"]


def test_python_dash_m_tinyllm_info():
    result = subprocess.run([sys.executable, "-m", "tinyllm", "info"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tinyllm: ")
    assert "CUDA: " in result.stdout


# ----- output folders ---------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODEL_TYPES)
def test_each_model_kind_has_its_own_default_folder(model):
    assert TrainConfig(model=model).out == "out/%s" % model


def test_an_out_setting_is_kept():
    assert TrainConfig(model="lstm", out="elsewhere").out == "elsewhere"


def test_training_without_out_writes_into_out_slash_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(CORPUS)
    for model in ("gpt", "lstm"):
        assert main(["train", "--model", model, "--corpus", "corpus.txt", "--steps", "2"]
                    + TINY) == 0
    assert (tmp_path / "out" / "gpt" / "ckpt.npz").exists()
    assert (tmp_path / "out" / "lstm" / "ckpt.npz").exists()
    assert (tmp_path / "out" / "gpt" / "loss.png").exists()


def test_train_help_names_the_folders(capsys):
    with pytest.raises(SystemExit):
        main(["train", "-h"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "out/gpt/ckpt.npz" in help_text and "out/lstm" in help_text


# ----- the demo's picture -----------------------------------------------------------------------
def test_demo_writes_its_picture_under_out_and_prints_the_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--steps", "20"]) == 0
    path = os.path.join("out", "tinyllm_demo_loss.png")
    assert (tmp_path / path).exists()
    assert path in capsys.readouterr().out


def test_demo_writes_where_out_says(tmp_path, capsys):
    assert main(["demo", "--steps", "20", "--out", str(tmp_path / "pictures")]) == 0
    assert (tmp_path / "pictures" / "tinyllm_demo_loss.png").exists()
    assert str(tmp_path / "pictures") in capsys.readouterr().out


# ----- the first run's compile message -------------------------------------------------------
def test_a_run_with_an_empty_kernel_cache_says_it_compiles_and_where(tmp_path, monkeypatch):
    empty = tmp_path / "numba-cache"
    empty.mkdir()
    monkeypatch.setattr(compilation, "cache_dir", lambda: empty)
    lines = []
    (tmp_path / "corpus.txt").write_text(CORPUS)
    train(corpus=str(tmp_path / "corpus.txt"), steps=1, n_layer=1, n_head=2, n_embd=16,
          block_size=16, batch_size=4, eval_batches=1, sample_tokens=0, backend="auto",
          out=str(tmp_path / "out"), progress=False, log=lines.append)
    message = [line for line in lines if line.startswith("compiling the Numba kernels once")]
    assert len(message) == 1
    assert str(empty) in message[0] and " s " in message[0]
    assert lines.index(message[0]) < min(i for i, line in enumerate(lines)
                                         if line.startswith("step "))


def test_a_run_on_numpy_compiles_nothing_and_says_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(compilation, "cache_dir", lambda: tmp_path)
    lines = []
    (tmp_path / "corpus.txt").write_text(CORPUS)
    train(corpus=str(tmp_path / "corpus.txt"), steps=1, n_layer=1, n_head=2, n_embd=16,
          block_size=16, batch_size=4, eval_batches=1, sample_tokens=0, backend="numpy",
          out=str(tmp_path / "out"), progress=False, log=lines.append)
    assert not [line for line in lines if line.startswith("compiling")]


@pytest.mark.slow
def test_a_cold_numba_cache_prints_the_message_and_each_kernel(tmp_path):
    """A real first run, in a subprocess with an empty NUMBA_CACHE_DIR (compiles for ~20 s)."""
    (tmp_path / "corpus.txt").write_text(CORPUS)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    result = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--corpus", "corpus.txt",
                             "--steps", "1"] + TINY, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    announced = [i for i, line in enumerate(lines)
                 if line.startswith("compiling the Numba kernels once")]
    assert len(announced) == 1 and str(tmp_path / "numba-cache") in lines[announced[0]]
    progress = [i for i, line in enumerate(lines) if line.startswith("compiling kernel ")]
    assert progress and announced[0] < progress[0]
    first_step = min(i for i, line in enumerate(lines) if re.match(r"step [1-9]", line))
    assert progress[-1] < first_step                   # all compiled before training
    if compilation.compiling_processes(9) > 1:         # the work shared between processes
        assert [line for line in lines if line.endswith("(in another process)")]


# ----- tinyllm serve on a busy port -------------------------------------------------------------
def test_a_busy_port_gives_one_line_naming_it_and_port_option(tmp_path, capsys):
    checkpoint = tiny_gpt_checkpoint(tmp_path / "ckpt.npz")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["serve", "--checkpoint", str(checkpoint), "--port", str(port)])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert str(port) in lines[0] and "in use" in lines[0] and "--port" in lines[0]


def test_serve_help_lists_the_endpoints_and_fields(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = capsys.readouterr().out
    for word in ("/health", "/generate", "/predict", '"prompt"', '"max_new_tokens"',
                 '"temperature"', '"top_k"', '"top_p"', '"seed"', '"completion"', "curl"):
        assert word in help_text
