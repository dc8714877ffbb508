"""The README's set-up, as a new user runs it: a clean copy of the project, a new virtual
environment, `pip install -e .`, then `tinyllm train` (with few steps), and the files the README
says it writes. Slow: it installs NumPy, Numba, Matplotlib and tqdm from the package registry
(35 s in all when pip's cache already holds them) and compiles the kernels once."""

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def project_files():
    """The files of the working tree that a clean checkout would have: tracked, and untracked
    but not ignored (no build outputs, caches or checkpoints)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def copy_project(target):
    for name in project_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs a git checkout of tinyllm")
def test_the_readme_setup_works_in_a_fresh_virtual_environment(tmp_path):
    project = tmp_path / "tinyllm"
    copy_project(project)
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    bin_dir = environment / ("Scripts" if os.name == "nt" else "bin")
    python = str(bin_dir / "python")
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "NUMBA_CACHE_DIR")}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")

    def run(*command, timeout=300):
        result = subprocess.run(list(command), cwd=project, env=env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, "%s\n%s\n%s" % (command, result.stdout[-3000:],
                                                       result.stderr[-3000:])
        return result

    run(python, "-m", "pip", "install", "--quiet", "-e", ".")
    result = run(str(bin_dir / "tinyllm"), "train", "--steps", "3", "--eval-every", "3",
                 "--eval-batches", "2", "--sample-tokens", "20", "--no-progress")
    assert (project / "out" / "gpt" / "ckpt.npz").exists()
    assert (project / "out" / "gpt" / "loss.png").exists()
    assert "compiling the Numba kernels once" in result.stdout
