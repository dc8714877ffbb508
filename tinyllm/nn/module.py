"""``Module``: the base class of every layer and model.

A module is a tree: assigning a ``Parameter`` or another ``Module`` to an attribute in
``__init__`` registers it, so ``parameters()``, ``state_dict()``, ``train()``/``eval()`` and
``zero_grad()`` reach the whole tree. ``module(x)`` calls ``module.forward(x)``.
"""

import contextlib
from collections import OrderedDict, namedtuple

import numpy as np

from tinyllm.autograd import Tensor, no_grad
from tinyllm.nn.parameter import Parameter

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class for layers and models; subclasses define ``__init__`` and ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----- registration -------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("%s: call super().__init__() at the start of __init__ before "
                                 "assigning attributes" % type(self).__name__)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()) and (value is None or
                                                                  isinstance(value, Tensor)):
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is None:
            object.__setattr__(self, name, None)
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is part of the module's state but not trained (e.g. a causal mask).

        Persistent buffers appear in ``state_dict()``; non-persistent ones do not.
        """
        if "_buffer_names" not in self.__dict__:
            object.__setattr__(self, "_buffer_names", set())
        self._buffer_names.add(name)
        if not persistent:
            self._non_persistent.add(name)
        setattr(self, name, tensor)

    def add_module(self, name, module):
        setattr(self, name, module)

    # ----- calling --------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError("%s must define forward()" % type(self).__name__)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----- walking the tree ----------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and every module below it, each once."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(name + "." + n if name else n, m) for n, m in module._modules.items()
                        if m is not None]
            stack[0:0] = children           # depth-first, in registration order

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, parameter) pairs; a parameter shared by two modules (tied weights) is
        listed once, under the first name."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (module_name + "." + name if module_name else name), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (module_name + "." + name if module_name else name), buf

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def num_parameters(self):
        """The number of trainable numbers (shared parameters counted once)."""
        return int(sum(p.size for p in self.parameters()))

    def apply(self, fn):
        """Call ``fn(module)`` on every module of the tree (children first), return self."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    # ----- modes and gradients -------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active); ``eval()`` is ``train(False)``."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient (set it to None, or fill it with zeros)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = np.zeros_like(param.data)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def to(self, dtype):
        """Convert every floating parameter and buffer to ``dtype`` in place (e.g. float64 for a
        gradient check); returns self."""
        dtype = np.dtype(dtype)
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for tensor in registry.values():
                    if tensor is not None and tensor.dtype.kind == "f":
                        tensor.data = tensor.data.astype(dtype)
                        if tensor.grad is not None:
                            tensor.grad = tensor.grad.astype(dtype)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ----- saving and loading --------------------------------------------------------------
    def _state_items(self):
        """(name, tensor) for every parameter and persistent buffer, shared ones under every
        name (as PyTorch does, so tied weights load from either name)."""
        for module_name, module in self.named_modules():
            def full(n):
                return module_name + "." + n if module_name else n
            for name, param in module._parameters.items():
                if param is not None:
                    yield full(name), param
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    yield full(name), buf

    def state_dict(self):
        """An ordered dict from dotted names to copies of the parameter and buffer arrays."""
        return OrderedDict((name, t.data.copy()) for name, t in self._state_items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy arrays, tensors, or anything ``np.asarray`` accepts, such as a
        PyTorch tensor's ``.numpy()``) into this module's parameters and buffers.

        With ``strict=True`` a missing or unexpected key is an error; a shape mismatch is
        always an error. Returns ``(missing_keys, unexpected_keys)``.
        """
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and (missing or unexpected):
            if missing:
                problems.append("missing keys: %s" % ", ".join(missing))
            if unexpected:
                problems.append("unexpected keys: %s" % ", ".join(unexpected))
        for name, tensor in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            if value.dtype.kind not in "fiub":
                problems.append("%s: the checkpoint holds %s values; a parameter or buffer "
                                "holds numbers" % (name, value.dtype))
            elif value.shape != tensor.shape:
                problems.append("%s: the checkpoint has shape %s, the module has shape %s"
                                % (name, value.shape, tensor.shape))
        if problems:
            raise RuntimeError("load_state_dict for %s:\n  %s"
                           % (type(self).__name__, "\n  ".join(problems)))
        with no_grad():
            for name, tensor in own.items():
                if name in state_dict:
                    value = state_dict[name]
                    value = value.data if isinstance(value, Tensor) else np.asarray(value)
                    tensor.data[...] = value
                    tensor._version += 1
        return LoadResult(missing, unexpected)

    # ----- printing ------------------------------------------------------------------------
    def extra_repr(self):
        """Sizes and options shown in the module's one-line summary (layers override it)."""
        return ""

    def __repr__(self):
        lines = []
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append("(%s): %s" % (name, child))
        head = "%s(%s" % (type(self).__name__, self.extra_repr())
        if not lines:
            return head + ")"
        count = Module.num_parameters(self)
        return head + "\n  " + "\n  ".join(lines) + "\n)  # %s parameters" % format(count, ",")


@contextlib.contextmanager
def evaluating(model):
    """``with evaluating(model):`` runs the block in eval mode (no dropout) without recording
    gradients, then gives the model back its previous mode."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield model
    finally:
        model.train(was_training)
