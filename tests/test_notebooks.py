"""Every notebook runs top to bottom; the asserts inside the notebooks are the checks."""

import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_without_error(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(str(path), as_version=4)
    # A cell's limit is there to stop a hang, not to time it: the longest cell (chapter 12's
    # memorisation run) takes about 32 s alone on 2 cores, and once went past 120 s while the
    # suite's other process kept both cores busy.
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()


APPENDICES = ("glossary", "notation", "references")     # chapters 13 on: no notebook


def test_every_chapter_has_its_notebook():
    root = pathlib.Path(__file__).parent.parent
    chapters = {p.stem for p in (root / "chapters").glob("[0-9][0-9]-*.md")}
    notebooks = {p.stem for p in NOTEBOOKS}
    assert chapters - notebooks <= {c for c in chapters if c.endswith(APPENDICES)}
