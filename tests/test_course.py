"""The course: ``python -m tinyllm.exercises`` (init, list, show, hint, check) and its checker.

A student's package is a folder holding ``mytl/``. These tests build such folders from the
stubs and from the reference solutions in ``instructor/solutions`` (the repository's, not the
installed package's), then check that the checker grades them, that it survives whatever a
student's file does (does not import, raises, hangs, prints pages, returns the wrong shape),
that its expected values never come from tinyllm's own code, and that the wheel holds no
solution. The whole proof (every step's reference, stub and planted bugs) is
``instructor/prove.py``, which ``.ci/run`` runs; one test here runs it on two steps.
"""

import io
import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tinyllm.exercises import course, grading
from tinyllm.exercises.__main__ import main
from tinyllm.exercises.notebooks import write_student_notebooks

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "instructor" / "solutions"


def run(*argv):
    """(exit status, stdout) of the command line, run in-process."""
    out = io.StringIO()
    return main([str(a) for a in argv], out=out), out.getvalue()


def lines(output, prefix):
    return [line for line in output.splitlines() if line.startswith(prefix)]


@pytest.fixture
def student(tmp_path):
    """A fresh student folder made by ``init``: every module a stub."""
    status, _ = run("init", tmp_path / "work")
    assert status == 0
    return tmp_path / "work"


def solve(folder, *modules):
    """Copy the reference solution of ``modules`` into the student's mytl/."""
    for module in modules:
        shutil.copyfile(SOLUTIONS / "mytl" / (module + ".py"),
                        folder / "mytl" / (module + ".py"))


def write_autograd(folder, old, new):
    """The reference autograd with one text replaced: a student's variant of it."""
    source = (SOLUTIONS / "mytl" / "autograd.py").read_text()
    assert old in source
    (folder / "mytl" / "autograd.py").write_text(source.replace(old, new))


# ----- the steps ------------------------------------------------------------------------------
def test_the_steps_cover_chapters_1_to_12_in_order_with_at_least_70_checks():
    steps = course.all_steps()
    assert list(steps) == [name for name in course.STEP_ORDER if name in steps]
    assert len(steps) >= 14
    assert {s.chapter for s in steps.values()} >= set(range(1, 13))
    assert sum(len(s.checks) for s in steps.values()) >= 70
    for step in steps.values():
        assert step.stub_path.is_file(), step.name
        assert (SOLUTIONS / "mytl" / (step.module + ".py")).is_file(), step.name
        assert step.expected_path.is_file(), step.name
        assert len(step.checks) >= 4 and len(step.hints) >= 3, step.name
        assert all(check.doc for check in step.checks), step.name
        assert set(step.needs) <= set(steps), step.name


def test_a_step_needs_only_earlier_steps():
    names = list(course.all_steps())
    for step in course.all_steps().values():
        for need in step.needs:
            assert names.index(need) < names.index(step.name), (step.name, need)


def test_stubs_and_solutions_define_the_same_public_names():
    import ast
    for step in course.all_steps().values():
        def public(path):
            tree = ast.parse(path.read_text())
            return {node.name for node in tree.body
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                    and not node.name.startswith("_")}
        assert public(step.stub_path) == public(SOLUTIONS / "mytl" / (step.module + ".py")), \
            step.name


# ----- the command line ------------------------------------------------------------------------
def test_init_writes_every_stub_and_a_readme(student):
    written = sorted(p.name for p in (student / "mytl").glob("*.py"))
    assert written == sorted(p.name for p in (course.STUBS / "mytl").glob("*.py"))
    assert "python -m tinyllm.exercises check" in (student / "README.md").read_text()


def test_init_refuses_to_overwrite_a_students_work(student, capsys):
    (student / "mytl" / "autograd.py").write_text("# my work\n")
    assert run("init", student)[0] == 2
    assert "--force" in capsys.readouterr().err
    assert (student / "mytl" / "autograd.py").read_text() == "# my work\n"


def test_list_names_every_step_in_order_with_its_chapter():
    status, output = run("list")
    assert status == 0
    rows = output.splitlines()[1:]
    assert [row.split()[0] for row in rows] == list(course.all_steps())
    assert rows[0].split()[1] == "1"


