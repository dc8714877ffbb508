"""The exercise stubs: the starting file of each exercise, printed by
``python -m tinyllm.exercises stub NAME > my_solution.py``. Every body raises
NotImplementedError until you write it."""
