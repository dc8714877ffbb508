"""The nbgrader export of the course (``release --nbgrader``): the solution cells, the
autograder cells, and nbgrader's own round trip (the reference solutions get every point, the
untouched release none)."""

import ast
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tinyllm.exercises import course
from tinyllm.exercises import nbgrader as export

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "instructor" / "solutions"


def reference_text(module):
    return (REFERENCE / course.PACKAGE / (module + ".py")).read_text(encoding="utf-8")


def released_as_stub(text):
    """A released module, with nbgrader's ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
    written as the stubs write it, as a tree."""
    lines = [line.replace("raise NotImplementedError()", "raise NotImplementedError")
             for line in text.split("\n") if line.strip() != "# YOUR CODE HERE"]
    return ast.dump(ast.parse("\n".join(lines)))


def steps_of_chapters(*chapters):
    return [s.name for s in course.all_steps().values() if s.chapter in chapters
            and (REFERENCE / course.PACKAGE / (s.module + ".py")).is_file()]


# ----- the solution cell ----------------------------------------------------------------------
STUB = '''"""The module's docstring (the stub's)."""

import numpy as np

ANSWER = None       # one of "a", "b"


class Base:
    def step(self, x):
        return self._update(x)

    def _update(self, x):
        raise NotImplementedError


class Child(Base):
    """A child."""

    def _update(self, x):
        """What the student writes."""
        # the stub's hint stays outside the region
        raise NotImplementedError


class Grandchild(Child):
    def _update(self, x):
        raise NotImplementedError


def given(x):
    return x + 1
'''

REFERENCE_MODULE = '''"""The reference's docstring."""

import math

import numpy as np

ANSWER = "b"


class Base:
    def step(self, x):
        return self._update(x)

    def _update(self, x):
        raise NotImplementedError


class Child(Base):
    def _update(self, x):
        return _helper(x) * 2


class Grandchild(Child):
    pass


def _helper(x):
    """A helper the stub does not have."""
    return math.sqrt(x)


def given(x):
    return x + 1
'''


def run_module(text):
    namespace = {}
    exec(compile(text, "<module>", "exec"), namespace)
    return namespace


def test_solution_cell_runs_the_reference_code():
    text, merged = export.solution_source(STUB, REFERENCE_MODULE)
    assert merged
    solution = run_module(export.strip_markers(text))
    assert solution["Child"]().step(16.0) == 8.0
    assert solution["Grandchild"]().step(4.0) == 4.0     # inherits, as in the reference
    assert solution["ANSWER"] == "b"


def test_solution_regions_hold_only_the_bodies_the_student_writes():
    text, _ = export.solution_source(STUB, REFERENCE_MODULE)
    released = export.release_source(text)
    assert '"""The module\'s docstring (the stub\'s)."""' in released
    assert "# the stub's hint stays outside the region" in released
    assert "return _helper(x) * 2" not in released
    assert "return x + 1" in released                   # code the stub gives stays
    assert "math.sqrt" not in released and "def _helper(x):" in released


def test_an_answer_at_module_level_keeps_the_released_module_importable():
    text, _ = export.solution_source(STUB, REFERENCE_MODULE)
    released = run_module(export.release_source(text))
    assert released["ANSWER"] is None                   # the stub's value, until answered
    with pytest.raises(NotImplementedError):
        released["Child"]().step(16.0)                  # the bodies still raise


def test_stub_and_reference_that_do_not_line_up_give_one_region_after_the_stub():
    reference = REFERENCE_MODULE.replace("def given(x):", "def given(x, y=0):")
    text, merged = export.solution_source(STUB, reference)
    assert not merged
    assert run_module(export.strip_markers(text))["given"](1, 2) == 2
    assert export.release_source(text).startswith(STUB.rstrip("\n"))


def test_every_step_merges_and_releases_its_stub():
    """Each step's solution cell runs the reference; released, it is the stub again (with the
    reference's private helpers as functions to write)."""
    for step in course.all_steps().values():
        if not (REFERENCE / course.PACKAGE / (step.module + ".py")).is_file():
            continue
        stub = step.stub_path.read_text(encoding="utf-8")
        text, merged = export.solution_source(stub, reference_text(step.module))
        assert merged, step.name
        released = export.release_source(text)
        ast.parse(released)
        if step.name == "autograd":
            assert released_as_stub(released) == ast.dump(ast.parse(stub))


