"""Exercises with an autograder: implement a forward and backward, and check them.

    python -m tinyllm.exercises list                         the exercises, by chapter
    python -m tinyllm.exercises show softmax                 the task
    python -m tinyllm.exercises stub softmax > my_softmax.py the starting file
    python -m tinyllm.exercises check softmax my_softmax.py  gradient checks and comparisons
    python -m tinyllm.exercises student-notebooks OUT_DIR    notebooks without the solutions

Each exercise has a stub (``stubs/NAME.py``: the class or function to write, its shapes and
formulas), a reference solution kept apart (``solutions/NAME.py``) and checks
(``registry.py``). ``check`` prints one PASS/FAIL line per check with the worst element and
its error, and exits with 0 when all pass, 1 when any fails, 2 for a usage error.
"""

from tinyllm.exercises.checks import Outcome, UsageError, check_solution, load_solution
from tinyllm.exercises.registry import EXERCISES, Exercise

__all__ = ["EXERCISES", "Exercise", "Outcome", "UsageError", "check_solution",
           "load_solution"]
