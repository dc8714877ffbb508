"""The course as an nbgrader course: one assignment a chapter, graded by the course's checks.

    python -m tinyllm.exercises release --nbgrader DIR

writes an nbgrader course directory (https://nbgrader.readthedocs.io)::

    DIR/nbgrader_config.py              the course id, the root, the time limits
    DIR/source/ch01/ch01.ipynb          one source notebook per chapter
    DIR/source/ch02/ch02.ipynb ...

and the instructor goes on with nbgrader's own commands, from DIR::

    nbgrader generate_assignment ch01   # release/ch01/ch01.ipynb: the solutions taken out
    nbgrader autograde ch01             # after collecting submitted/STUDENT/ch01/

A chapter's notebook is the whole assignment; running it from the top writes the student's
package ``mytl/`` beside it:

1. a read-only cell makes ``mytl/`` and writes ``mytl/__init__.py``;
2. read-only cells write, with ``%%writefile mytl/MODULE.py``, the reference solutions of the
   steps of earlier chapters that this chapter's steps import (a course publishes a chapter's
   solutions after its deadline, so that one late step does not block the next chapter);
3. for each step of the chapter: its task (markdown: title, what it teaches, the stub's
   docstring, the hints), then the solution cell ``%%writefile mytl/MODULE.py``, then one
   autograder cell per check (1 point each).

The solution cell is the stub with the reference's code inside ``### BEGIN SOLUTION`` /
``### END SOLUTION`` regions, one region per function body the student writes. nbgrader's
release replaces each region by ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` at
the region's indentation, so the released cell is the stub again: its docstrings, the code
given, and a ``raise NotImplementedError()`` in each function to write. The stub and the
reference are lined up by name (``solution_source``):

- a def in both: its body, if the reference's differs, becomes a region (the stub's docstring
  and the comments above the body stay outside it);
- a def or class only the reference has (a private helper): inserted where the reference has
  it, each function body in a region; an import or constant only it has: inserted as it is;
- a method only the stub has: its body becomes ``return super().NAME(...)`` in a region (the
  reference inherits it);
- a top-level answer (``ANSWER = None`` in the stub, ``"c"`` in the reference): the
  reference's assignment follows the stub's in a region inside ``try: ... except
  NotImplementedError: pass``, so that the released module still imports (with the stub's
  None) until the student writes the answer there.

The result must run the reference's code (compared as syntax trees without docstrings, defs
in any order); otherwise the cell is the stub followed by one region holding the whole
reference.

An autograder cell runs the check through the command-line checker's machinery
(``course.run_step`` on the notebook's folder); its code sits in a ``### BEGIN HIDDEN
TESTS`` region, which nbgrader removes on release and puts back when it autogrades. The
first cell of a step runs all of its checks and keeps the report until a file of ``mytl/``
changes, so the other cells of the step cost nothing.

The assignment folder holds nothing but the notebook: ``mytl`` is in the course's ignore list,
so a source notebook run inside ``source/`` by mistake does not put the reference solutions
into the release.
"""

import ast
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.exercises import course

COURSE_ID = "tinyllm"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")     # nbgrader's default
IMPORT_SECONDS = 60         # run_step's limit on importing the student's package


def assignment_name(chapter):
    return "ch%02d" % chapter


# ----- the solution cell: the stub, with the reference's bodies in solution regions ------------
class _NoMerge(Exception):
    """The stub and the reference cannot be lined up function by function."""


def _docstring(node):
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def _code(node):
    """A def's or class's statements without its docstring."""
    return node.body[1:] if _docstring(node) is not None else node.body


def _dump(nodes):
    return "\n".join(ast.dump(_without_docstrings(n)) for n in nodes)


def _without_docstrings(node):
    """A copy of the tree without docstrings: the stub's and the reference's differ."""
    node = copy.deepcopy(node)
    for inner in ast.walk(node):
        if isinstance(inner, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and _docstring(inner) is not None:
            inner.body = inner.body[1:]
    return node


def _is_def(node):
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))


