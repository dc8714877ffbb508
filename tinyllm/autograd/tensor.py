"""``Tensor``: a NumPy array that remembers how it was computed.

A tensor holds

- ``data``: the NumPy array with the values;
- ``requires_grad``: whether gradients should flow to it;
- ``grad``: dL/d(tensor), a NumPy array of the same shape, filled in by ``backward()``
  (None until a backward pass reaches it; accumulates over several backward passes);
- ``grad_fn``: the graph node of the op that produced it (None for tensors you create: leaves).

The arithmetic methods (``+``, ``@``, ``.sum()``, ...) are thin calls into ``tinyllm.ops``,
where each op is a ``Function`` with its forward and backward written out.
"""

import numpy as np

from tinyllm.autograd import engine, grad_mode

_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype):
    """Set the dtype that float data gets when none is given (float32 at start, float64 for checks)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError("set_default_dtype: the default must be a floating dtype, got %s" % dtype)
    _default_dtype = dtype


def get_default_dtype():
    return _default_dtype


def _ops():
    """``tinyllm.ops``, imported when first needed: the ops are built on Tensor, so this
    module cannot import them while it is itself being loaded."""
    from tinyllm import ops
    return ops


def _as_array(data, dtype=None):
    """A fresh NumPy array for ``data``: floats in the default dtype, integers as int64."""
    if isinstance(data, Tensor):
        data = data.data
    try:
        array = np.array(data) if dtype is None else np.array(data, dtype=dtype)
    except ValueError as error:
        if "inhomogeneous" not in str(error):
            raise
        raise ValueError("tensor: the nested lists are ragged (rows of different lengths, "
                         "e.g. [[1, 2], [3]]); every row of a tensor must have the same "
                         "length (pad the shorter ones)") from None
    if dtype is not None:
        return array
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(_default_dtype, copy=False)
    if kind in "iu":
        return array.astype(np.int64, copy=False)
    if kind == "b":
        return array
    raise TypeError("tensor: cannot make a tensor from data of dtype %s (numbers, lists of "
                    "numbers and NumPy arrays are accepted)" % array.dtype)


class Tensor:
    """A multi-dimensional array with reverse-mode automatic differentiation.

    Make one with ``tinyllm.tensor(data, requires_grad=False, dtype=None)``. Float data takes
    the default dtype (float32, see ``set_default_dtype``) unless ``dtype`` is given; integer
    and boolean data keep their kind and can never require grad.
    """

    __array_ufunc__ = None      # ndarray + Tensor calls Tensor.__radd__ instead of NumPy's add

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._version_box = [0]
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array):
        """A tensor around ``array`` as it is (no copy, no dtype change): used for op results."""
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t.grad_fn = None
        t._output_index = 0
        t._version_box = [0]
        t.requires_grad = False
        return t

    # ----- properties -------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    @property
    def _version(self):
        """How many in-place changes the data has seen. Shared with the tensors that view the
        same memory (``detach()``, reshapes), so a change through any of them is noticed by an
        op that saved the data for its backward pass."""
        return self._version_box[0]

    @_version.setter
    def _version(self, value):
        self._version_box[0] = value

    @property
    def is_leaf(self):
        """Made by the user, not by an op that records its graph."""
        return self.grad_fn is None

    @property
    def T(self):
        """All axes reversed (the transpose of a matrix)."""
        return _ops().permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self):
        """The last two axes swapped (a batch of transposed matrices)."""
        return _ops().transpose(self, -2, -1)

    # ----- conversion -------------------------------------------------------------------
    def item(self):
        if self.data.size != 1:
            raise ValueError("item(): only a tensor with one element can be converted to a "
                             "Python number, this one has shape %s" % (self.shape,))
        return self.data.item()

    def numpy(self):
        """The underlying array (shared, not copied)."""
        return self.data

    def tolist(self):
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError("the truth value of a tensor with more than one element is "
                             "ambiguous; use .any() or .all()")
        return bool(self.data.item())

    def __hash__(self):
        return id(self)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.data.dtype != _default_dtype and self.data.dtype != np.int64 \
                and self.data.dtype != np.bool_:
            extras.append("dtype=%s" % self.data.dtype)
        if self.grad_fn is not None:
            extras.append("grad_fn=<%s>" % self.grad_fn.name())
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(%s)" % ", ".join([body] + extras)

    # ----- autograd ---------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place (leaves only) and return self."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError("only floating-point tensors can require gradients; this tensor "
                            "has dtype %s (convert it with .float() or .double())"
                            % self.data.dtype)
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) is only for leaves; use .detach() on the "
                               "result of an op")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Also fill ``.grad`` for this non-leaf tensor during backward (leaves always get one)."""
        if self.grad_fn is None:
            return self
        import weakref
        if self.grad_fn.retained is None:
            self.grad_fn.retained = {}
        self.grad_fn.retained[self._output_index] = weakref.ref(self)
        return self

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` each time backward adds a gradient into this leaf's ``.grad``
        (as PyTorch's method of this name; data-parallel training starts communicating a
        gradient as soon as it is ready). Returns the hook."""
        if self.grad_fn is not None or not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors that "
                               "require grad accumulate gradients")
        self.__dict__.setdefault("_post_accumulate_grad_hooks", []).append(hook)
        return hook

    def detach(self):
        """The same values (shared memory) cut off from the graph: no gradient flows through."""
        t = Tensor._wrap(self.data)
        t._version_box = self._version_box
        return t

    def zero_grad(self):
        """Clear the accumulated gradient (``.grad = None``)."""
        self.grad = None

    def backward(self, grad=None, retain_graph=False):
        """Compute d(self)/d(leaf) for every leaf that requires grad, adding it to ``leaf.grad``.

        ``grad`` is dL/d(self); it may be left out only when self has one element (then 1).
        Without ``retain_graph=True`` the arrays the graph saved are freed afterwards.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad and has no graph (was it made "
                "from tensors with requires_grad=False, under no_grad(), or is it an integer "
                "tensor?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    "backward(): grad can be implicitly created only for a tensor with one "
                    "element, this one has shape %s; pass grad= (dL/d of this tensor, same "
                    "shape) or reduce it first, e.g. y.sum().backward()" % (self.shape,))
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise RuntimeError("backward(): grad has shape %s but the tensor has shape %s"
                                   % (grad.shape, self.shape))
        if self.grad_fn is None:        # a leaf: its gradient is the given one
            self.grad = grad.copy() if self.grad is None else self.grad + grad
            return
        engine.backward(self.grad_fn, self._output_index, grad, retain_graph)

    # ----- in-place updates -------------------------------------------------------------
    def _check_inplace(self, opname):
        if self.requires_grad and grad_mode.is_grad_enabled():
            kind = "a leaf tensor that requires grad" if self.grad_fn is None else \
                "a tensor that is part of a graph"
            raise RuntimeError(
                "%s: in-place operation on %s. Write it out of place (x = x + y), or wrap a "
                "parameter update in `with tinyllm.no_grad():`" % (opname, kind))

    def _inplace(self, opname, ufunc, other):
        self._check_inplace(opname)
        other = other.data if isinstance(other, Tensor) else other
        ufunc(self.data, other, out=self.data, casting="same_kind")
        self._version += 1
        return self

    def __iadd__(self, other):
        return self._inplace("+=", np.add, other)

    def __isub__(self, other):
        return self._inplace("-=", np.subtract, other)

    def __imul__(self, other):
        return self._inplace("*=", np.multiply, other)

    def __itruediv__(self, other):
        return self._inplace("/=", np.true_divide, other)

    def add_(self, other, alpha=1.0):
        other = other.data if isinstance(other, Tensor) else other
        return self._inplace("add_", np.add, other if alpha == 1.0 else np.multiply(alpha, other))

    def sub_(self, other):
        return self._inplace("sub_", np.subtract, other)

    def mul_(self, other):
        return self._inplace("mul_", np.multiply, other)

    def div_(self, other):
        return self._inplace("div_", np.true_divide, other)

    def copy_(self, other):
        self._check_inplace("copy_")
        self.data[...] = other.data if isinstance(other, Tensor) else other
        self._version += 1
        return self

    def fill_(self, value):
        return self.copy_(value)

    def zero_(self):
        return self.copy_(0)

    def __setitem__(self, key, value):
        self._check_inplace("__setitem__")
        key = _ops().index_key(key)
        self.data[key] = value.data if isinstance(value, Tensor) else value
        self._version += 1

    # ----- operators and methods (see tinyllm.ops for the math) ------------------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, other):
        return _ops().pow(self, other)

    def __rpow__(self, other):
        return _ops().pow(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __getitem__(self, key):
        return _ops().getitem(self, key)

    def __lt__(self, other):
        return _ops().compare("lt", self, other)

    def __le__(self, other):
        return _ops().compare("le", self, other)

    def __gt__(self, other):
        return _ops().compare("gt", self, other)

    def __ge__(self, other):
        return _ops().compare("ge", self, other)

    def __eq__(self, other):
        return _ops().compare("eq", self, other)

    def __ne__(self, other):
        return _ops().compare("ne", self, other)

    def __invert__(self):
        return _ops().logical_not(self)

    def __and__(self, other):
        return _ops().logical_and(self, other)

    def __or__(self, other):
        return _ops().logical_or(self, other)

    def add(self, other):
        return _ops().add(self, other)

    def sub(self, other):
        return _ops().sub(self, other)

    def mul(self, other):
        return _ops().mul(self, other)

    def div(self, other):
        return _ops().div(self, other)

    def matmul(self, other):
        return _ops().matmul(self, other)

    def neg(self):
        return _ops().neg(self)

    def abs(self):
        return _ops().abs(self)

    def exp(self):
        return _ops().exp(self)

    def log(self):
        return _ops().log(self)

    def sqrt(self):
        return _ops().sqrt(self)

    def sin(self):
        return _ops().sin(self)

    def cos(self):
        return _ops().cos(self)

    def tanh(self):
        return _ops().tanh(self)

    def sigmoid(self):
        return _ops().sigmoid(self)

    def relu(self):
        return _ops().relu(self)

    def gelu(self, approximate="none"):
        return _ops().gelu(self, approximate=approximate)

    def pow(self, exponent):
        return _ops().pow(self, exponent)

    def maximum(self, other):
        return _ops().maximum(self, other)

    def minimum(self, other):
        return _ops().minimum(self, other)

    def clip(self, min=None, max=None):
        return _ops().clip(self, min, max)

    clamp = clip

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().sum(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().mean(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().max(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().min(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def var(self, axis=None, keepdims=False, *, correction=1, dim=None, keepdim=None,
            ddof=None, unbiased=None):
        return _ops().var(self, axis, keepdims, correction=correction, dim=dim,
                          keepdim=keepdim, ddof=ddof, unbiased=unbiased)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def any(self, axis=None, keepdims=False):
        return Tensor._wrap(np.any(self.data, axis=axis, keepdims=keepdims))

    def all(self, axis=None, keepdims=False):
        return Tensor._wrap(np.all(self.data, axis=axis, keepdims=keepdims))

    def softmax(self, axis=-1, *, dim=None):
        return _ops().softmax(self, axis, dim=dim)

    def log_softmax(self, axis=-1, *, dim=None):
        return _ops().log_softmax(self, axis, dim=dim)

    def logsumexp(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops().logsumexp(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def reshape(self, *shape):
        return _ops().reshape(self, *shape)

    def view(self, *shape):
        return _ops().reshape(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops().flatten(self, start_dim, end_dim)

    def transpose(self, axis0, axis1):
        return _ops().transpose(self, axis0, axis1)

    def permute(self, *axes):
        return _ops().permute(self, *axes)

    def squeeze(self, axis=None, *, dim=None):
        return _ops().squeeze(self, axis, dim=dim)

    def unsqueeze(self, axis):
        return _ops().unsqueeze(self, axis)

    def expand(self, *sizes):
        return _ops().expand(self, *sizes)

    def broadcast_to(self, shape):
        return _ops().broadcast_to(self, shape)

    def split(self, split_size_or_sections, axis=0, *, dim=None):
        return _ops().split(self, split_size_or_sections, axis, dim=dim)

    def masked_fill(self, mask, value):
        return _ops().masked_fill(self, mask, value)

    def gather(self, axis, index):
        return _ops().gather(self, axis, index)

    def tril(self, diagonal=0):
        return _ops().tril(self, diagonal)

    def triu(self, diagonal=0):
        return _ops().triu(self, diagonal)

    def to(self, dtype):
        return _ops().cast(self, dtype)

    astype = to

    def float(self):
        return _ops().cast(self, np.float32)

    def double(self):
        return _ops().cast(self, np.float64)

    def long(self):
        return _ops().cast(self, np.int64)

    def bool(self):
        return _ops().cast(self, np.bool_)

    def clone(self):
        return _ops().clone(self)


def tensor(data, requires_grad=False, dtype=None):
    """Make a leaf tensor from a number, a (nested) list, a NumPy array or another tensor.

    Float data becomes the default dtype (float32 unless changed with ``set_default_dtype``),
    NumPy float64 arrays included; pass ``dtype=`` to choose. The data is copied.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
