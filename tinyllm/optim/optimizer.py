"""``Optimizer``: the base class of SGD, Adam and AdamW.

An optimizer holds

- ``param_groups``: a list of dicts, each with ``"params"`` (a list of tensors) and that group's
  options (``"lr"``, ``"weight_decay"``, ...). Groups let one optimizer treat parameters
  differently, e.g. decay the weight matrices but not the biases and LayerNorm gains::

      AdamW([{"params": matrices, "weight_decay": 0.1},
             {"params": biases_and_norms, "weight_decay": 0.0}], lr=6e-4)

  An option a group does not set takes the optimizer's default (``optimizer.defaults``).
- ``state``: a dict from each parameter to its own running values (Adam's moments, SGD's
  momentum buffer), created on the first step that parameter receives a gradient.

``step()`` visits every parameter that has a gradient and calls the subclass's
``update(param, grad, state, group)``, the optimizer's rule for one parameter. Updates happen
in place on ``param.data`` under ``no_grad`` through the tensor's in-place methods, which bump
the parameter's version: a graph that saved the old values can then no longer be
back-propagated by mistake.

``state_dict()`` and ``load_state_dict()`` use PyTorch's layout, so checkpoints read the same::

    {"state": {0: {"step": 3, "exp_avg": array, ...}, 1: {...}},    # by parameter index
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, ...]}   # indices, in order
"""

import numpy as np

from tinyllm.autograd import Tensor, enable_grad, no_grad

# Learning-rate schedulers record each group's starting lr under this key.
_SCHEDULER_KEYS = ("initial_lr",)


class Optimizer:
    """Base class: subclasses give their defaults, check their options and define ``update``.

    ``params`` is an iterable of tensors (one group) or of dicts (one group each, every dict
    with a ``"params"`` entry and any options that differ from ``defaults``).
    """

    def __init__(self, params, defaults):
        if isinstance(params, (Tensor, dict)):
            raise TypeError("%s: params must be an iterable of tensors or of dicts (parameter "
                            "groups), got a single %s; pass [it] or model.parameters()"
                            % (type(self).__name__, "tensor" if isinstance(params, Tensor)
                               else "dict"))
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        groups = list(params)           # a generator such as model.parameters() is read once
        if len(groups) == 0:
            raise ValueError("%s got an empty parameter list" % type(self).__name__)
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append("Parameter Group %d" % i)
            for key in sorted(k for k in group if k != "params"):
                lines.append("    %s: %s" % (key, group[key]))
        return "\n".join(lines) + "\n)"

    # ----- parameter groups ----------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group: ``{"params": tensors, option: value, ...}``; missing options take the
        defaults. A parameter may belong to one group only, and only once."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError("%s.add_param_group: a parameter group must be a dict, got %s"
                            % (name, type(param_group).__name__))
        if "params" not in param_group:
            raise ValueError("%s.add_param_group: the group has no 'params' entry" % name)
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("%s: parameters must be in an ordered collection (a list), not a "
                            "set, whose order changes between runs" % name)
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("%s can only optimize tensors, but one of the params is a %s"
                                % (name, type(p).__name__))
            if not p.is_leaf:
                raise ValueError("%s can't optimize a non-leaf tensor (the result of an op); "
                                 "optimize the leaves it was computed from" % name)
        if len({id(p) for p in params}) != len(params):
            raise ValueError("%s: a parameter group contains the same parameter more than once"
                             % name)

        unknown = [k for k in param_group
                   if k != "params" and k not in self.defaults and k not in _SCHEDULER_KEYS]
        if unknown:
            raise ValueError("%s: unknown option(s) %s in a parameter group; the options are %s"
                             % (name, ", ".join(repr(k) for k in unknown),
                                ", ".join(self.defaults)))
        group = dict(self.defaults)
        group.update(param_group)
        group["params"] = params
        self.check_options(group)

        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("%s: some parameters appear in more than one parameter group"
                             % name)
        self.param_groups.append(group)

    def check_options(self, group):
        """Raise ValueError for an invalid option value in ``group`` (subclasses define it)."""

    # ----- the update ----------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient: set it to None (default), or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = np.zeros_like(p.grad)

    def step(self, closure=None):
        """Update every parameter that has a gradient (``.grad is None``: skipped).

        ``closure``, if given, is a function that recomputes the loss (zero_grad, forward,
        backward) and returns it; it runs first, with gradients recorded, and its loss is
        returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for g, group in enumerate(self.param_groups):
                for i, p in enumerate(group["params"]):
                    if p.grad is None:
                        continue
                    if p.grad.shape != p.shape:
                        raise RuntimeError(
                            "%s.step: parameter %d of group %d has shape %s but its .grad has "
                            "shape %s" % (type(self).__name__, i, g, p.shape, p.grad.shape))
                    grad = p.grad.astype(p.dtype, copy=False)
                    self.update(p, grad, self.state.setdefault(p, {}), group)
        return loss

    def update(self, param, grad, state, group):
        """Update ``param`` in place from its gradient ``grad`` (an array; never modified),
        its ``state`` dict (empty on its first step) and its ``group``'s options."""
        raise NotImplementedError("%s must define update()" % type(self).__name__)

    # ----- saving and loading --------------------------------------------------------------
    def _all_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """The optimizer's state in PyTorch's layout (see the module docstring); arrays are
        copies, so later steps do not change a saved state dict."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = []
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = [index[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {index[id(p)]: {k: _copy(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a state saved by ``state_dict()`` (or PyTorch's, with its tensors converted
        to NumPy arrays) into an optimizer over the same parameters, grouped the same way.

        Group options are taken from the saved groups; state arrays are copied and cast to
        their parameter's dtype.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("%s.load_state_dict: the saved state has %d parameter group(s), "
                             "this optimizer has %d" % (name, len(saved_groups),
                                                       len(self.param_groups)))
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("%s.load_state_dict: saved parameter group %d has %d "
                                 "parameter(s), this optimizer's group %d has %d"
                                 % (name, i, len(saved["params"]), i, len(group["params"])))

        by_saved_index = {}
        for saved, group in zip(saved_groups, self.param_groups):
            by_saved_index.update(zip(saved["params"], group["params"]))
        new_state = {}
        for index, saved_state in state_dict["state"].items():
            if index not in by_saved_index:
                raise ValueError("%s.load_state_dict: the saved state refers to parameter %s, "
                                 "which no saved group lists" % (name, index))
            p = by_saved_index[index]
            new_state[p] = {key: _load_value(name, index, key, value, p)
                            for key, value in saved_state.items()}

        self.state = new_state
        for saved, group in zip(saved_groups, self.param_groups):
            params = group["params"]
            group.clear()
            group.update({k: _copy(v) for k, v in saved.items() if k != "params"})
            group["params"] = params


def _copy(value):
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    return value


def _load_value(name, index, key, value, param):
    """One saved state entry for ``param``: ``step`` as an int, arrays copied in its dtype."""
    if isinstance(value, Tensor):
        value = value.data
    if key == "step":
        return int(np.asarray(value))
    if not isinstance(value, np.ndarray):
        return _copy(value)
    if value.shape != param.shape:
        raise ValueError("%s.load_state_dict: state %r of parameter %s has shape %s, but the "
                         "parameter has shape %s (a state dict for another model?)"
                         % (name, key, index, value.shape, param.shape))
    return value.astype(param.dtype) if value.dtype.kind == "f" else value.copy()
