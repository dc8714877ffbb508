"""The ``python -m tinyllm demo`` command: it learns, checks its gradients and writes a plot."""

import subprocess
import sys

from tinyllm import demo


def test_demo_loss_falls_and_plot_is_written(tmp_path):
    losses, path = demo.run(steps=300, out_dir=str(tmp_path), quiet=True)
    assert losses[-1] < 0.5 * losses[0]
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyllm", "demo", "--steps", "50",
                             "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "relative error" in result.stdout
    assert (tmp_path / "tinyllm_demo_loss.png").exists()