def test_show_names_the_file_the_checks_and_the_command():
    status, output = run("show", "autograd")
    assert status == 0
    assert "mytl/autograd.py" in output
    assert "backward_walks_a_graph_10000_ops_deep" in output
    assert "python -m tinyllm.exercises check autograd" in output


def test_hints_come_one_at_a_time_and_are_remembered(student):
    step = course.find_step("autograd")
    outputs = [run("hint", "autograd", "--path", student)[1] for _ in range(len(step.hints) + 1)]
    for number, output in enumerate(outputs[:-1], start=1):
        assert "Hint %d of %d" % (number, len(step.hints)) in output
        assert step.hints[number - 1] in output
    assert "the last one" in outputs[-1]                  # it stays at the last hint
    assert "Hint 2 of" in run("hint", "autograd", "2", "--path", student)[1]


def test_usage_errors_exit_2(student, tmp_path, capsys):
    assert run("check", "autograde", "--path", student)[0] == 2
    assert "unknown step 'autograde'" in capsys.readouterr().err
    assert run("check", "autograd", "--path", tmp_path / "empty")[0] == 2
    assert "init" in capsys.readouterr().err                # says how to make one
    assert run("check", "autograd", "--path", student, "--use-reference", "nosuch",
               "--reference-dir", SOLUTIONS)[0] == 2
    assert run("frobnicate")[0] == 2
    assert run("hint", "autograd", "99", "--path", student)[0] == 2
    capsys.readouterr()


# ----- checking a student's package -------------------------------------------------------------
def test_the_untouched_stub_fails_every_check_without_a_traceback(student, capsys):
    status, output = run("check", "autograd", "--path", student)
    assert status == 1
    fails = lines(output, "FAIL ")
    assert len(fails) == len(course.find_step("autograd").checks)
    assert all("not implemented yet" in line or "NotImplementedError" in line for line in fails)
    assert "score: 0/" in output
    assert "Traceback" not in output + capsys.readouterr().err


def test_a_solved_step_passes_with_measured_and_expected_errors(student):
    solve(student, "autograd")
    status, output = run("check", "autograd", "--path", student)
    assert status == 0, output
    passes = lines(output, "PASS ")
    assert len(passes) == len(course.find_step("autograd").checks)
    assert any("max rel err" in line and "(expected < " in line for line in passes)


def test_a_wrong_gradient_fails_naming_the_element_and_both_numbers(student):
    write_autograd(student, "grads[key] = parent_grad if key not in grads else grads[key] + "
                   "parent_grad", "grads[key] = parent_grad")
    status, output = run("check", "autograd", "--path", student)
    assert status == 1
    line = [l for l in lines(output, "FAIL ") if "backward_sums_over_every_use" in l][0]
    assert "at index" in line and "expected" in line and "got" in line and "rel err" in line


def test_a_file_that_does_not_import_fails_every_check_once_each(student):
    (student / "mytl" / "autograd.py").write_text("def broken(:\n")
    status, output = run("check", "autograd", "--path", student)
    assert status == 1
    fails = lines(output, "FAIL ")
    assert len(fails) == len(course.find_step("autograd").checks)
    assert all("could not be imported" in line and "SyntaxError" in line for line in fails)


def test_a_check_that_hangs_is_stopped_and_the_next_check_runs(student, monkeypatch):
    write_autograd(student, '    shape = tuple(shape)\n    grad = np.asarray(grad)\n',
                   '    while True:\n        pass\n')
    step = course.find_step("autograd")
    for check in step.checks:
        monkeypatch.setattr(check, "time_limit", 0.5)
    report = course.run_step(step, student)
    by_name = {o.name: o for o in report.outcomes}
    assert "time limit" in by_name["unbroadcast_sums_added_and_stretched_axes"].detail
    assert by_name["apply_records_the_graph_only_when_needed"].passed


def test_a_check_that_swallows_every_exception_is_still_stopped(student, monkeypatch):
    write_autograd(student, '    shape = tuple(shape)\n    grad = np.asarray(grad)\n',
                   '    while True:\n        try:\n            pass\n'
                   '        except Exception:\n            pass\n')
    step = course.find_step("autograd")
    for check in step.checks:
        monkeypatch.setattr(check, "time_limit", 0.5)
    outcome = course.run_step(step, student).outcomes[0]
    assert not outcome.passed and "time limit" in outcome.detail


