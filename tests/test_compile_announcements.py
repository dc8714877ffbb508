"""`tinyllm generate`, `eval` and `serve` say, as `train` does, when the Numba kernels must be
compiled first; without training they name only the forward kernels."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import tinyllm
from test_first_run import tiny_gpt_checkpoint
from tinyllm.cli import main
from tinyllm.kernels import compilation
from tinyllm.training.model_types import KERNEL_KINDS

ANNOUNCEMENT = "compiling the Numba kernels once"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """compilation.cache_dir() is an empty folder: every kernel counts as not compiled."""
    folder = tmp_path / "numba-cache"
    folder.mkdir()
    monkeypatch.setattr(compilation, "cache_dir", lambda: folder)
    return folder


def test_without_training_no_gradient_or_optimizer_kernel_is_counted():
    with tinyllm.use_backend("numba"):
        training = compilation.kernels_used(KERNEL_KINDS["gpt"])
        inference = compilation.kernels_used(KERNEL_KINDS["gpt"], training=False)
    assert "attention.attention_backward_tasks" in training
    assert "adam._adam_flat" in training
    assert "attention.attention_forward_tasks" in inference
    assert not [name for name in inference if "backward" in name or "adam" in name]
    assert set(inference) < set(training)


def test_announcing_compilation_reports_the_line_then_each_kernel(empty_cache):
    lines = []
    with tinyllm.use_backend("numba"):
        with compilation.announcing_compilation(("attention",), lines.append, training=False):
            pass
    assert lines[0].startswith(ANNOUNCEMENT)
    assert "(1 kernels in 1 process" in lines[0] and str(empty_cache) in lines[0]
    # then it compiles the kernel before the block (unless this process already has it)
    assert lines[1:] in ([], ["compiling kernel 1 of 1: attention_forward_tasks",
                              lines[-1]])
    assert lines[-1].startswith(("compiled attention_forward_tasks in ", ANNOUNCEMENT))


def test_generate_says_it_compiles_on_stderr_and_keeps_stdout_for_the_text(
        tmp_path, empty_cache, capsys):
    checkpoint = tiny_gpt_checkpoint(tmp_path / "ckpt.npz")
    assert main(["generate", "--checkpoint", str(checkpoint), "--prompt", "the",
                 "--max-new-tokens", "3", "--backend", "numba"]) == 0
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if line.startswith(ANNOUNCEMENT)]
    assert ANNOUNCEMENT not in captured.out and captured.out.startswith("the")


def test_generate_on_numpy_says_nothing_about_compiling(tmp_path, empty_cache, capsys):
    checkpoint = tiny_gpt_checkpoint(tmp_path / "ckpt.npz")
    assert main(["generate", "--checkpoint", str(checkpoint), "--prompt", "the",
                 "--max-new-tokens", "3", "--backend", "numpy"]) == 0
    assert "compiling" not in capsys.readouterr().err


# ----- compiling before the run, several kernels at once -----------------------------------
def test_argument_types_are_those_a_training_step_compiles(tmp_path):
    """A GPT training step on the "numba" backend, in a fresh process, compiles each kernel for
    exactly the signature ``compilation.argument_types`` gives (so that compiling those before
    the run leaves nothing to compile in it)."""
    script = (
        "import numpy as np, tinyllm\n"
        "from tinyllm.kernels import compilation\n"
        "from tinyllm.models import GPT, GPTConfig\n"
        "from tinyllm.optim import AdamW\n"
        "from tinyllm.training.model_types import KERNEL_KINDS\n"
        "tinyllm.set_backend('numba')\n"
        "model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))\n"
        "optimizer = AdamW(model.parameters(), lr=1e-3)\n"
        "ids = np.random.default_rng(0).integers(0, 11, (2, 8))\n"
        "logits, loss = model(ids, ids)\n"
        "loss.backward(); optimizer.step()\n"
        "for name in compilation.kernels_used(KERNEL_KINDS['gpt']):\n"
        "    signatures = list(compilation.dispatcher(name).overloads)\n"
        "    expected = compilation.argument_types(name, np.float32)\n"
        "    print(name, signatures == [expected], signatures)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 10, lines      # 9 kernels and, on "numba", the matmul
    assert all(line.split()[1] == "True" for line in lines), lines


def test_a_kernel_claimed_by_one_process_is_not_compiled_by_another(tmp_path):
    said = []
    compilation.compile_claimed(["adam._adam_flat"], np.float32, str(tmp_path), said.append)
    compilation.compile_claimed(["adam._adam_flat"], np.float32, str(tmp_path), said.append)
    assert [line.split()[0] for line in said] == ["start", "done"]
    assert compilation.argument_types("adam._adam_flat", np.float32) in \
        compilation.dispatcher("adam._adam_flat").overloads


def test_the_compile_worker_writes_the_kernel_to_numbas_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    claims = tmp_path / "claims"
    claims.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, "-m", "tinyllm.kernels.compile_worker", str(claims),
                             "float32", "embedding_backward._add_rows", "adam._adam_flat"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    said = result.stdout.splitlines()
    assert [line.split()[:2] for line in said] == [
        ["start", "embedding_backward._add_rows"], ["done", "embedding_backward._add_rows"],
        ["start", "adam._adam_flat"], ["done", "adam._adam_flat"]]
    assert sorted(p.name for p in claims.iterdir()) == ["adam._adam_flat",
                                                         "embedding_backward._add_rows"]
    assert list(cache.rglob("embedding_backward._add_rows-*.nbi"))
    assert list(cache.rglob("adam._adam_flat-*.nbi"))


def test_is_cached_reads_numbas_index_and_its_source_stamp(tmp_path, monkeypatch):
    """A kernel counts as cached when its index in cache_dir() was made from the source as it
    is now (Numba's stamp), whatever the files' times say; a stamp of another source is not."""
    name = "adam._adam_flat"
    compilation.compile_kernels([name], np.float32, lambda line: None, processes=1)
    cache_file = compilation.dispatcher(name)._cache._cache_file
    real_index = compilation.cache_dir() / cache_file._index_name
    assert real_index.is_file() and compilation.is_cached(name)
    monkeypatch.setattr(compilation, "cache_dir", lambda: tmp_path)
    assert not compilation.is_cached(name)                     # no index there
    copy = tmp_path / cache_file._index_name
    copy.write_bytes(real_index.read_bytes())
    os.utime(copy, (0, 0))                                     # older than the source: no matter
    assert compilation.is_cached(name)
    with open(copy, "rb") as index:
        version = pickle.load(index)
        _, overloads = pickle.loads(index.read())
    with open(copy, "wb") as index:                            # made from another source
        pickle.dump(version, index)
        index.write(pickle.dumps((b"another source", overloads)))
    assert not compilation.is_cached(name)
