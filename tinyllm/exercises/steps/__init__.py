"""One module per step of the course, each holding ``STEP`` and its checks (see course.py)."""
