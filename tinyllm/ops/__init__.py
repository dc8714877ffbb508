"""Differentiable ops, each a ``Function`` with its forward and backward written out.

- ``arithmetic``: + - * / ** @ and negation, with broadcasting;
- ``elementwise``: exp, log, tanh, sigmoid, relu, gelu, maximum, clip, where, masked_fill, ...;
- ``reduction``: sum, mean, max, min, var, softmax, log_softmax, logsumexp;
- ``shape``: reshape, transpose, permute, indexing, cat, stack, split, gather, tril/triu;
- ``creation``: zeros, ones, arange, randn, ... and one_hot;
- ``linear``, ``normalization``, ``loss``, ``rnn``, ``attention``: the layers' ops ``Linear``,
  ``Embedding``, ``LayerNorm``, the closed-form losses, the LSTM step and fused attention,
  which ``tinyllm.functional`` checks arguments for and applies.
"""

from tinyllm.ops.arithmetic import (add, compare, div, logical_and, logical_not, logical_or,
                                    matmul, mul, neg, pow, sub)
from tinyllm.ops.elementwise import (abs, cast, clamp, clip, clone, cos, exp, gelu, log,
                                     masked_fill, maximum, minimum, relu, sigmoid, sin, sqrt,
                                     tanh, where)
from tinyllm.ops.reduction import (argmax, argmin, log_softmax, logsumexp, max, mean, min,
                                   softmax, sum, var)
from tinyllm.ops.shape import (broadcast_to, cat, concatenate, expand, flatten, gather,
                               getitem, index_key, permute, reshape, split, squeeze, stack,
                               transpose, tril, triu, unsqueeze, view)
from tinyllm.ops.elementwise import silu
from tinyllm.ops.creation import (arange, empty, empty_like, eye, full, full_like, linspace,
                                  one_hot, ones, ones_like, rand, rand_like, randint, randn,
                                  randn_like, randperm, tril_mask, triu_mask, zeros, zeros_like)

__all__ = [
    "abs", "add", "arange", "argmax", "argmin", "broadcast_to", "cast", "cat", "clamp", "clip",
    "clone", "compare", "concatenate", "cos", "div", "empty", "empty_like", "exp", "expand",
    "eye", "flatten", "full", "full_like", "gather", "gelu", "getitem", "index_key",
    "linspace", "log", "log_softmax", "logical_and", "logical_not", "logical_or", "logsumexp",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg",
    "one_hot", "ones", "ones_like", "permute", "pow", "rand", "rand_like", "randint", "randn",
    "randn_like", "randperm", "relu", "reshape", "sigmoid", "sin", "softmax", "split", "sqrt",
    "squeeze", "stack", "sub", "sum", "tanh", "transpose", "tril", "tril_mask", "triu",
    "triu_mask", "unsqueeze", "var", "view", "where", "zeros", "zeros_like",
    "silu",
]
