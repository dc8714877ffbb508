"""Prove that every check of the course can fail, and that it fails for the right reasons.

    python instructor/prove.py [STEP ...]

For each step (all by default), on the reference package ``instructor/solutions/mytl``:

1. the reference solution passes every check;
2. the untouched stub (``tinyllm/exercises/stubs/mytl/MODULE.py``) fails every check;
3. every planted bug of ``instructor/bugs/STEP.py`` (a one-line text replacement in the
   reference solution: a sign error, a missing broadcast sum, a mask off by one) fails at
   least one check, and every check fails for at least one planted bug.

The earlier steps a step imports are the reference solutions, so a failure is the step's own.
Prints one line per step and "N checks, N caught a planted bug"; the exit status is 0 only if
all three hold everywhere. ``--verbose`` prints which checks caught each bug.
"""

import os

# One BLAS thread: the training step's small matrices gain nothing from a second thread, and
# lose much when it spins against other work (set before NumPy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import importlib.util  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tinyllm.exercises import course  # noqa: E402

SOLUTIONS = HERE / "solutions"


def load_bugs(step):
    path = HERE / "bugs" / (step.name + ".py")
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location("bugs_" + step.name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BUGS


def failing(report):
    return {o.name for o in report.outcomes if not o.passed}


def prove_step(step, scratch, verbose=False):
    """Returns (problems, {check: number of bugs it caught}, number of bugs)."""
    problems = []
    names = [check.name for check in step.checks]
    reference = course.run_step(step, SOLUTIONS)
    for outcome in reference.outcomes:
        if not outcome.passed:
            problems.append("reference fails %s: %s" % (outcome.name, outcome.detail))
    stub = course.run_step(step, SOLUTIONS, modules_from={step.module: course.STUBS})
    for outcome in stub.outcomes:
        if outcome.passed:
            problems.append("the stub passes %s" % outcome.name)
    caught = {name: 0 for name in names}
    source = (SOLUTIONS / course.PACKAGE / (step.module + ".py")).read_text(encoding="utf-8")
    bugs = load_bugs(step)
    for number, (description, old, new) in enumerate(bugs):
        if source.count(old) != 1:
            problems.append("planted bug %r: its text occurs %d times in the reference, not "
                            "once" % (description, source.count(old)))
            continue
        folder = scratch / ("%s_%d" % (step.name, number))
        (folder / course.PACKAGE).mkdir(parents=True)
        (folder / course.PACKAGE / (step.module + ".py")).write_text(
            source.replace(old, new), encoding="utf-8")
        report = course.run_step(step, SOLUTIONS, modules_from={step.module: folder})
        failed = failing(report)
        for name in failed:
            caught[name] += 1
        if not failed:
            problems.append("planted bug not caught: %s" % description)
        if verbose:
            print("    bug %-70s caught by %s" % (description[:70], ", ".join(sorted(failed))
                                                 or "NOTHING"))
    for name, count in caught.items():
        if count == 0:
            problems.append("check %s caught no planted bug" % name)
    return problems, caught, len(bugs)


def main(argv):
    verbose = "--verbose" in argv
    names = [a for a in argv if not a.startswith("--")]
    steps = course.all_steps()
    chosen = [steps[n] for n in (names or steps)]
    total_checks = total_caught = total_bugs = 0
    all_problems = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for step in chosen:
            t0 = time.perf_counter()
            problems, caught, bugs = prove_step(step, Path(scratch), verbose)
            proven = sum(1 for n in caught.values() if n)
            total_checks += len(caught)
            total_caught += proven
            total_bugs += bugs
            print("%-12s %2d checks: reference passes %s, stub fails %s, %2d planted bugs, "
                  "%2d/%d checks caught one  (%.1f s)"
                  % (step.name, len(caught),
                     "all" if not any(p.startswith("reference") for p in problems) else "NOT all",
                     "all" if not any(p.startswith("the stub") for p in problems) else "NOT all",
                     bugs, proven, len(caught), time.perf_counter() - t0))
            for problem in problems:
                print("    PROBLEM: " + problem)
            all_problems += problems
    print("%d steps, %d planted bugs, %.0f s" % (len(chosen), total_bugs,
                                                time.perf_counter() - started))
    print("%d checks, %d caught a planted bug" % (total_checks, total_caught))
    return 1 if all_problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
