"""The tinyllm course: students build their own framework, ``mytl``, graded by a checker.

    python -m tinyllm.exercises init DIR          the stub package DIR/mytl/, one module a step
    python -m tinyllm.exercises list              the steps, in the order the chapters teach
    python -m tinyllm.exercises check STEP        one PASS/FAIL line a check, and a score
    python -m tinyllm.exercises hint STEP         graded hints, one at a time

``course.py`` holds the steps and runs them, ``grading.py`` the machinery of a check,
``steps/`` one module of checks per step, ``stubs/mytl/`` the student's starting files and
``expected/`` the values the checks compare with. The reference solutions that recorded those
values, and the planted bugs that prove each check can fail, are kept for instructors in the
repository's ``instructor/`` folder: they are not part of the installed package.
"""

from tinyllm.exercises.course import Step, UsageError, all_steps, find_step, run_step

__all__ = ["Step", "UsageError", "all_steps", "find_step", "run_step"]
