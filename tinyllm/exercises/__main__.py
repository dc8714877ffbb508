"""The course's command line: ``python -m tinyllm.exercises COMMAND``.

    init DIR                          write the stub package DIR/mytl/ (and DIR/README.md)
    list                              the steps, in the order the chapters teach them
    show STEP                         what a step asks, its file, its checks
    hint STEP [--path DIR] [N]        the next hint of a step (or hint N); hints go one at a time
    check STEP|all [--path DIR]       run a step's checks on DIR/mytl (all: a table of every step)
        [--use-reference STEP ...]      run these steps' modules from the reference solutions
        [--reference-dir DIR]           where the reference solutions are (the instructor's)
    release --nbgrader DIR            write an nbgrader course directory (one assignment a chapter)
    student-notebooks OUT_DIR         copies of the chapters' notebooks without solution cells

``--path`` defaults to the current folder. Exit status: 0 when every check passes (or the
command succeeds), 1 when a check fails, 2 for a usage error (unknown step, no mytl/ package).
"""

import argparse
import shutil
import sys
from pathlib import Path

from tinyllm.exercises import course
from tinyllm.exercises.course import UsageError

USAGE_ERROR = 2

STUDENT_README = """# My tinyllm

This folder holds `mytl/`, the deep-learning framework you build in the tinyllm course, one
module per step. Each module starts as a stub: its docstrings say what to write (shapes, the
forward formula, the errors to raise); deriving the rest is the exercise.

    python -m tinyllm.exercises list                   the steps, in order
    python -m tinyllm.exercises show autograd          what the first step asks
    python -m tinyllm.exercises check autograd         check it (run from this folder)
    python -m tinyllm.exercises hint autograd          one hint at a time
    python -m tinyllm.exercises check all              every step, as a table

Later steps import your earlier modules: your GPT runs on your own autograd engine. If you are
stuck on a step, `check LATER_STEP --use-reference STEP` runs that step from the reference
solution (your instructor has it), and the report says so.
"""


def cmd_init(target, force, out):
    root = Path(target)
    package = root / course.PACKAGE
    if package.exists() and not force:
        raise UsageError("%s exists already; your work there is kept. Use --force to overwrite "
                         "it with fresh stubs" % package)
    package.mkdir(parents=True, exist_ok=True)
    written = []
    for stub in sorted((course.STUBS / course.PACKAGE).glob("*.py")):
        shutil.copyfile(stub, package / stub.name)
        written.append(stub.name)
    readme = root / "README.md"
    if not readme.exists() or force:
        readme.write_text(STUDENT_README, encoding="utf-8")
    print("wrote %s/ with %d modules: %s" % (package, len(written), ", ".join(written)),
          file=out)
    print("start with: cd %s && python -m tinyllm.exercises show autograd" % root, file=out)
    return 0


def cmd_list(out):
    print("%-12s %3s  %-14s %5s  %s" % ("step", "ch", "file", "min", "title"), file=out)
    for step in course.all_steps().values():
        print("%-12s %3d  %-14s %5d  %s" % (step.name, step.chapter, "mytl/%s.py" % step.module,
                                            step.minutes, step.title), file=out)
    return 0


def cmd_show(name, out):
    step = course.find_step(name)
    print("Step %s (chapter %d): %s" % (step.name, step.chapter, step.title), file=out)
    print("You write: mytl/%s.py (the stub's docstrings give the contract)" % step.module,
          file=out)
    print("It teaches: %s" % step.teaches, file=out)
    needs = course.prerequisites(step)
    if needs:
        print("It builds on your: %s" % ", ".join(needs), file=out)
    print("Expected time: about %d minutes; %d hints (hint %s)" % (step.minutes,
                                                                 len(step.hints), step.name),
          file=out)
    print("Checks:", file=out)
    for check in step.checks:
        print("  %-52s %s" % (check.name, check.doc.splitlines()[0] if check.doc else ""),
              file=out)
    print("Run: python -m tinyllm.exercises check %s" % step.name, file=out)
    return 0


def cmd_hint(name, path, number, out):
    step = course.find_step(name)
    if not step.hints:
        print("step %s has no hints" % name, file=out)
        return 0
    root = None
    try:
        root = course.package_dir(path)
    except UsageError:
        pass
    state = course.read_state(root) if root else {}
    seen = state.setdefault("hints_seen", {}).get(name, 0)
    if number is None:
        number = min(seen + 1, len(step.hints))
    if not 1 <= number <= len(step.hints):
        raise UsageError("step %s has hints 1 to %d" % (name, len(step.hints)))
    print("Hint %d of %d for step %s%s:" % (number, len(step.hints), name,
                                           " (the last one)" if number == len(step.hints)
                                           else ""), file=out)
    print("  " + step.hints[number - 1], file=out)
    if root:
        state["hints_seen"][name] = max(seen, number)
        course.write_state(root, state)
    return 0


