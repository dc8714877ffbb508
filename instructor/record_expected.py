"""Record the course's expected values from the reference solutions.

    python instructor/record_expected.py [STEP ...]

runs every check of each step (all steps by default) on ``instructor/solutions/mytl`` in
recording mode: each ``c.expect(label, value, reference=...)`` stores the reference solution's
value, after comparing it with the independent ``reference`` (tinyllm or NumPy) where the
check gives one, and the values are written to ``tinyllm/exercises/expected/STEP.npz``. A
check that fails while recording (a hand-derived number, a gradient check, a cross-check)
means the reference solution is wrong: nothing is written for that step, and the exit status
is 1.
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tinyllm.exercises import course  # noqa: E402

SOLUTIONS = HERE / "solutions"


def record(step):
    report = course.run_step(step, SOLUTIONS, recording=True)
    failed = [o for o in report.outcomes if not o.passed]
    for outcome in failed:
        print("  FAIL %s: %s" % (outcome.name, outcome.detail))
    if failed:
        return False
    values = report.recorded
    step.expected_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(step.expected_path, **values)
    print("%-12s %3d values from %d checks -> %s" % (step.name, len(values), len(step.checks),
                                                     step.expected_path.relative_to(HERE.parent)))
    return True


def main(names):
    steps = course.all_steps()
    chosen = names or list(steps)
    ok = True
    for name in chosen:
        ok &= record(steps[name])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
