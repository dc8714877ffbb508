"""`tinyllm generate`, `eval` and `serve` say, as `train` does, when the Numba kernels must be
compiled first; without training they name only the forward kernels."""

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
    assert len(lines) == 1 and lines[0].startswith(ANNOUNCEMENT)
    assert "(1 kernels" in lines[0] and str(empty_cache) in lines[0]


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