# ----- the autograder cells' helper -----------------------------------------------------------
def test_assert_check_reruns_the_step_when_a_file_changes(tmp_path, capsys):
    package = tmp_path / course.PACKAGE
    package.mkdir()
    shutil.copy(course.STUBS / course.PACKAGE / "__init__.py", package / "__init__.py")
    shutil.copy(REFERENCE / course.PACKAGE / "autograd.py", package / "autograd.py")
    step = course.find_step("autograd")
    check = step.checks[0].name
    export.assert_check("autograd", check, tmp_path)
    assert capsys.readouterr().out.startswith("PASS " + check)
    shutil.copy(step.stub_path, package / "autograd.py")
    with pytest.raises(AssertionError, match="FAIL %s .*not implemented yet" % check):
        export.assert_check("autograd", check, tmp_path)
    with pytest.raises(AssertionError, match="no check named"):
        export.assert_check("autograd", "no_such_check", tmp_path)


# ----- the course directory -------------------------------------------------------------------
def cells_of(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


def grade_ids(cells, **flags):
    return [c["metadata"]["nbgrader"]["grade_id"] for c in cells
            if "nbgrader" in c["metadata"]
            and all(c["metadata"]["nbgrader"][k] == v for k, v in flags.items())]


def test_one_assignment_per_chapter_with_a_graded_cell_per_check(tmp_path):
    steps = steps_of_chapters(1, 2)
    assignments = export.write_nbgrader_course(tmp_path, REFERENCE, steps)
    assert (tmp_path / "nbgrader_config.py").is_file()
    everything = course.all_steps()
    for assignment in assignments:
        chapter = int(assignment.name[2:])
        in_chapter = [everything[name] for name in steps if everything[name].chapter == chapter]
        assert assignment.notebook == tmp_path / "source" / assignment.name / (
            assignment.name + ".ipynb")
        cells = cells_of(assignment.notebook)
        assert grade_ids(cells, grade=True) == ["%s_%s" % (s.name, c.name)
                                                for s in in_chapter for c in s.checks]
        assert grade_ids(cells, solution=True) == ["%s_solution" % s.name for s in in_chapter]
        for cell in cells:
            if cell["metadata"].get("nbgrader", {}).get("grade"):
                assert cell["metadata"]["nbgrader"]["points"] == 1
                source = "".join(cell["source"])
                assert export.BEGIN_HIDDEN in source and "assert_check(" in source
        # The modules of earlier chapters come from read-only cells, never from the student.
        own = {s.module for s in in_chapter}
        assert not own & set(assignment.given)
        for module in assignment.given:
            assert "given_%s" % module in grade_ids(cells, locked=True)


def test_unknown_steps_are_a_usage_error(tmp_path):
    with pytest.raises(course.UsageError, match="no_such_step"):
        export.write_nbgrader_course(tmp_path, REFERENCE, ["no_such_step"])


# ----- nbgrader's round trip ------------------------------------------------------------------
def load_roundtrip():
    path = ROOT / "instructor" / "nbgrader_roundtrip.py"
    spec = importlib.util.spec_from_file_location("nbgrader_roundtrip", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nbgrader_gives_the_reference_every_point_and_the_release_none(tmp_path):
    pytest.importorskip("nbgrader")
    roundtrip = load_roundtrip()
    steps = steps_of_chapters(1, 2)
    results = roundtrip.roundtrip(tmp_path, steps)
    assert roundtrip.problems(tmp_path, results) == []
    assert sum(results[name]["ref"][1] for name in results) == sum(
        len(course.find_step(name).checks) for name in steps)
    # nbgrader's release is what release_source predicts: the stub, no solution, no tests.
    for name in results:
        released = cells_of(tmp_path / "release" / name / (name + ".ipynb"))
        source = cells_of(tmp_path / "source" / name / (name + ".ipynb"))
        for before, after in zip(source, released):
            text = "".join(after["source"])
            assert "### BEGIN" not in text and "assert_check(" not in text
            if before["metadata"].get("nbgrader", {}).get("solution"):
                assert text == export.release_source("".join(before["source"]))
