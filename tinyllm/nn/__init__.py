"""Layers and models' building blocks: ``Module``, ``Parameter``, containers and layers.

PyTorch is the reference for names, parameter shapes, initialisation and behaviour, so a
PyTorch ``state_dict`` (converted to NumPy arrays) loads into the matching tinyllm module.
"""

from tinyllm.nn.parameter import Parameter
from tinyllm.nn.module import Module
from tinyllm.nn.containers import ModuleDict, ModuleList, Sequential