def test_an_alarm_that_is_lost_is_followed_by_another():
    """The first CheckTimeout can be lost: raised inside a finalizer that the garbage collector
    ran in the student's loop, it is dropped (Python's "Exception ignored"). The next
    alarm, ALARM_REPEAT later, stops the loop. Here the loop swallows the first one itself;
    with a single alarm the second loop would run to its 10 s end and nothing be raised."""
    caught = []

    def endless():
        try:
            while True:
                pass
        except grading.CheckTimeout:
            caught.append("first alarm")            # lost, as in a finalizer
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pass

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(grading.CheckTimeout):
        with grading.time_limit(0.2):
            endless()
    assert caught == ["first alarm"]
    # Afterwards no alarm is left running and the previous handler is back.
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before


class _RaisesWhenCollected:
    def __init__(self, error):
        self.error = error

    def __del__(self):
        raise self.error


def test_a_lost_alarm_is_not_reported_and_other_lost_exceptions_still_are(monkeypatch):
    """An alarm that lands in a finalizer is lost on purpose (the next one follows), so
    time_limit keeps it out of the "Exception ignored" report; any other exception lost in a
    finalizer still reaches the hook that was there, and that hook is back afterwards."""
    reported = []

    def hook(unraisable):
        reported.append(type(unraisable.exc_value))

    monkeypatch.setattr(sys, "unraisablehook", hook)
    with grading.time_limit(5):
        _RaisesWhenCollected(grading.CheckTimeout())        # collected at once: __del__ raises
        _RaisesWhenCollected(ValueError("a bug in a finalizer"))
    assert reported == [ValueError]
    assert sys.unraisablehook is hook
    _RaisesWhenCollected(grading.CheckTimeout())            # outside the block: reported
    assert reported == [ValueError, grading.CheckTimeout]


def test_pages_of_printing_fail_the_check_and_are_not_shown(student, capsys):
    write_autograd(student, '    shape = tuple(shape)\n    grad = np.asarray(grad)\n',
                   '    shape = tuple(shape)\n    grad = np.asarray(grad)\n'
                   '    print("debug " * 10000)\n')
    status, output = run("check", "autograd", "--path", student)
    line = [l for l in lines(output, "FAIL ") if "unbroadcast_sums" in l][0]
    assert "printed" in line and "debugging prints" in line
    assert len(output) < 5000 and "debug debug debug debug" not in capsys.readouterr().out


def test_a_wrong_shape_is_one_fail_line_naming_both_shapes(student):
    write_autograd(student, "    return grad\n", "    return grad.reshape(-1)\n")
    status, output = run("check", "autograd", "--path", student)
    line = [l for l in lines(output, "FAIL ") if "unbroadcast_sums" in l][0]
    assert "shape" in line and "expected" in line


def test_sys_exit_in_a_students_file_is_a_fail_line(student):
    write_autograd(student, '    shape = tuple(shape)\n', '    raise SystemExit(3)\n')
    status, output = run("check", "autograd", "--path", student)
    assert status == 1
    assert "SystemExit" in [l for l in lines(output, "FAIL ") if "unbroadcast_sums" in l][0]


def test_use_reference_runs_a_later_step_on_the_reference_and_says_so(student):
    later = [s for s in course.all_steps().values() if "autograd" in s.needs][0]
    status, output = run("check", later.name, "--path", student, "--use-reference",
                         "autograd", "--reference-dir", SOLUTIONS)
    assert "runs on the reference solution of: autograd" in output
    fails = lines(output, "FAIL ")
    assert fails and not any("autograd.py" in line for line in fails)   # its own stub fails
    status, output = run("check", "autograd", "--path", student, "--use-reference",
                         "autograd", "--reference-dir", SOLUTIONS)
    assert status == 0 and "not graded" in output


def test_use_reference_without_the_reference_folder_says_where_to_get_it(student, capsys,
                                                                          monkeypatch):
    monkeypatch.setattr(course, "default_reference_dir", lambda: None)
    assert run("check", "elementwise", "--path", student, "--use-reference", "autograd")[0] == 2
    assert "instructor" in capsys.readouterr().err