def _first_line(node):
    """The node's first line, its decorators included (1-based)."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _body_span(node, lines, with_comments):
    """(first, last) lines (1-based) of a def's code after its docstring; with_comments: and
    the comment lines just above it. None when the def has no code after its docstring."""
    code = _code(node)
    if not code:
        return None
    first, last = code[0].lineno, code[-1].end_lineno
    if lines[first - 1][:code[0].col_offset].strip():
        raise _NoMerge("%s: its code shares a line with the def" % node.name)
    floor = _docstring(node).end_lineno if _docstring(node) is not None else node.lineno
    while with_comments and first - 1 > floor and lines[first - 2].strip().startswith("#"):
        first -= 1
    return first, last


def _reindent(block, old, new):
    """Lines of code indented by ``old`` moved to ``new`` (lines inside a string that start
    further left stay as they are; the final comparison catches a string this would change)."""
    return [new + line[len(old):] if line.startswith(old) else line for line in block]


def _region(indent, block):
    return [indent + BEGIN_SOLUTION] + block + [indent + END_SOLUTION]


def _body_region(node, lines, indent=None):
    """The reference def's code as a solution region at ``indent`` (its own by default)."""
    first, last = _body_span(node, lines, with_comments=True)
    own = " " * _code(node)[0].col_offset
    indent = own if indent is None else indent
    return _region(indent, _reindent(lines[first - 1:last], own, indent))


def _regioned(node, lines):
    """A reference statement the stub lacks: its text, every function body in a region."""
    start, end = _first_line(node), node.end_lineno
    text = lines[start - 1:end]
    if _is_def(node) and _code(node):
        first, last = _body_span(node, lines, with_comments=True)
        return text[:first - start] + _body_region(node, lines) + text[last - start + 1:]
    if isinstance(node, ast.ClassDef):
        out, at = [], start
        for inner in node.body:
            if _is_def(inner) and _code(inner):
                first, last = _body_span(inner, lines, with_comments=True)
                out += lines[at - 1:first - 1] + _body_region(inner, lines)
                at = last + 1
        return out + lines[at - 1:end]
    return text


def _key(node):
    """What pairs a reference statement with the stub's: the name of a def or class, the names
    an assignment binds, else the statement itself."""
    if _is_def(node) or isinstance(node, ast.ClassDef):
        return (type(node).__name__, node.name)
    if _assigned_names(node):
        return ("assign", _assigned_names(node))
    return ("statement", _dump([node]))


def _assigned_names(node):
    """('x', 'y') for ``x = y = value`` (names only), else None."""
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        return tuple(t.id for t in node.targets)
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return (node.target.id,)
    return None


def _bound_names(node):
    """The names a top-level statement binds (a def's, a class's, an import's)."""
    if _is_def(node) or isinstance(node, ast.ClassDef):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {t.id for t in ast.walk(node) if isinstance(t, ast.Name)
            and isinstance(t.ctx, ast.Store)}


def _forwarding_body(node, indent):
    """``return super().NAME(...)`` with the def's parameters: the same as not defining it."""
    args = node.args
    if node.decorator_list or not (args.posonlyargs + args.args):
        raise _NoMerge("%s: only the stub has it, and it is not a plain method" % node.name)
    passed = [a.arg for a in (args.posonlyargs + args.args)[1:]]
    passed += ["*" + args.vararg.arg] if args.vararg else []
    passed += ["%s=%s" % (a.arg, a.arg) for a in args.kwonlyargs]
    passed += ["**" + args.kwarg.arg] if args.kwarg else []
    return _region(indent, [indent + "return super().%s(%s)" % (node.name, ", ".join(passed))])


