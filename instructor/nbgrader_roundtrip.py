"""Prove the nbgrader export: reference solutions get full marks, the untouched release none.

    python instructor/nbgrader_roundtrip.py [--steps autograd,elementwise] [--keep DIR]

writes the nbgrader course (``python -m tinyllm.exercises release --nbgrader``) into a
temporary folder (or DIR), then, for each chapter's assignment, runs nbgrader's own commands::

    nbgrader generate_assignment chNN --force
    nbgrader autograde chNN --force

on two submissions: student ``ref`` hands in the source notebook (the reference solutions),
student ``blank`` the released notebook as it is. It prints each one's score and exits with 1
unless ``ref`` has every point and ``blank`` none. Needs nbgrader (``pip install nbgrader``);
nbgrader runs the notebooks on the kernel ``python3`` with this Python (tinyllm installed).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tinyllm
from tinyllm.exercises.nbgrader import write_nbgrader_course

STUDENTS = {"ref": "source", "blank": "release"}     # student -> the folder handed in


def nbgrader(course_dir, *args):
    """Run one nbgrader command in the course folder; raises with its log if it fails."""
    command = [sys.executable, "-m", "nbgrader", *args,
               "--CourseDirectory.root=%s" % course_dir]
    # The kernel runs in the assignment's folder: it finds tinyllm installed, or through this.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(tinyllm.__file__).resolve().parents[1])]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    done = subprocess.run(command, cwd=course_dir, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError("%s failed (exit %d):\n%s%s" % (" ".join(args), done.returncode,
                                                            done.stdout, done.stderr[-6000:]))
    return done


def failed_cells(notebook_path):
    """{grade_id: the error's last line} for the graded cells that raised."""
    notebook = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    failed = {}
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                failed[grade_id] = "%s: %s" % (output.get("ename"), output.get("evalue"))
    return failed


def scores(course_dir, assignment):
    """{student: (score, max_score, {grade_id: points})} from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    result = {}
    with Gradebook("sqlite:///%s" % (Path(course_dir) / "gradebook.db"), "tinyllm") as gb:
        for student in STUDENTS:
            notebook = gb.find_submission_notebook(assignment, assignment, student)
            cells = {grade.name: grade.score for grade in notebook.grades}
            result[student] = (notebook.score, notebook.max_score, cells)
    return result


def roundtrip(course_dir, steps=None, out=sys.stdout):
    """Write the course into ``course_dir``, release and autograde every assignment; returns
    {assignment: scores(...)}."""
    course_dir = Path(course_dir).resolve()
    assignments = write_nbgrader_course(course_dir, steps=steps)
    results = {}
    for assignment in assignments:
        name = assignment.name
        nbgrader(course_dir, "generate_assignment", name, "--force")
        for student, folder in STUDENTS.items():
            target = course_dir / "submitted" / student / name
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(course_dir / folder / name, target)
        nbgrader(course_dir, "autograde", name, "--force")
        results[name] = scores(course_dir, name)
        for student, (score, max_score, _) in results[name].items():
            print("%s %-5s %g/%g points" % (name, student, score, max_score), file=out)
    return results


def problems(course_dir, results):
    """What is wrong with the scores: ref must have every point, blank none."""
    lines = []
    for name, by_student in results.items():
        score, max_score, _ = by_student["ref"]
        if max_score == 0 or score != max_score:
            failed = failed_cells(Path(course_dir) / "autograded" / "ref" / name /
                                  (name + ".ipynb"))
            lines.append("%s: the reference solutions got %g/%g; failed: %s"
                         % (name, score, max_score, failed))
        score, _, cells = by_student["blank"]
        if score != 0:
            lines.append("%s: the untouched release got %g points: %s"
                         % (name, score, [g for g, points in cells.items() if points]))
    return lines


def run(course_dir, steps=None):
    """The round trip with its verdict: 0 if the scores are right, else 1."""
    found = problems(course_dir, roundtrip(course_dir, steps))
    for line in found:
        print("PROBLEM " + line)
    return 1 if found else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=None,
                        help="comma-separated step names (default: every step with a solution)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="write the course into DIR and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    steps = args.steps.split(",") if args.steps else None
    if args.keep:
        return run(Path(args.keep), steps)
    with tempfile.TemporaryDirectory() as tmp:
        return run(Path(tmp), steps)


if __name__ == "__main__":
    sys.exit(main())
