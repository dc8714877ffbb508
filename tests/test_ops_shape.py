"""Shape ops: reshape/view, flatten, transpose, permute, .T, squeeze/unsqueeze, expand/
broadcast_to, indexing, cat, stack, split, gather, tril/triu. Forward values against NumPy,
float64 gradient checks, scatter-with-accumulation for repeated indices, and the errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from conftest import FAST, broadcastable_pairs, check_grad, leaf, rng_for, seeds, shapes, uniform


# ----- reshape, view, flatten -------------------------------------------------------------
@st.composite
def shape_and_new_shape(draw):
    shape = draw(shapes())
    size = int(np.prod(shape))
    choice = draw(st.sampled_from(["flat", "reversed", "infer_first", "infer_last", "ones"]))
    new = {"flat": (size,), "reversed": tuple(reversed(shape)),
           "infer_first": (-1,) + shape[1:], "infer_last": shape[:1] + (1, -1),
           "ones": (1,) + shape + (1,)}[choice]
    return shape, new


def _resolved(new, size):
    known = int(np.prod([n for n in new if n != -1]))
    return tuple(size // known if n == -1 else n for n in new)


@FAST
@given(case=shape_and_new_shape(), seed=seeds, use_view=st.booleans())
def test_reshape_and_view_forward_and_gradcheck(case, seed, use_view):
    shape, new = case
    x = uniform(rng_for(seed), shape)
    method = "view" if use_view else "reshape"
    y = getattr(leaf(x), method)(*new)
    expected = _resolved(new, x.size)
    assert y.shape == expected
    np.testing.assert_array_equal(y.data.ravel(), x.ravel())
    assert check_grad(lambda t: getattr(t, method)(new), leaf(x))


def test_reshape_accepts_a_tuple_or_separate_sizes():
    x = leaf(np.arange(6.0))
    assert x.reshape((2, 3)).shape == x.reshape(2, 3).shape == (2, 3)
    assert tinyllm.reshape(x, 3, -1).shape == (3, 2)


def test_flatten_merges_the_given_axes():
    x = leaf(uniform(rng_for(0), (2, 3, 4, 5)))
    assert x.flatten().shape == (120,)
    assert x.flatten(1).shape == (2, 60)
    assert x.flatten(1, 2).shape == (2, 12, 5)
    np.testing.assert_array_equal(x.flatten(-3, -2).data, x.data.reshape(2, 12, 5))
    assert check_grad(lambda t: t.flatten(1, 2), x)


@pytest.mark.parametrize("new", [(4, 2), (-1, 4), (-1, -1), (2, -2)])
def test_bad_reshape_names_both_shapes(new):
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) "
                                         r"\(6 elements\) into shape"):
        tinyllm.ones(2, 3).reshape(*new)


# ----- transpose, permute, .T -------------------------------------------------------------
@st.composite
def shape_and_two_axes(draw):
    shape = draw(shapes(min_dims=1))
    n = len(shape)
    return shape, draw(st.integers(-n, n - 1)), draw(st.integers(-n, n - 1))


@FAST
@given(case=shape_and_two_axes(), seed=seeds)
def test_transpose_swaps_two_axes(case, seed):
    shape, a, b = case
    x = uniform(rng_for(seed), shape)
    y = leaf(x).transpose(a, b)
    expected = np.swapaxes(x, a, b)
    assert y.shape == expected.shape
    for index in np.ndindex(*shape):
        swapped = list(index)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        assert y.data[tuple(swapped)] == x[index]
    assert check_grad(lambda t: t.transpose(a, b), leaf(x))


@st.composite
def shape_and_permutation(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    n = len(shape)
    order = draw(st.permutations(range(n)))
    negate = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return shape, tuple(a - n if neg else a for a, neg in zip(order, negate))


@FAST
@given(case=shape_and_permutation(), seed=seeds)
def test_permute_reorders_axes(case, seed):
    shape, axes = case
    x = uniform(rng_for(seed), shape)
    y = leaf(x).permute(*axes)
    positive = [a % len(shape) for a in axes]
    assert y.shape == tuple(shape[a] for a in positive)
    for index in np.ndindex(*shape):
        assert y.data[tuple(index[a] for a in positive)] == x[index]
    assert check_grad(lambda t: tinyllm.permute(t, axes), leaf(x))


@FAST
@given(shape=shapes(), seed=seeds)
def test_T_reverses_all_axes(shape, seed):
    x = uniform(rng_for(seed), shape)
    y = leaf(x).T
    assert y.shape == tuple(reversed(shape))
    for index in np.ndindex(*shape):
        assert y.data[tuple(reversed(index))] == x[index]
    assert check_grad(lambda t: t.T, leaf(x))


def test_mT_swaps_the_last_two_axes():
    x = leaf(uniform(rng_for(0), (2, 3, 4)))
    np.testing.assert_array_equal(x.mT.data, x.transpose(1, 2).data)


@pytest.mark.parametrize("axes", [(0, 1), (0, 1, 1), (0, 1, 3), (0, 1, -4), (2, 1, 0, 3)])
def test_bad_permute_names_the_axes_and_the_shape(axes):
    with pytest.raises(ValueError, match=r"permute: \(.*\) is not an ordering of the 3 axes of "
                                         r"a tensor of shape \(2, 3, 4\)"):
        tinyllm.ones(2, 3, 4).permute(*axes)


def test_transpose_axis_out_of_range():
    with pytest.raises(IndexError, match="transpose: axis 2 is out of range for a tensor with "
                                         "2 axes"):
        tinyllm.ones(2, 3).transpose(0, 2)


# ----- squeeze, unsqueeze -----------------------------------------------------------------
@FAST
@given(shape=shapes(), seed=seeds, data=st.data())
def test_squeeze_removes_size_one_axes(shape, seed, data):
    x = uniform(rng_for(seed), shape)
    if shape and data.draw(st.booleans()):
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        expected = tuple(n for i, n in enumerate(shape)
                         if not (i == axis % len(shape) and n == 1))
    else:
        axis = None
        expected = tuple(n for n in shape if n != 1)
    y = leaf(x).squeeze(axis)
    assert y.shape == expected
    np.testing.assert_array_equal(y.data.ravel(), x.ravel())
    assert check_grad(lambda t: t.squeeze(axis), leaf(x))


def test_squeeze_keeps_an_axis_that_is_not_size_one():
    x = tinyllm.ones(2, 1, 3)
    assert x.squeeze(0).shape == (2, 1, 3)
    assert x.squeeze(dim=1).shape == (2, 3)
    assert x.squeeze((0, 1)).shape == (2, 3)


@FAST
@given(shape=shapes(), seed=seeds, data=st.data())
def test_unsqueeze_inserts_a_size_one_axis(shape, seed, data):
    x = uniform(rng_for(seed), shape)
    n = len(shape) + 1
    axis = data.draw(st.integers(-n, n - 1))
    y = leaf(x).unsqueeze(axis)
    position = axis % n
    assert y.shape == shape[:position] + (1,) + shape[position:]
    assert check_grad(lambda t: t.unsqueeze(axis), leaf(x))


def test_unsqueeze_axis_out_of_range():
    with pytest.raises(IndexError, match="unsqueeze: axis 3 is out of range for a result with "
                                         "3 axes"):
        tinyllm.ones(2, 3).unsqueeze(3)


# ----- expand, broadcast_to ---------------------------------------------------------------
@FAST
@given(pair=broadcastable_pairs(), seed=seeds, use_expand=st.booleans())
def test_expand_and_broadcast_to_sum_the_gradient_over_copies(pair, seed, use_expand):
    shape, other = pair
    target = np.broadcast_shapes(shape, other)
    x = uniform(rng_for(seed), shape)
    if use_expand:      # -1 keeps an axis's size
        offset = len(target) - len(shape)
        sizes = tuple(-1 if i >= offset and shape[i - offset] == n else n
                      for i, n in enumerate(target))
        fn = lambda t: t.expand(*sizes)  # noqa: E731
    else:
        fn = lambda t: tinyllm.broadcast_to(t, target)  # noqa: E731
    y = fn(leaf(x))
    assert y.shape == target
    for index in np.ndindex(*target):
        source = tuple(0 if n == 1 else i
                       for i, n in zip(index[len(target) - len(shape):], shape))
        assert y.data[index] == x[source]
    assert check_grad(fn, leaf(x))


def test_expanded_gradient_counts_the_copies():
    x = leaf([[1.0], [2.0]])
    x.expand(3, 2, 4).sum().backward()
    np.testing.assert_array_equal(x.grad, [[12.0], [12.0]])


def test_bad_broadcast_to_names_both_shapes():
    with pytest.raises(ValueError, match=r"broadcast_to: a tensor of shape \(2, 3\) cannot be "
                                         r"broadcast to shape \(3, 3\)"):
        tinyllm.ones(2, 3).broadcast_to((3, 3))
    with pytest.raises(ValueError, match=r"broadcast_to: a tensor of shape \(2, 3\) cannot be "
                                         r"broadcast to shape \(3,\)"):
        tinyllm.ones(2, 3).broadcast_to((3,))


def test_expand_with_too_few_sizes():
    with pytest.raises(ValueError, match="expand: 1 sizes given for a tensor with 2 axes"):
        tinyllm.ones(2, 1).expand(4)


# ----- indexing ---------------------------------------------------------------------------
KEYS = {
    "int": 1,
    "negative int": -1,
    "two ints": (1, 2),
    "slice with step": slice(None, None, 2),
    "negative step": (slice(None), slice(None, None, -2)),
    "slice, None, Ellipsis": (slice(1, None), None, Ellipsis),
    "Ellipsis then int": (Ellipsis, 0),
    "None and int": (None, 0, slice(None), None),
    "int array with repeats": np.array([0, 2, 0, 0]),
    "list with repeats": [2, 2, 1],
    "negative int array": np.array([-1, 0, -1]),
    "array on axis 1": (slice(None), np.array([3, 3, 1])),
    "two arrays": (np.array([0, 2, 2]), np.array([1, 1, 1])),
    "2-D int array": np.array([[0, 1], [1, 1]]),
    "Ellipsis then array": (Ellipsis, np.array([4, 4, 0])),
    "bool on axis 0": np.array([True, False, True]),
    "bool on all axes": (np.arange(60).reshape(3, 4, 5) % 7 == 0),
    "bool on axis 1": (slice(None), np.array([False, True, True, False])),
    "int tensor": tinyllm.tensor([2, 0, 2]),
    "bool tensor": tinyllm.tensor([False, True, True]),
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_indexing_forward_and_gradcheck(name):
    key = KEYS[name]
    data = uniform(rng_for(11), (3, 4, 5))
    numpy_key = key.data if isinstance(key, tinyllm.Tensor) else key
    y = leaf(data)[key]
    np.testing.assert_array_equal(y.data, data[numpy_key])
    assert check_grad(lambda t: t[key], leaf(data))


def test_repeated_indices_accumulate_their_gradients():
    embedding = leaf(np.zeros((4, 2)))
    rows = embedding[tinyllm.tensor([3, 1, 3, 3])]
    (rows * leaf([[1.0, 2.0]] * 4, False)).sum().backward()
    np.testing.assert_array_equal(embedding.grad, [[0, 0], [1, 2], [0, 0], [3, 6]])


def test_boolean_mask_gradient_lands_on_the_selected_elements():
    x = leaf([[1.0, -2.0], [-3.0, 4.0]])
    x[x.data > 0].sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0], [0.0, 1.0]])


@FAST
@given(shape=shapes(min_dims=1), seed=seeds, data=st.data())
def test_integer_array_indexing_gradcheck(shape, seed, data):
    n = shape[0]
    index = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5)))
    x = uniform(rng_for(seed), shape)
    np.testing.assert_array_equal(leaf(x)[index].data, np.stack([x[i] for i in index]))
    assert check_grad(lambda t: t[index], leaf(x))


def test_index_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"indexing a tensor of shape \(2, 3\): index 5 is out "
                                         r"of bounds"):
        tinyllm.ones(2, 3)[5]


# ----- cat, stack, split ------------------------------------------------------------------
@st.composite
def cat_case(draw):
    shape = draw(shapes(min_dims=1))
    n = len(shape)
    axis = draw(st.integers(-n, n - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    pieces = []
    for size in sizes:
        piece = list(shape)
        piece[axis] = size
        pieces.append(tuple(piece))
    return pieces, axis


@FAST
@given(case=cat_case(), seed=seeds, use_dim=st.booleans())
def test_cat_forward_and_gradcheck(case, seed, use_dim):
    pieces, axis = case
    rng = rng_for(seed)
    arrays = [uniform(rng, s) for s in pieces]
    fn = (lambda *t: tinyllm.cat(t, dim=axis)) if use_dim else (lambda *t: tinyllm.cat(t, axis))
    y = fn(*[leaf(a) for a in arrays])
    start = 0
    for a in arrays:
        length = a.shape[axis]
        taken = np.take(y.data, np.arange(start, start + length), axis=axis)
        np.testing.assert_array_equal(taken, a)
        start += length
    assert y.shape[axis] == start
    assert check_grad(fn, *[leaf(a) for a in arrays])


@FAST
@given(shape=shapes(), count=st.integers(1, 3), seed=seeds, data=st.data())
def test_stack_forward_and_gradcheck(shape, count, seed, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    rng = rng_for(seed)
    arrays = [uniform(rng, shape) for _ in range(count)]
    y = tinyllm.stack([leaf(a) for a in arrays], axis)
    position = axis % (len(shape) + 1)
    assert y.shape == shape[:position] + (count,) + shape[position:]
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(np.take(y.data, i, axis=position), a)
    assert check_grad(lambda *t: tinyllm.stack(t, axis=axis), *[leaf(a) for a in arrays])


def test_cat_of_a_tensor_that_needs_no_gradient():
    a, b = leaf([1.0, 2.0]), leaf([3.0], requires_grad=False)
    (tinyllm.cat([a, b]) * leaf([1.0, 2.0, 3.0], False)).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 2.0])
    assert b.grad is None


@st.composite
def split_case(draw):
    shape = draw(shapes(min_dims=1, max_side=5))
    n = len(shape)
    axis = draw(st.integers(-n, n - 1))
    length = shape[axis]
    if draw(st.booleans()):
        return shape, axis, draw(st.integers(1, length + 1))
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=2)))
    edges = [0] + cuts + [length]
    return shape, axis, [b - a for a, b in zip(edges, edges[1:])]


@FAST
@given(case=split_case(), seed=seeds, data=st.data())
def test_split_forward_and_gradcheck_using_some_outputs(case, seed, data):
    shape, axis, size_or_sections = case
    x = uniform(rng_for(seed), shape)
    pieces = leaf(x).split(size_or_sections, axis)
    length = shape[axis]
    if isinstance(size_or_sections, int):
        sizes = [min(size_or_sections, length - s) for s in range(0, length, size_or_sections)]
    else:
        sizes = size_or_sections
    assert [p.shape[axis] for p in pieces] == sizes
    np.testing.assert_array_equal(np.concatenate([p.data for p in pieces], axis=axis), x)
    used = data.draw(st.lists(st.integers(0, len(pieces) - 1), min_size=1, unique=True))
    assert check_grad(lambda t: tuple(t.split(size_or_sections, dim=axis)[i] for i in used),
                      leaf(x))


def test_split_gives_zero_gradient_to_unused_pieces():
    x = leaf(np.arange(5.0))
    first, _, last = x.split([2, 2, 1])
    (first.sum() * 2 + last.sum()).backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 0.0, 0.0, 1.0])


def test_cat_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\) and \(2, 4\) do not match "
                                         r"outside axis 0"):
        tinyllm.cat([tinyllm.ones(2, 3), tinyllm.ones(2, 4)])
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\) and \(3,\) do not match"):
        tinyllm.cat([tinyllm.ones(2, 3), tinyllm.ones(3)], axis=1)


def test_cat_needs_a_tensor():
    with pytest.raises(ValueError, match="cat: needs at least one tensor"):
        tinyllm.cat([])


def test_stack_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"stack: shapes \(2, 3\) and \(3, 2\) do not match"):
        tinyllm.stack([tinyllm.ones(2, 3), tinyllm.ones(3, 2)])


def test_split_sections_must_add_up():
    with pytest.raises(ValueError, match=r"split: sections \[2, 2\] add up to 4, but axis 1 has "
                                         r"size 5"):
        tinyllm.ones(2, 5).split([2, 2], axis=1)


def test_split_size_must_be_positive():
    with pytest.raises(ValueError, match="split: split_size must be positive, got 0"):
        tinyllm.ones(4).split(0)


# ----- gather -----------------------------------------------------------------------------
@st.composite
def gather_case(draw):
    shape = draw(shapes(min_dims=1))
    n = len(shape)
    axis = draw(st.integers(-n, n - 1))
    index_shape = tuple(draw(st.integers(1, 4)) if d == axis % n else draw(st.integers(1, s))
                        for d, s in enumerate(shape))
    length = shape[axis]
    index = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(-length, length - 1)))
    return shape, axis, index


@FAST
@given(case=gather_case(), seed=seeds)
def test_gather_forward_and_gradcheck(case, seed):
    shape, axis, index = case
    x = uniform(rng_for(seed), shape)
    y = leaf(x).gather(axis, tinyllm.tensor(index))
    assert y.shape == index.shape
    for position in np.ndindex(*index.shape):
        source = list(position)
        source[axis] = index[position]
        assert y.data[position] == x[tuple(source)]
    assert check_grad(lambda t: tinyllm.gather(t, axis, index), leaf(x))


def test_gather_accumulates_repeated_picks():
    x = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    y = x.gather(1, tinyllm.tensor([[2, 2], [0, 1]]))
    np.testing.assert_array_equal(y.data, [[3.0, 3.0], [4.0, 5.0]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]])


def test_gather_index_out_of_range():
    with pytest.raises(IndexError, match=r"gather: index values must lie in \[0, 3\) for axis 1, "
                                         r"got min 0 and max 3"):
        tinyllm.ones(2, 3).gather(1, tinyllm.tensor([[0], [3]]))


def test_gather_index_must_be_integer():
    with pytest.raises(TypeError, match="gather: index must be an integer tensor, got dtype "
                                        "float32"):
        tinyllm.ones(2, 3).gather(1, tinyllm.tensor([[0.0], [1.0]]))


def test_gather_index_shape_must_fit():
    with pytest.raises(ValueError, match=r"gather: index of shape \(3, 1\) does not fit a tensor "
                                         r"of shape \(2, 3\) along axis 1"):
        tinyllm.ones(2, 3).gather(1, tinyllm.tensor([[0], [1], [2]]))


# ----- tril, triu -------------------------------------------------------------------------
@pytest.mark.parametrize("lower", [True, False])
@FAST
@given(shape=shapes(min_dims=2, max_dims=3, max_side=4), diagonal=st.integers(-2, 2),
       seed=seeds)
def test_tril_triu_forward_and_gradcheck(lower, shape, diagonal, seed):
    x = uniform(rng_for(seed), shape)
    fn = (lambda t: t.tril(diagonal)) if lower else (lambda t: tinyllm.triu(t, diagonal))
    y = fn(leaf(x))
    for index in np.ndindex(*shape):
        i, j = index[-2:]
        keep = (j - i <= diagonal) if lower else (j - i >= diagonal)
        assert y.data[index] == (x[index] if keep else 0.0)
    assert check_grad(fn, leaf(x))


# ----- parity with PyTorch ----------------------------------------------------------------
def test_gather_indexing_and_split_match_torch():
    torch = pytest.importorskip("torch")
    rng = rng_for(9)
    data, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    index = np.array([[3, 3], [0, 2], [1, 1]])
    x = leaf(data)
    first, second = x.split([1, 3], axis=1)
    loss = (x.gather(1, tinyllm.tensor(index)) * leaf(w, False)).sum() \
        + (x[np.array([2, 2, 0])] ** 2).sum() + (second.permute(1, 0) * 3.0).sum() \
        + first.exp().sum()
    loss.backward()
    tx = torch.tensor(data, requires_grad=True)
    tfirst, tsecond = tx.split([1, 3], dim=1)
    tloss = (tx.gather(1, torch.tensor(index)) * torch.tensor(w)).sum() \
        + (tx[torch.tensor([2, 2, 0])] ** 2).sum() + (tsecond.permute(1, 0) * 3.0).sum() \
        + tfirst.exp().sum()
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-14)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-14)
