"""Compiled kernels (Numba) that the ops call where NumPy has no routine or is too slow.

Each kernel names the NumPy (or Python standard library) reference it must equal, and a test
holds them together.
"""
