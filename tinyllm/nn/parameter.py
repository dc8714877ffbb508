"""``Parameter``: a tensor that a ``Module`` owns and an optimizer updates."""

from tinyllm.autograd import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad and is registered by the module it is assigned to.

    ``self.weight = Parameter(tinyllm.randn(3, 4))`` in a module's ``__init__`` is all it takes
    for the weight to appear in ``module.parameters()`` and ``module.state_dict()``.
    """

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data,
                         dtype=data.dtype if isinstance(data, Tensor) else None)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
