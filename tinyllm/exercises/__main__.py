"""The exercises' command line: ``python -m tinyllm.exercises COMMAND``.

    list                              the exercises, with their chapters
    show NAME                         the task, the stub and the command that checks it
    stub NAME                         print the starting file (redirect it: > my_solution.py)
    check NAME path/to/solution.py    run the checks; one PASS/FAIL line each
    student-notebooks OUT_DIR         copies of the notebooks without the solution cells

Exit status: 0 when every check passes (or the command succeeds), 1 when a check fails,
2 for a usage error (unknown command or exercise, missing file).
"""

import argparse
import sys

from tinyllm.exercises.checks import UsageError, check_solution
from tinyllm.exercises.notebooks import write_student_notebooks
from tinyllm.exercises.registry import EXERCISES

USAGE_ERROR = 2


def find_exercise(name):
    if name not in EXERCISES:
        raise UsageError("unknown exercise %r; the exercises are: %s"
                         % (name, ", ".join(EXERCISES)))
    return EXERCISES[name]


def list_exercises(out):
    for exercise in EXERCISES.values():
        print("%-22s chapter %2d  %s" % (exercise.name, exercise.chapter, exercise.title),
              file=out)
    return 0


def show_exercise(name, out):
    exercise = find_exercise(name)
    print("%s (chapter %d, %s): %s\n" % (exercise.name, exercise.chapter, exercise.chapter_file,
                                         exercise.title), file=out)
    print(exercise.task + "\n", file=out)
    print("Write: %s (the stub: %s)" % (exercise.entry, exercise.stub_path.name), file=out)
    print("Start from the stub:  python -m tinyllm.exercises stub %s > my_%s.py"
          % (name, name), file=out)
    print("Check your solution:  python -m tinyllm.exercises check %s my_%s.py" % (name, name),
          file=out)
    print("Checks: %s" % ", ".join(check_name for check_name, _ in exercise.checks), file=out)
    return 0


def print_stub(name, out):
    out.write(find_exercise(name).stub_path.read_text(encoding="utf-8"))
    return 0


def student_notebooks(out_dir, source_dir, out):
    for path, count in write_student_notebooks(out_dir, source_dir):
        print("%s: %d solution cell(s) replaced" % (path, count), file=out)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tinyllm.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("list", help="list the exercises")
    for command, help_text in (("show", "print an exercise's task"),
                               ("stub", "print an exercise's starting file")):
        commands.add_parser(command, help=help_text).add_argument("name", metavar="NAME")
    check = commands.add_parser("check", help="check a solution file")
    check.add_argument("name", metavar="NAME")
    check.add_argument("path", metavar="SOLUTION.py")
    notebooks = commands.add_parser("student-notebooks",
                                    help="write the notebooks without their solution cells")
    notebooks.add_argument("out_dir", metavar="OUT_DIR")
    notebooks.add_argument("--from", dest="source_dir", metavar="DIR", default=None,
                           help="the folder of notebooks (default: the repository's notebooks/)")
    return parser


def main(argv=None, out=None):
    """Run one command; returns the exit status (see the module docstring)."""
    out = sys.stdout if out is None else out
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:          # argparse has printed the usage message
        return stop.code
    try:
        if args.command == "list":
            return list_exercises(out)
        if args.command == "show":
            return show_exercise(args.name, out)
        if args.command == "stub":
            return print_stub(args.name, out)
        if args.command == "check":
            return check_solution(find_exercise(args.name), args.path, out)
        if args.command == "student-notebooks":
            return student_notebooks(args.out_dir, args.source_dir, out)
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    except UsageError as error:
        print("error: %s" % error, file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