def _merge_block(stub_body, ref_body, stub_lines, ref_lines, edits, block_end, path, kept):
    """Record in ``edits`` [(first, last, new_lines)] the changes that turn the stub's block
    ``path`` (() for the module, a tuple of class names) into the solution: regions for the
    bodies that differ, the reference's statements that the stub lacks. The stub's statements
    that the reference lacks stay, if harmless, and go into ``kept`` as (path, key)."""
    stub_by_key = {}
    for node in stub_body:
        stub_by_key.setdefault(_key(node), node)
    pending = []            # reference statements the stub lacks, inserted before the next match
    for ref in ref_body:
        stub = stub_by_key.pop(_key(ref), None)
        if stub is None:
            pending.append(ref)
            continue
        if pending:
            _insert(edits, _first_line(stub), pending, ref_lines, at_end=False)
            pending = []
        if isinstance(ref, ast.ClassDef):
            if _dump(ref.bases + ref.keywords + ref.decorator_list) != \
                    _dump(stub.bases + stub.keywords + stub.decorator_list):
                raise _NoMerge("class %s: its bases or decorators differ" % ref.name)
            _merge_block(_code(stub), _code(ref), stub_lines, ref_lines, edits,
                         stub.end_lineno, path + (ref.name,), kept)
        elif _is_def(ref):
            if _dump([ref.args] + ref.decorator_list) != _dump([stub.args] + stub.decorator_list):
                raise _NoMerge("%s: its signature or decorators differ" % ref.name)
            if _dump(_code(ref)) != _dump(_code(stub)):
                if not _code(ref):
                    raise _NoMerge("%s: the reference has no code" % ref.name)
                _replace_body(edits, stub, stub_lines, _body_region(
                    ref, ref_lines, " " * (stub.col_offset + 4)))
        elif _dump([ref]) != _dump([stub]):
            # ANSWER = None in the stub, ANSWER = "c" in the reference: the reference's
            # assignment follows the stub's, in a region of its own (at the top level only:
            # the release's ``raise NotImplementedError()`` stops the import there).
            if path:
                raise _NoMerge("line %d: the stub and the reference differ" % stub.lineno)
            # The region sits in ``try: ... except NotImplementedError: pass``, so that the
            # release's ``raise NotImplementedError()`` leaves the stub's value in place and
            # the rest of the module still imports.
            indent = " " * stub.col_offset
            inner = indent + "    "
            edits.append((stub.end_lineno + 1, stub.end_lineno, [
                indent + "try:    # your answer replaces the two lines below; until then it stays None"]
                + _region(inner, _reindent(ref_lines[_first_line(ref) - 1:ref.end_lineno],
                                           " " * ref.col_offset, inner))
                + [indent + "except NotImplementedError:", inner + "pass"]))
    if pending:
        _insert(edits, block_end + 1, pending, ref_lines, at_end=True)
    # What only the stub has: a method becomes ``return super().name(...)`` in the solution
    # (the reference inherits it); a def, class or import at the top stays if the reference
    # binds none of its names.
    ref_names = set().union(*[_bound_names(node) for node in ref_body])
    for key, stub in stub_by_key.items():
        if path and _is_def(stub):
            _replace_body(edits, stub, stub_lines,
                          _forwarding_body(stub, " " * (stub.col_offset + 4)))
        elif path or not isinstance(stub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                           ast.Import, ast.ImportFrom)) \
                or _bound_names(stub) & ref_names:
            raise _NoMerge("line %d: only the stub has it" % stub.lineno)
        kept.add((path, key))


def _is_literal(node):
    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False


def _replace_body(edits, stub, stub_lines, region):
    """Put ``region`` in place of the stub def's code (after its docstring)."""
    span = _body_span(stub, stub_lines, with_comments=False)
    if span is None:            # a stub def with a docstring only
        at = _docstring(stub).end_lineno + 1
        edits.append((at, at - 1, region))
    else:
        edits.append((span[0], span[1], region))


