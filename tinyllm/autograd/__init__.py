"""The autograd engine: tensors, the Function pattern, the backward pass and grad modes."""

from tinyllm.autograd.grad_mode import (detect_anomaly, enable_grad, is_anomaly_enabled,
                                        is_grad_enabled, no_grad, set_grad_enabled)
from tinyllm.autograd.tensor import Tensor, get_default_dtype, set_default_dtype, tensor
from tinyllm.autograd.function import Context, Function, sum_to_shape
from tinyllm.autograd.engine import Node, topological_order

__all__ = ["Tensor", "tensor", "Function", "Context", "Node", "sum_to_shape", "no_grad",
           "enable_grad", "set_grad_enabled", "detect_anomaly", "is_grad_enabled",
           "is_anomaly_enabled", "set_default_dtype", "get_default_dtype", "topological_order"]