def _reference_dir(given):
    if given:
        path = Path(given)
        if not (path / course.PACKAGE).is_dir():
            raise UsageError("%s holds no %s/ folder of reference solutions"
                             % (path, course.PACKAGE))
        return path
    return course.default_reference_dir()


def cmd_check(name, path, use_reference, reference_dir, out):
    root = course.package_dir(path)
    reference = _reference_dir(reference_dir) if use_reference else None
    if name == "all":
        return check_all(root, use_reference, reference, out)
    step = course.find_step(name)
    report = course.run_step(step, root, use_reference, reference)
    course.format_report(report, out)
    return 0 if report.skipped or report.passed == len(report.outcomes) else 1


def check_all(root, use_reference, reference, out):
    """Every step, one row each, and the total score."""
    rows, total, passed = [], 0, 0
    for step in course.all_steps().values():
        report = course.run_step(step, root, use_reference, reference)
        if report.skipped:
            rows.append((step, "reference", "-"))
            continue
        total += len(report.outcomes)
        passed += report.passed
        failing = [o.name for o in report.outcomes if not o.passed]
        rows.append((step, "%d/%d" % (report.passed, len(report.outcomes)),
                     ("failing: " + ", ".join(failing))[:70] if failing else "all pass"))
    print("%-12s %3s  %-9s %s" % ("step", "ch", "score", "notes"), file=out)
    for step, score, notes in rows:
        print("%-12s %3d  %-9s %s" % (step.name, step.chapter, score, notes), file=out)
    if use_reference:
        print("on the reference solution (not graded): %s" % ", ".join(use_reference), file=out)
    print("total: %d/%d checks" % (passed, total), file=out)
    return 0 if passed == total else 1


def cmd_release(target, reference_dir, out):
    from tinyllm.exercises import nbgrader
    reference = _reference_dir(reference_dir)
    if reference is None:
        raise UsageError("release needs the reference solutions (instructor/solutions in the "
                         "repository): pass --reference-dir DIR")
    return nbgrader.release(target, reference, out)


def cmd_student_notebooks(out_dir, source_dir, out):
    from tinyllm.exercises.notebooks import write_student_notebooks
    for path, count in write_student_notebooks(out_dir, source_dir):
        print("%s: %d solution cell(s) replaced" % (path, count), file=out)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tinyllm.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    init = commands.add_parser("init", help="write the stub package DIR/mytl/")
    init.add_argument("dir", metavar="DIR")
    init.add_argument("--force", action="store_true", help="overwrite an existing mytl/")
    commands.add_parser("list", help="list the steps")
    show = commands.add_parser("show", help="what a step asks")
    show.add_argument("step", metavar="STEP")
    hint = commands.add_parser("hint", help="the next hint of a step")
    hint.add_argument("step", metavar="STEP")
    hint.add_argument("number", metavar="N", type=int, nargs="?", default=None)
    hint.add_argument("--path", default=".", metavar="DIR")
    check = commands.add_parser("check", help="run a step's checks (or all)")
    check.add_argument("step", metavar="STEP|all")
    check.add_argument("--path", default=".", metavar="DIR",
                       help="the folder holding mytl/ (default: the current folder)")
    check.add_argument("--use-reference", nargs="+", default=[], metavar="STEP",
                       help="run these steps from the reference solutions")
    check.add_argument("--reference-dir", default=None, metavar="DIR",
                       help="the folder holding the reference mytl/ (the instructor's)")
    release = commands.add_parser("release", help="write an nbgrader course directory")
    release.add_argument("--nbgrader", required=True, metavar="DIR")
    release.add_argument("--reference-dir", default=None, metavar="DIR")
    notebooks = commands.add_parser("student-notebooks",
                                    help="the chapters' notebooks without their solution cells")
    notebooks.add_argument("out_dir", metavar="OUT_DIR")
    notebooks.add_argument("--from", dest="source_dir", metavar="DIR", default=None)
    return parser


def main(argv=None, out=None):
    """Run one command; returns the exit status (see the module docstring)."""
    out = sys.stdout if out is None else out
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:          # argparse printed the usage message
        return stop.code
    try:
        if args.command == "init":
            return cmd_init(args.dir, args.force, out)
        if args.command == "list":
            return cmd_list(out)
        if args.command == "show":
            return cmd_show(args.step, out)
        if args.command == "hint":
            return cmd_hint(args.step, args.path, args.number, out)
        if args.command == "check":
            return cmd_check(args.step, args.path, args.use_reference, args.reference_dir, out)
        if args.command == "release":
            return cmd_release(args.nbgrader, args.reference_dir, out)
        if args.command == "student-notebooks":
            return cmd_student_notebooks(args.out_dir, args.source_dir, out)
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    except UsageError as error:
        print("error: %s" % error, file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