def _normal(tree, kept, path=()):
    """The tree as the comparison sees it: no docstrings, defs in any order, no statements
    kept from the stub alone, no methods that only forward to super()."""
    body = []
    for node in _code(tree):
        if (path, _key(node)) in kept:
            continue
        if _is_answer_guard(node):          # try: ANSWER = ... except NotImplementedError
            body.extend(node.body)
            continue
        if isinstance(node, ast.ClassDef):
            node = copy.copy(node)
            node.body = _normal(node, kept, path + (node.name,)).body
        elif _is_def(node):
            node = _without_docstrings(node)
        body.append(node)
    # An assignment of a constant that a later one of the same names overrides does nothing.
    body = [n for i, n in enumerate(body)
            if not (_assigned_names(n) and _is_literal(n.value)
                    and any(_key(later) == _key(n) for later in body[i + 1:]))]
    defs = sorted((n for n in body if _is_def(n) or isinstance(n, ast.ClassDef)),
                  key=lambda n: n.name)
    others = [n for n in body if not (_is_def(n) or isinstance(n, ast.ClassDef))]
    return ast.Module(body=others + defs, type_ignores=[])


def _is_answer_guard(node):
    """``try: <assignments> except NotImplementedError: pass``, as a top-level answer is
    written in a solution cell."""
    return (isinstance(node, ast.Try) and len(node.handlers) == 1 and not node.orelse
            and not node.finalbody and all(_assigned_names(n) for n in node.body)
            and isinstance(node.handlers[0].type, ast.Name)
            and node.handlers[0].type.id == "NotImplementedError"
            and len(node.handlers[0].body) == 1
            and isinstance(node.handlers[0].body[0], ast.Pass))


def _blank_lines(lines, index, step):
    """How many blank lines there are from lines[index] on, going by ``step`` (at most 2)."""
    count = 0
    while 0 <= index < len(lines) and not lines[index].strip() and count < 2:
        count, index = count + 1, index + step
    return count


def _insert(edits, before, nodes, ref_lines, at_end):
    """Insert the reference's ``nodes`` (which the stub lacks) before stub line ``before``,
    spaced by the blank lines the reference puts around them."""
    block = []
    for node in nodes:
        block += _regioned(node, ref_lines)
        block += [""] * _blank_lines(ref_lines, node.end_lineno, 1)
    if at_end:          # after the block's last statement: the gap goes in front
        block = [""] * _blank_lines(ref_lines, _first_line(nodes[0]) - 2, -1) + \
            [line for line in "\n".join(block).rstrip("\n").split("\n")]
    edits.append((before, before - 1, block))


def solution_source(stub_text, reference_text):
    """The solution cell's file: (text, merged). ``merged``: the stub with the reference's code
    in one region per function body that differs; else (False) the stub followed by one region
    holding the whole reference."""
    try:
        text = _merged(stub_text, reference_text)
        return text, True
    except (_NoMerge, SyntaxError):
        body = reference_text if reference_text.endswith("\n") else reference_text + "\n"
        return (stub_text.rstrip("\n") + "\n\n\n" + BEGIN_SOLUTION + "\n" + body
                + END_SOLUTION + "\n"), False


def _merged(stub_text, reference_text):
    stub_lines, ref_lines = stub_text.splitlines(), reference_text.splitlines()
    stub_tree, ref_tree = ast.parse(stub_text), ast.parse(reference_text)
    edits, kept = [], set()
    _merge_block(_code(stub_tree), _code(ref_tree), stub_lines, ref_lines, edits,
                 len(stub_lines), (), kept)
    lines = list(stub_lines)
    for first, last, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[first - 1:last] = new
    text = "\n".join(lines).rstrip("\n") + "\n"
    # The merge is right only if the solution runs the reference's code (up to the order of
    # its defs), and the release (regions replaced) still parses.
    if ast.dump(_normal(ast.parse(strip_markers(text)), kept)) != \
            ast.dump(_normal(ref_tree, set())):
        raise _NoMerge("the merged file is not the reference")
    ast.parse(release_source(text))
    return text


