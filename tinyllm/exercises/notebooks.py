"""Student copies of the notebooks: each cell tagged "solution" loses its answer.

    python -m tinyllm.exercises student-notebooks OUT_DIR [--from notebooks]

copies every ``*.ipynb`` of the notebooks folder to OUT_DIR, replacing the source of each cell
whose metadata has the tag "solution" (``"metadata": {"tags": ["solution"]}``) by

    # Your solution here (step NAME, see the chapter)

and clearing that cell's outputs, so that neither the code nor what it printed or drew gives
the answer away. NAME comes from the cell's metadata ``"exercise"`` if it has one, else from
the course steps of the notebook's chapter (the number its file name starts with). Notebooks are
read and written as JSON (the .ipynb format), so no extra package is needed.
"""

import json
from pathlib import Path

from tinyllm.exercises.course import UsageError, all_steps

SOLUTION_TAG = "solution"


def default_notebook_dir():
    """The repository's notebooks/ folder (beside the tinyllm package)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def is_solution(cell):
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def exercise_names(cell, notebook_path):
    """The step a solution cell belongs to: the cell's metadata "exercise" if it names a step,
    else the course steps of the notebook's chapter ("bpe or decoding")."""
    steps = all_steps()
    name = cell.get("metadata", {}).get("exercise")
    if name in steps:
        return name
    prefix = Path(notebook_path).name.split("-")[0]
    chapter = int(prefix) if prefix.isdigit() else None
    return " or ".join(s.name for s in steps.values() if s.chapter == chapter)


def placeholder(cell, notebook_path):
    """The text that replaces a solution cell's source."""
    names = exercise_names(cell, notebook_path)
    text = "Your solution here (%s)" % ("step %s, see the chapter" % names if names
                                        else "see the chapter")
    return "# " + text if cell.get("cell_type") == "code" else "*%s*" % text


def strip_solutions(notebook, notebook_path):
    """Replace, in place, the solution cells of a notebook (the .ipynb JSON as a dict);
    returns how many cells were replaced."""
    count = 0
    for cell in notebook.get("cells", []):
        if not is_solution(cell):
            continue
        cell["source"] = placeholder(cell, notebook_path)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        count += 1
    return count


def write_student_notebooks(out_dir, source_dir=None):
    """Write the student copy of every notebook of ``source_dir`` into ``out_dir``.

    Returns a list of (written path, number of solution cells replaced).
    """
    source_dir = Path(source_dir) if source_dir is not None else default_notebook_dir()
    out_dir = Path(out_dir)
    paths = sorted(source_dir.glob("*.ipynb")) if source_dir.is_dir() else []
    if not paths:
        raise UsageError("no notebooks (*.ipynb) found in %s" % source_dir)
    if out_dir.resolve() == source_dir.resolve():
        raise UsageError("the output folder must differ from %s: the originals would be "
                         "overwritten" % source_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            notebook = json.load(f)
        count = strip_solutions(notebook, path)
        target = out_dir / path.name
        with open(target, "w", encoding="utf-8") as f:
            json.dump(notebook, f, indent=1, ensure_ascii=False)
            f.write("\n")
        written.append((target, count))
    return written
