"""The exercises and their autograder: ``python -m tinyllm.exercises``.

Every reference solution passes every check, every stub fails every check (without a
traceback), planted mistakes fail with a line naming the worst element, and usage errors exit
with status 2. Checks run in-process through ``main(argv, out)``; one test runs the real
command in a subprocess.
"""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from tinyllm.exercises import EXERCISES
from tinyllm.exercises.__main__ import main
from tinyllm.exercises.checks import compare, compare_all, load_solution
from tinyllm.exercises.notebooks import write_student_notebooks
from tinyllm.exercises.registry import CHAPTERS

NAMES = list(EXERCISES)

# The table of /notes/CHAPTERS.md (issue 6): chapter -> its exercises.
EXPECTED_TABLE = {2: ["softmax_cross_entropy", "binary_cross_entropy"], 3: ["adam_step"],
                  4: ["mlp_backward"], 5: ["embedding"], 6: ["softmax", "attention"],
                  7: ["lstm_cell"], 8: ["layer_norm"], 9: ["top_p_filter"],
                  10: ["distillation_kl"], 11: ["online_softmax"], 12: ["bleu"]}


def run(*argv):
    """(exit status, stdout) of the command line, run in-process."""
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def check_lines(output):
    return [line for line in output.splitlines() if line.startswith(("PASS ", "FAIL "))]


def planted(tmp_path, name, old, new):
    """A copy of exercise ``name``'s reference solution with ``old`` replaced by ``new``."""
    source = EXERCISES[name].solution_path.read_text()
    assert old in source, "the planted mistake no longer applies to solutions/%s.py" % name
    path = tmp_path / ("wrong_%s.py" % name)
    path.write_text(source.replace(old, new))
    return path


# ----- the table -----------------------------------------------------------------------------
def test_the_exercises_are_those_of_the_chapters_table():
    table = {}
    for exercise in EXERCISES.values():
        table.setdefault(exercise.chapter, []).append(exercise.name)
    assert table == EXPECTED_TABLE


@pytest.mark.parametrize("name", NAMES)
def test_each_exercise_has_a_stub_a_solution_and_a_chapter(name):
    exercise = EXERCISES[name]
    assert exercise.stub_path.is_file() and exercise.solution_path.is_file()
    assert exercise.stub_path.parent != exercise.solution_path.parent
    assert exercise.chapter in CHAPTERS and exercise.chapter_file.startswith(
        "chapters/%02d-" % exercise.chapter)
    assert len(exercise.checks) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_stub_and_solution_define_the_exercise_entry(name):
    stub = load_solution(EXERCISES[name].stub_path)
    solution = load_solution(EXERCISES[name].solution_path)
    public = {k for k, v in vars(stub).items()
              if not k.startswith("_") and getattr(v, "__module__", None) == stub.__name__}
    assert public == {EXERCISES[name].entry}
    assert hasattr(solution, EXERCISES[name].entry)


# ----- solutions pass, stubs fail --------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_passes_every_check(name):
    exercise = EXERCISES[name]
    status, output = run("check", name, str(exercise.solution_path))
    lines = check_lines(output)
    assert status == 0, output
    assert len(lines) == len(exercise.checks)
    assert all(line.startswith("PASS ") and "worst |err|" in line for line in lines), output
    assert output.rstrip().endswith("%d passed, 0 failed" % len(exercise.checks))


@pytest.mark.parametrize("name", NAMES)
def test_stub_fails_every_check_without_a_traceback(name, capsys):
    exercise = EXERCISES[name]
    status, output = run("check", name, str(exercise.stub_path))
    lines = check_lines(output)
    assert status == 1
    assert len(lines) == len(exercise.checks)
    assert all(line.startswith("FAIL ") and "NotImplementedError" in line for line in lines)
    assert output.rstrip().endswith("0 passed, %d failed" % len(exercise.checks))
    captured = capsys.readouterr()
    assert "Traceback" not in output + captured.out + captured.err


# ----- planted mistakes ------------------------------------------------------------------------
def failing_lines(output):
    return [line for line in check_lines(output) if line.startswith("FAIL ")]


def test_softmax_backward_with_a_sign_error_fails_naming_the_worst_element(tmp_path):
    path = planted(tmp_path, "softmax",
                   "return y * (grad_y - np.sum(grad_y * y, axis=-1, keepdims=True))",
                   "return y * (np.sum(grad_y * y, axis=-1, keepdims=True) - grad_y)")
    status, output = run("check", "softmax", str(path))
    assert status == 1
    failed = failing_lines(output)
    assert {line.split()[1] for line in failed} == {"backward_matches_F.softmax", "gradcheck_x"}
    for line in failed:
        assert "at index (" in line and "of dx: expected" in line and ", got " in line


