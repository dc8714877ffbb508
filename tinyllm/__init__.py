"""tinyllm: a from-scratch deep-learning framework in NumPy and Numba, for learning how large
language models work.

    import tinyllm as tl
    x = tl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x @ x).tanh().sum()
    y.backward()          # x.grad now holds dy/dx
"""

from tinyllm.kernels import cpu_runtime  # noqa: F401  (first: its settings must precede NumPy)

import numpy as np  # noqa: E402

from tinyllm.autograd import (Function, Tensor, detect_anomaly, enable_grad, get_default_dtype,
                              is_grad_enabled, no_grad, set_default_dtype, set_grad_enabled,
                              tensor)
from tinyllm.random import manual_seed
from tinyllm.kernels.backend import get_backend, set_backend, use_backend
from tinyllm.ops import *  # noqa: F401,F403  (the functional forms: tinyllm.exp, tinyllm.cat, ...)
from tinyllm.gradcheck import (GradcheckError, gradcheck, gradcheck_module, numerical_grad,
                               rel_error)
from tinyllm import functional, nn, optim, viz  # noqa: E402  (tinyllm.models, .data and
# .training are imported on their own: `from tinyllm.models import GPT`)

float16 = np.float16
float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
bool_ = np.bool_

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("models", "data", "training", "exercises")


def __getattr__(name):
    """``tinyllm.models``, ``.data``, ``.training``, ``.exercises`` and ``tinyllm.train`` load
    on first use, so ``import tinyllm`` stays quick for work that needs only the engine."""
    import importlib
    if name in _LAZY_SUBMODULES:
        return importlib.import_module("tinyllm." + name)
    if name == "train":
        return importlib.import_module("tinyllm.training").train
    raise AttributeError("module 'tinyllm' has no attribute %r" % name)
