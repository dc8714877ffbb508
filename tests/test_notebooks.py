"""Every notebook runs top to bottom; the asserts inside the notebooks are the checks."""

import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_without_error(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()


APPENDICES = ("glossary", "notation", "references")     # chapters 13 on: no notebook


def test_every_chapter_has_its_notebook():
    root = pathlib.Path(__file__).parent.parent
    chapters = {p.stem for p in (root / "chapters").glob("[0-9][0-9]-*.md")}
    notebooks = {p.stem for p in NOTEBOOKS}
    assert chapters - notebooks <= {c for c in chapters if c.endswith(APPENDICES)}