def test_cross_entropy_without_the_mean_fails_the_gradient_checks(tmp_path):
    path = planted(tmp_path, "softmax_cross_entropy",
                   "return grad_loss * grad_logits / n, None",
                   "return grad_loss * grad_logits, None")
    status, output = run("check", "softmax_cross_entropy", str(path))
    assert status == 1
    failed = failing_lines(output)
    assert [line.split()[1] for line in failed] == ["backward_matches_F.cross_entropy",
                                                    "gradcheck_logits"]
    assert all("of dL/dz: expected" in line for line in failed)


def test_lstm_with_the_gates_in_the_wrong_order_fails_the_forward(tmp_path):
    path = planted(tmp_path, "lstm_cell", "a_i, a_f, a_g, a_o = np.split",
                   "a_i, a_g, a_f, a_o = np.split")
    status, output = run("check", "lstm_cell", str(path))
    assert status == 1
    failed = {line.split()[1]: line for line in failing_lines(output)}
    assert {"forward_matches_numpy", "forward_matches_nn.LSTMCell"} <= set(failed)
    assert "at index (" in failed["forward_matches_numpy"]


def test_embedding_that_assigns_instead_of_adding_fails_at_the_repeated_id(tmp_path):
    path = planted(tmp_path, "embedding", "np.add.at(grad_weight, ctx.ids, grad_out)",
                   "grad_weight[ctx.ids] = grad_out")
    status, output = run("check", "embedding", str(path))
    assert status == 1
    failed = {line.split()[1]: line for line in failing_lines(output)}
    assert set(failed) == {"backward_adds_repeated_ids", "gradcheck_weight"}
    assert "at index (1, " in failed["backward_adds_repeated_ids"]    # id 1 occurs 3 times


def test_online_softmax_without_rescaling_fails(tmp_path):
    path = planted(tmp_path, "online_softmax", "l = l * np.exp(m - m_new) + ", "l = l + ")
    status, output = run("check", "online_softmax", str(path))
    assert status == 1
    assert "FAIL matches_softmax_for_every_block_size  worst |err|" in output


def test_adam_that_updates_in_place_fails_only_the_aliasing_check(tmp_path):
    path = planted(tmp_path, "adam_step", "    m = beta1 * m + (1 - beta1) * grad\n",
                   "    m *= beta1\n    m += (1 - beta1) * grad\n")
    status, output = run("check", "adam_step", str(path))
    assert status == 1
    failed = failing_lines(output)
    assert [line.split()[1] for line in failed] == ["leaves_its_arguments_unchanged"]
    assert "of m after the call" in failed[0] and "hint:" in failed[0]


def test_top_p_without_tie_handling_fails_the_tie_check(tmp_path):
    path = planted(tmp_path, "top_p_filter",
                   "return np.where(probs >= smallest_kept, logits, -np.inf)",
                   "order = np.argsort(-probs, kind='stable')\n"
                   "    keep = np.zeros(probs.size, dtype=bool)\n"
                   "    keep[order[before < p]] = True\n"
                   "    return np.where(keep, logits, -np.inf)")
    status, output = run("check", "top_p_filter", str(path))
    assert status == 1
    assert [line.split()[1] for line in failing_lines(output)] == [
        "keeps_ties_with_the_last_token"]