def strip_markers(text):
    """The solution's file as the source notebook writes it, without the region markers."""
    return "\n".join(line for line in text.split("\n")
                     if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def release_source(text):
    """What nbgrader's release makes of a solution cell (ClearSolutions, default code stub)."""
    out, inside = [], False
    for line in text.split("\n"):
        if BEGIN_SOLUTION in line:
            indent = re.match(r"\s*", line).group(0)
            out += [indent + stub_line for stub_line in CODE_STUB]
            inside = True
        elif END_SOLUTION in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


# ----- the notebook ------------------------------------------------------------------------
def _lines(text):
    """A cell's source as the .ipynb format stores it: a list of lines."""
    return text.splitlines(keepends=True)


def _markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": _lines(text)}


def _code_cell(text, grade_id=None, solution=False, grade=False, locked=False, points=None):
    metadata = {}
    if grade_id is not None:
        metadata["nbgrader"] = {"grade": grade, "grade_id": grade_id, "locked": locked,
                                "schema_version": 3, "solution": solution, "task": False}
        if grade:
            metadata["nbgrader"]["points"] = points
    return {"cell_type": "code", "execution_count": None, "metadata": metadata,
            "outputs": [], "source": _lines(text)}


def _notebook(cells):
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 4,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"}}}


def _chapter_title(chapter):
    """The chapter's heading from the repository's chapters/NN-*.md, if it is there."""
    folder = course.HERE.parents[1] / "chapters"
    for path in sorted(folder.glob("%02d-*.md" % chapter)) if folder.is_dir() else []:
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        if first and first[0].startswith("#"):
            return first[0].lstrip("#").strip()
    return "Chapter %d" % chapter


def _module_docstring(path):
    return ast.get_docstring(ast.parse(Path(path).read_text(encoding="utf-8"))) or ""


def _writefile(module, text):
    return "%%%%writefile %s/%s.py\n%s" % (course.PACKAGE, module, text)


def _intro_cells(chapter, steps, given):
    names = ", ".join("`%s` (`mytl/%s.py`)" % (s.name, s.module) for s in steps)
    text = ("# %s\n\nIn this assignment you write the step%s %s of `mytl`, your own "
            "deep-learning framework.\n\nRun the cells from the top: each `%%%%writefile` cell writes one "
            "file of the package `mytl/` beside this notebook. Write your code in the cells "
            "that say `# YOUR CODE HERE`, in place of `raise NotImplementedError()`; keep the "
            "names and docstrings. After each step, the cell below it prints the checker's "
            "report (the same checks grade the assignment: one point each).\n"
            % (_chapter_title(chapter), "s" if len(steps) > 1 else "", names))
    cells = [_markdown(text),
             _code_cell('import os\n\nos.makedirs("%s", exist_ok=True)' % course.PACKAGE,
                        "setup", locked=True),
             _code_cell(_writefile("__init__", (course.STUBS / course.PACKAGE /
                                                "__init__.py").read_text(encoding="utf-8")),
                        "setup_init", locked=True)]
    if given:
        cells.append(_markdown(
            "## Earlier chapters\n\nThis chapter builds on modules of earlier chapters. The "
            "cells below write the course's solutions of them (published after their "
            "deadline), so that everyone starts this chapter from the same, working code: %s.\n"
            % ", ".join("`mytl/%s.py`" % module for module, _ in given)))
        for module, text in given:
            cells.append(_code_cell(_writefile(module, text), "given_%s" % module, locked=True))
    return cells


def _step_cells(step, reference_dir):
    stub = step.stub_path.read_text(encoding="utf-8")
    reference = (Path(reference_dir) / course.PACKAGE / (step.module + ".py")).read_text(
        encoding="utf-8")
    source, merged = solution_source(stub, reference)
    text = "## Step %s: %s\n\n%s\n\n```\n%s\n```\n" % (step.name, step.title, step.teaches,
                                                    _module_docstring(step.stub_path))
    if any(line.startswith(BEGIN_SOLUTION) for line in source.split("\n")):
        text += ("\nThe lines `# YOUR CODE HERE` / `raise NotImplementedError()` that stand "
                 "outside any function stop the module when it is imported: replace them with "
                 "your code (or delete them) as you start.\n")
    for number, hint in enumerate(step.hints, 1):
        text += "\n<details><summary>Hint %d</summary>\n\n%s\n</details>\n" % (number, hint)
    cells = [_markdown(text),
             _code_cell(_writefile(step.module, source), "%s_solution" % step.name,
                        solution=True),
             _code_cell("# Run the checks of step %s on the files above (as the autograder "
                        "does).\nfrom tinyllm.exercises.nbgrader import show_step\n\n"
                        "show_step(%r)" % (step.name, step.name))]
    for check in step.checks:
        about = "".join("# %s\n" % line.strip() for line in check.doc.splitlines())
        cells.append(_code_cell(
            "# Autograded (1 point): step %s, check %s.\n%s%s\n"
            "from tinyllm.exercises.nbgrader import assert_check\n\n"
            "assert_check(%r, %r)\n%s" % (step.name, check.name, about, BEGIN_HIDDEN,
                                          step.name, check.name, END_HIDDEN),
            "%s_%s" % (step.name, check.name), grade=True, locked=True, points=1))
    return cells, merged


@dataclass
class Assignment:
    """One chapter's assignment, as written."""
    name: str                   # ch01
    notebook: Path
    steps: list                 # the step names, in course order
    points: int                 # one per check
    given: list = field(default_factory=list)       # earlier modules written from solutions
    whole_module: list = field(default_factory=list)    # steps with one region, not merged


def _config_text(root, timeout):
    return ('"""nbgrader\'s configuration of the tinyllm course (written by python -m '
            'tinyllm.exercises release --nbgrader)."""\n\n'
            "c = get_config()  # noqa: F821 (nbgrader defines it)\n\n"
            "c.CourseDirectory.root = %r\n"
            "c.CourseDirectory.course_id = %r\n"
            "# The student's package mytl/ is written by the notebook: never copy one\n"
            "# (a source notebook run in source/ would put the solutions into the release).\n"
            "c.CourseDirectory.ignore = %r\n"
            "# Seconds a cell may run: the first autograder cell of a step runs all its checks.\n"
            "c.Execute.timeout = %d\n"
            % (str(root), COURSE_ID, [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                                       course.PACKAGE, course.STATE_FILE], timeout))


def write_nbgrader_course(out_dir, reference_dir=None, steps=None):
    """Write the nbgrader course directory ``out_dir``; returns the list of Assignments.

    ``steps``: the step names to include (default: every step whose reference solution is in
    ``reference_dir``, by default the repository's ``instructor/solutions``).
    """
    reference_dir = reference_dir or course.default_reference_dir()
    if reference_dir is None or not (Path(reference_dir) / course.PACKAGE).is_dir():
        raise course.UsageError("the nbgrader course needs the reference solutions: pass "
                                "--reference-dir DIR (the folder holding mytl/) or set "
                                "TINYLLM_COURSE_REFERENCE")
    reference_dir = Path(reference_dir)
    everything = course.all_steps()

    def has_reference(step):
        return (reference_dir / course.PACKAGE / (step.module + ".py")).is_file()

    if steps is None:
        chosen = [s for s in everything.values() if has_reference(s) and s.stub_path.is_file()]
    else:
        unknown = [name for name in steps if name not in everything]
        if unknown:
            raise course.UsageError("unknown step(s) %s; the steps are: %s"
                                    % (", ".join(unknown), ", ".join(everything)))
        chosen = [everything[name] for name in everything if name in steps]
        missing = [s.name for s in chosen if not has_reference(s)]
        if missing:
            raise course.UsageError("no reference solution in %s for: %s"
                                    % (reference_dir, ", ".join(missing)))
    out_dir = Path(out_dir).resolve()
    assignments, longest = [], 0
    for chapter in sorted({s.chapter for s in chosen}):
        in_chapter = [s for s in chosen if s.chapter == chapter]
        own = {s.name for s in in_chapter}
        needed = {name for s in in_chapter for name in course.prerequisites(s, everything)}
        given = []
        for name in course.STEP_ORDER:
            if name in needed and name not in own:
                module = everything[name].module
                path = reference_dir / course.PACKAGE / (module + ".py")
                if not path.is_file():
                    raise course.UsageError("chapter %d needs mytl/%s.py of step %s, which "
                                            "is not in %s" % (chapter, module, name,
                                                              reference_dir))
                given.append((module, path.read_text(encoding="utf-8")))
        cells = _intro_cells(chapter, in_chapter, given)
        whole = []
        for step in in_chapter:
            step_cells, merged = _step_cells(step, reference_dir)
            cells += step_cells
            if not merged:
                whole.append(step.name)
            longest = max(longest, sum(c.time_limit for c in step.checks))
        name = assignment_name(chapter)
        path = out_dir / "source" / name / (name + ".ipynb")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(_notebook(cells), f, indent=1, ensure_ascii=False)
            f.write("\n")
        assignments.append(Assignment(name, path, [s.name for s in in_chapter],
                                      sum(len(s.checks) for s in in_chapter),
                                      [module for module, _ in given], whole))
    (out_dir / "nbgrader_config.py").write_text(
        _config_text(out_dir, int(longest + IMPORT_SECONDS + 60)), encoding="utf-8")
    return assignments


def release(out_dir, reference_dir=None, out=None, steps=None):
    """The command ``release --nbgrader DIR``: write the course, print what was written."""
    out = sys.stdout if out is None else out
    assignments = write_nbgrader_course(out_dir, reference_dir, steps)
    for a in assignments:
        print("%s: %s  (steps %s; %d points%s)"
              % (a.name, a.notebook, ", ".join(a.steps), a.points,
                 "; given: " + ", ".join(a.given) if a.given else ""), file=out)
        for name in a.whole_module:
            print("  note: step %s: its stub and reference do not line up function by "
                  "function; its solution is one region after the stub" % name, file=out)
    print("then, in %s: nbgrader generate_assignment ch01 (and the others)"
          % Path(out_dir).resolve(), file=out)
    return 0


# ----- what the notebook's cells call --------------------------------------------------------
_REPORTS = {}           # (step, folder) -> (fingerprint of mytl/, StepReport)


def _fingerprint(root):
    """The contents of the package's files: the report is stale when one changes."""
    package = Path(root) / course.PACKAGE
    return tuple(sorted((str(p.relative_to(package)), hashlib.sha1(p.read_bytes()).hexdigest())
                        for p in package.rglob("*.py")))


def step_report(step_name, folder="."):
    """course.run_step on the package in ``folder``, kept until a file of mytl/ changes."""
    root = course.package_dir(folder)
    key, fingerprint = (step_name, str(root)), _fingerprint(root)
    cached = _REPORTS.get(key)
    if cached is None or cached[0] != fingerprint:
        cached = _REPORTS[key] = (fingerprint, course.run_step(course.find_step(step_name), root))
    return cached[1]


def show_step(step_name, folder="."):
    """Print the checker's report of one step (as ``check STEP`` does)."""
    report = step_report(step_name, folder)
    course.format_report(report, sys.stdout)
    return report


def assert_check(step_name, check_name, folder="."):
    """The autograder cell: pass if the check passes, else AssertionError with its FAIL line."""
    report = step_report(step_name, folder)
    for outcome in report.outcomes:
        if outcome.name == check_name:
            line = "%s %s  %s" % ("PASS" if outcome.passed else "FAIL", check_name,
                                  outcome.detail)
            if not outcome.passed:
                raise AssertionError(line)
            print(line)
            return outcome
    raise AssertionError("step %s has no check named %r" % (step_name, check_name))