def test_check_all_prints_a_table_and_a_total(student):
    solve(student, "autograd")
    status, output = run("check", "all", "--path", student)
    assert status == 1
    rows = {line.split()[0]: line for line in output.splitlines()[1:-1]}
    n = len(course.find_step("autograd").checks)
    assert "%d/%d" % (n, n) in rows["autograd"]
    assert output.splitlines()[-1].startswith("total: %d/" % n)


def test_the_command_runs_as_a_module(student):
    solve(student, "autograd")
    result = subprocess.run([sys.executable, "-m", "tinyllm.exercises", "check", "autograd"],
                            cwd=student, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "score: %d/%d" % ((len(course.find_step("autograd").checks),) * 2) in result.stdout


# ----- hidden answers ---------------------------------------------------------------------------
def test_the_checks_pass_without_tinyllms_own_implementations():
    """Run every step but the long training one on the reference solutions in a process where
    every public function and class of tinyllm's ops, layers, losses, optimizers, models,
    tokenizers, kernels and evaluation raises when called: the expected values come from the
    recorded file, hand-derived numbers and central differences, never from tinyllm's code."""
    script = (
        "import importlib, sys\n"
        "import tinyllm\n"
        "def trap(*args, **kwargs):\n"
        "    raise AssertionError('a check called tinyllm')\n"
        "modules = [importlib.import_module(name) for name in %r]\n"
        "for module in modules:\n"
        "    for attr in dir(module):\n"
        "        if not attr.startswith('_') and callable(getattr(module, attr)):\n"
        "            setattr(module, attr, trap)\n"
        "from tinyllm.exercises import course\n"
        "bad = []\n"
        "for name in %r:\n"
        "    step = course.find_step(name)\n"
        "    report = course.run_step(step, %r)\n"
        "    bad += [(name, o.name, o.detail) for o in report.outcomes if not o.passed]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n" % (TRAPPED, FAST_STEPS, str(SOLUTIONS)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


TRAPPED = ["tinyllm", "tinyllm.functional", "tinyllm.ops", "tinyllm.nn", "tinyllm.optim",
           "tinyllm.models", "tinyllm.models.sampling", "tinyllm.training",
           "tinyllm.training.evaluation", "tinyllm.data.tokenizers",
           "tinyllm.kernels.attention", "tinyllm.kernels.softmax_cross_entropy",
           "tinyllm.kernels.layer_norm", "tinyllm.kernels.gelu", "tinyllm.kernels.adam",
           "tinyllm.kernels.embedding_backward", "tinyllm.kernels.matmul", "tinyllm.gradcheck"]
FAST_STEPS = [name for name in course.STEP_ORDER if name != "training"]


@pytest.mark.slow
def test_the_wheel_holds_the_stubs_and_expected_values_but_no_solution(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = tmp_path.glob("tinyllm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "instructor" in n or "solutions" in n or "/bugs" in n]
    for step in course.all_steps().values():
        assert "tinyllm/exercises/stubs/mytl/%s.py" % step.module in names
        assert "tinyllm/exercises/expected/%s.npz" % step.name in names
    # No stub carries a reference body: every stub's public functions raise or return None.
    solutions = {p.name: p.read_text() for p in (SOLUTIONS / "mytl").glob("*.py")}
    for name in names:
        if name.startswith("tinyllm/exercises/stubs/mytl/") and name.endswith(".py"):
            text = zipfile.ZipFile(wheel).read(name).decode()
            module = name.rsplit("/", 1)[1]
            if module != "__init__.py":
                assert text != solutions[module], name


@pytest.mark.slow
def test_the_proof_catches_a_planted_bug_with_every_check_of_two_steps():
    result = subprocess.run([sys.executable, str(REPO / "instructor" / "prove.py"), "autograd",
                             "losses"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    last = result.stdout.splitlines()[-1]
    checks, caught = int(last.split()[0]), int(last.split(",")[1].split()[0])
    assert checks == caught == sum(len(course.find_step(s).checks)
                                   for s in ("autograd", "losses"))


# ----- student copies of the chapters' notebooks ------------------------------------------------
def _notebook(nbformat):
    nb = nbformat.v4.new_notebook()
    imports = nbformat.v4.new_code_cell("import numpy as np")
    solution = nbformat.v4.new_code_cell("def softmax(x):\n    return np.exp(x) / np.exp(x).sum()",
                                         metadata={"tags": ["solution"]})
    solution.outputs = [nbformat.v4.new_output("stream", name="stdout", text="secret answer\n")]
    solution.execution_count = 2
    named = nbformat.v4.new_code_cell("attention = ...", metadata={"tags": ["solution"],
                                                                   "exercise": "attention"})
    prose = nbformat.v4.new_markdown_cell("The softmax Jacobian is ...",
                                          metadata={"tags": ["solution"]})
    kept = nbformat.v4.new_code_cell("print(1)")
    kept.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [imports, solution, named, prose, kept]
    return nb


def test_student_notebooks_replace_solution_cells_and_clear_their_outputs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    source, out = tmp_path / "notebooks", tmp_path / "student"
    source.mkdir()
    nbformat.write(_notebook(nbformat), str(source / "06-attention.ipynb"))

    status, output = run("student-notebooks", str(out), "--from", str(source))
    assert status == 0
    assert "3 solution cell(s) replaced" in output
    nb = nbformat.read(str(out / "06-attention.ipynb"), as_version=4)
    nbformat.validate(nb)
    imports, solution, named, prose, kept = nb.cells
    assert solution.source == ("# Your solution here (step attention, see the chapter)")
    assert solution.outputs == [] and solution.execution_count is None
    assert named.source == "# Your solution here (step attention, see the chapter)"
    assert prose.source.startswith("*Your solution here")
    assert imports.source == "import numpy as np"
    assert kept.source == "print(1)" and kept.outputs[0].text == "1\n"
    assert "secret answer" not in (out / "06-attention.ipynb").read_text()
    original = json.loads((source / "06-attention.ipynb").read_text())
    assert "secret answer" in json.dumps(original)          # the original is untouched


def test_student_notebooks_refuse_to_overwrite_the_originals(tmp_path, capsys):
    nbformat = pytest.importorskip("nbformat")
    nbformat.write(_notebook(nbformat), str(tmp_path / "02-losses.ipynb"))
    assert run("student-notebooks", str(tmp_path), "--from", str(tmp_path))[0] == 2
    assert run("student-notebooks", str(tmp_path / "out"), "--from",
               str(tmp_path / "empty"))[0] == 2
    assert "no notebooks" in capsys.readouterr().err


def test_a_solution_cell_is_named_after_the_steps_of_its_chapter(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("class Attention(Function):\n    pass",
                                          metadata={"tags": ["solution"]})]
    nbformat.write(nb, str(tmp_path / "09-decoding.ipynb"))
    write_student_notebooks(tmp_path / "out", tmp_path)
    cell = nbformat.read(str(tmp_path / "out" / "09-decoding.ipynb"), as_version=4).cells[0]
    assert cell.source == "# Your solution here (step bpe or decoding, see the chapter)"


def test_write_student_notebooks_counts_the_cells_it_replaced(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbformat.write(_notebook(nbformat), str(tmp_path / "09-decoding.ipynb"))
    written = write_student_notebooks(tmp_path / "out", tmp_path)
    assert [(p.name, n) for p, n in written] == [("09-decoding.ipynb", 3)]
    nb = nbformat.read(str(tmp_path / "out" / "09-decoding.ipynb"), as_version=4)
    assert nb.cells[1].source == "# Your solution here (step bpe or decoding, see the chapter)"


def test_the_instructors_guide_lists_every_step_with_its_checks_and_time():
    guide = (REPO / "instructor" / "README.md").read_text()
    for step in course.all_steps().values():
        row = [line for line in guide.splitlines() if line.startswith("| `%s` |" % step.name)]
        assert row, step.name
        cells = [cell.strip() for cell in row[0].split("|")[1:-1]]
        assert cells[1] == str(step.chapter) and cells[4] == str(len(step.checks)), step.name
        assert cells[6] == "%d min" % step.minutes, step.name