def test_an_exception_in_the_solution_is_one_failed_line_with_its_place(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("from tinyllm.autograd import Function\n\n"
                    "class Softmax(Function):\n"
                    "    @staticmethod\n"
                    "    def forward(ctx, x):\n"
                    "        return x.reshape(7, 7)\n")
    status, output = run("check", "softmax", str(path))
    assert status == 1
    line = check_lines(output)[0]
    assert line.startswith("FAIL forward_matches_F.softmax  raised ValueError")
    assert "(broken.py, line 6, in forward)" in line
    assert "Traceback" not in output


def test_a_solution_without_the_class_names_what_is_missing(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("import numpy as np\n")
    status, output = run("check", "softmax", str(path))
    assert status == 1
    assert all("defines no 'Softmax'" in line for line in check_lines(output))


def test_a_solution_that_does_not_import_fails_once(tmp_path):
    path = tmp_path / "syntax.py"
    path.write_text("def f(:\n")
    status, output = run("check", "softmax", str(path))
    assert status == 1
    assert check_lines(output) == [line for line in check_lines(output)
                                   if line.startswith("FAIL load  ")]
    assert "SyntaxError" in output and output.rstrip().endswith("0 passed, 1 failed")


# ----- the comparison --------------------------------------------------------------------------
def test_compare_reports_the_element_furthest_outside_its_tolerance():
    expected = np.zeros((2, 3))
    got = expected.copy()
    got[1, 2], got[0, 1] = 0.5, 1e-3
    outcome = compare(got, expected, label="dx")
    assert not outcome.passed
    assert "at index (1, 2) of dx: expected 0, got 0.5" in outcome.detail


def test_compare_passes_within_tolerance_and_reports_the_largest_error():
    expected = np.array([1.0, 2.0, 3.0])
    outcome = compare(expected + np.array([0.0, 3e-12, 1e-12]), expected)
    assert outcome.passed and "worst |err| 3.0e-12 at index (1,)" in outcome.detail


def test_compare_fails_on_nan_and_on_a_wrong_shape_and_accepts_equal_infinities():
    assert not compare([np.nan], [1.0]).passed
    assert not compare(np.zeros((2, 3)), np.zeros((3, 2))).passed
    assert "wrong shape" in compare(np.zeros(2), np.zeros(3)).detail
    assert compare([-np.inf, 1.0], [-np.inf, 1.0], atol=0, rtol=0).passed
    assert not compare([2.0, 1.0], [-np.inf, 1.0]).passed


def test_compare_all_picks_the_worst_of_several_arrays():
    outcome = compare_all([("a", [1.0, 1.1], [1.0, 1.0]), ("b", [5.0], [1.0])])
    assert not outcome.passed and "of b" in outcome.detail


# ----- the command line ------------------------------------------------------------------------
def test_unknown_exercise_exits_2_and_lists_the_names(capsys):
    status, output = run("check", "softmaxx", "whatever.py")
    assert status == 2 and output == ""
    err = capsys.readouterr().err
    assert "unknown exercise 'softmaxx'" in err
    assert all(name in err for name in NAMES)


def test_missing_solution_file_exits_2(tmp_path, capsys):
    status, _ = run("check", "softmax", str(tmp_path / "nowhere.py"))
    assert status == 2
    assert "no such file" in capsys.readouterr().err


def test_missing_arguments_exit_2(capsys):
    assert run("check", "softmax")[0] == 2
    assert run("frobnicate")[0] == 2
    capsys.readouterr()


def test_list_names_every_exercise_with_its_chapter():
    status, output = run("list")
    assert status == 0
    lines = output.splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    assert "chapter  6" in lines[NAMES.index("attention")]


def test_show_prints_the_task_and_the_check_command():
    status, output = run("show", "layer_norm")
    assert status == 0
    assert EXERCISES["layer_norm"].task in output
    assert "python -m tinyllm.exercises check layer_norm" in output
    assert "chapters/08-transformer.md" in output


def test_stub_prints_the_starting_file(tmp_path):
    status, output = run("stub", "attention")
    assert status == 0
    assert output == EXERCISES["attention"].stub_path.read_text()
    path = tmp_path / "my_attention.py"
    path.write_text(output)
    assert run("check", "attention", str(path))[0] == 1


def test_the_command_runs_as_a_module():
    solution = EXERCISES["softmax"].solution_path
    result = subprocess.run([sys.executable, "-m", "tinyllm.exercises", "check", "softmax",
                             str(solution)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS backward_matches_F.softmax" in result.stdout
    assert "Traceback" not in result.stderr


# ----- student notebooks -----------------------------------------------------------------------
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
    assert solution.source == ("# Your solution here (exercise softmax or attention, "
                               "see the chapter)")
    assert solution.outputs == [] and solution.execution_count is None
    assert named.source == "# Your solution here (exercise attention, see the chapter)"
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


def test_a_solution_cell_is_named_after_the_exercise_whose_class_it_defines(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("class Attention(Function):\n    pass",
                                          metadata={"tags": ["solution"]})]
    nbformat.write(nb, str(tmp_path / "06-attention.ipynb"))
    write_student_notebooks(tmp_path / "out", tmp_path)
    cell = nbformat.read(str(tmp_path / "out" / "06-attention.ipynb"), as_version=4).cells[0]
    assert cell.source == "# Your solution here (exercise attention, see the chapter)"


def test_write_student_notebooks_counts_the_cells_it_replaced(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbformat.write(_notebook(nbformat), str(tmp_path / "09-decoding.ipynb"))
    written = write_student_notebooks(tmp_path / "out", tmp_path)
    assert [(p.name, n) for p, n in written] == [("09-decoding.ipynb", 3)]
    nb = nbformat.read(str(tmp_path / "out" / "09-decoding.ipynb"), as_version=4)
    assert nb.cells[1].source == "# Your solution here (exercise top_p_filter, see the chapter)"
