"""Optimizers and learning-rate schedules.

``SGD``, ``Adam`` and ``AdamW`` update parameters in place from their ``.grad``; parameter
groups give different options to different parameters; ``lr_scheduler`` changes the learning
rate over training. Names, defaults and update rules follow ``torch.optim``.
"""

from tinyllm.optim.optimizer import Optimizer
from tinyllm.optim.sgd import SGD
from tinyllm.optim.adam import Adam, AdamW
from tinyllm.optim import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
