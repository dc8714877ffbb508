"""Reference solutions of the exercises, kept apart from the stubs (tinyllm/exercises/stubs).

Each file here passes every check of its exercise:
``python -m tinyllm.exercises check NAME tinyllm/exercises/solutions/NAME.py``.
Try the exercise before reading one.
"""
