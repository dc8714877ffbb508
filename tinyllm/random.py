"""tinyllm's random number generator: one NumPy ``Generator`` that ``manual_seed`` resets.

Every random factory (``randn``, ``rand``, ``randint``, ...), dropout and weight
initialisation draws from ``default_generator()`` unless given its own ``generator=``, so
``tinyllm.manual_seed(0)`` at the top of a script makes the whole run repeatable.
"""

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reset the global generator to a fixed state; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    return _generator


def get_rng_state():
    """The generator's state (a dict), for checkpoints."""
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state
