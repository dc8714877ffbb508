"""Checks of step embedding (chapter 5): the lookup, its scatter-add gradient, the layer.

The lookup is compared with the one-hot product of document 000 §4.1 (Embedding(x) = W^T x),
computed here in NumPy; the gradient with the matrix-product rule one_hot(ids)^T G (so a
repeated id receives the sum of its upstream gradients) and with central differences.
"""

import numpy as np

from tinyllm.exercises.course import Step

STEP = Step(
    name="embedding", chapter=5, module="embedding",
    title="embeddings: the lookup and its scatter-add gradient",
    teaches="Why looking up row v of a table is the product with the one-hot vector of v, "
            "why its gradient adds the upstream gradients of every position holding v into "
            "row v (and leaves the other rows at zero), and how the table becomes a layer.",
    needs=("autograd", "elementwise", "tensor_ops", "losses", "optim", "mlp"),
    minutes=60,
    hints=(
        "Forward is one line of NumPy fancy indexing: weight[ids] has shape ids.shape + (D,). "
        "Check the range of the ids before indexing: NumPy reads weight[-1] as the last row "
        "without complaint.",
        "Backward: write the lookup as Y = X W with X = one_hot(ids). The matrix-product rule "
        "gives dW = X^T G. What is row v of X^T G? Which rows are zero?",
        "Building X^T G costs B T V D multiply-adds. Instead start from zeros of W's shape "
        "and add each G[t] into row ids[t]. Careful: dW[ids] = G, and even dW[ids] += G, keep "
        "only one of the writes when an id repeats.",
        "np.add.at(grad_weight, ids, grad) adds every grad[..., :] into grad_weight[ids[...]], "
        "repeats included; backward returns (grad_weight, None): no gradient for the ids.",
    ))


def _rng(seed):
    return np.random.default_rng(seed)


REPEATED_IDS = np.array([[1, 3, 1], [1, 0, 5]])      # id 1 three times; ids 2 and 4 never


def _one_hot(ids, V):
    """(..., V) one-hot rows: X[..., v] = 1 where ids == v."""
    return (np.asarray(ids)[..., None] == np.arange(V)).astype(np.float64)


@STEP.check("lookup_equals_the_one_hot_product")
def lookup_one_hot(c):
    """EmbeddingFunction.apply(W, ids) = one_hot(ids) W; for one id v, W^T e_v (document 000)."""
    apply = c.get("EmbeddingFunction").apply
    W = _rng(0).standard_normal((6, 4))
    for ids in (np.array([4, 0, 2]), REPEATED_IDS):
        y = apply(c.tensor(W), ids)
        c.shape("the lookup of ids of shape %s" % (ids.shape,), y, ids.shape + (4,),
                dtype=np.float64)
        c.expect("the lookup of ids %s" % ids.tolist(), y,
                 reference=lambda ids=ids: _one_hot(ids, 6) @ W)
    c.known("Embedding(e_2) = W^T e_2 (one token, the document's column vector)",
            apply(c.tensor(W), np.array(2)), W.T @ _one_hot(2, 6))


@STEP.check("backward_adds_the_gradients_of_repeated_ids")
def backward_scatter_add(c):
    """dL/dW = one_hot(ids)^T G: row 1 (three uses) sums three rows of G; rows 2, 4 are 0."""
    apply = c.get("EmbeddingFunction").apply
    W = _rng(1).standard_normal((6, 3))
    (grad,), (G,) = c.backward(lambda w: apply(w, REPEATED_IDS), [W])
    c.true(grad is not None, "no gradient reached the weight (.grad is None)")
    X = _one_hot(REPEATED_IDS, 6).reshape(-1, 6)
    c.known("dL/dW for ids %s" % REPEATED_IDS.tolist(), grad, X.T @ G.reshape(-1, 3))
    c.known("dL/dW of id 1, used three times: G[0, 0] + G[0, 2] + G[1, 0]", c.array(grad)[1],
            G[0, 0] + G[0, 2] + G[1, 0])
    c.true(np.all(c.array(grad)[[2, 4]] == 0.0),
           "the rows of ids 2 and 4, which never occur, must get a gradient of exactly 0")


@STEP.check("gradcheck_weight")
def gradcheck_weight(c):
    """dL/dW against central differences, ids (2, 3) with repeats."""
    apply = c.get("EmbeddingFunction").apply
    c.gradcheck(lambda w: apply(w, REPEATED_IDS), [_rng(2).standard_normal((6, 3))], ["dW"])


@STEP.check("embedding_weight_is_standard_normal")
def embedding_init(c):
    """Embedding(V, D).weight is rng.standard_normal((V, D)), requires grad, the only
    parameter."""
    Embedding = c.get("Embedding")
    layer = Embedding(6, 4, rng=_rng(3))
    c.expect("Embedding(6, 4, rng=default_rng(3)).weight", layer.weight,
             reference=lambda: _rng(3).standard_normal((6, 4)))
    c.true(layer.weight.requires_grad, "the weight must be a Tensor with requires_grad=True")
    c.true(len(layer.parameters()) == 1 and layer.parameters()[0] is layer.weight,
           "the weight should be the layer's only parameter")
    w = c.array(Embedding(500, 40, rng=_rng(4)).weight)
    c.shape("Embedding(500, 40).weight", w, (500, 40), dtype=np.float64)
    c.true(abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02,
           "N(0, 1) entries have mean 0 and standard deviation 1; Embedding(500, 40).weight "
           "has %.3g and %.3g" % (w.mean(), w.std()))


@STEP.check("embedding_layer_looks_up_and_trains")
def embedding_layer(c):
    """Embedding(6, 4)(ids) for ids as an array, a list and an integer Tensor; the gradient
    reaches the weight."""
    Embedding = c.get("Embedding")
    layer = Embedding(6, 4, rng=_rng(5))
    W = c.array(layer.weight).copy()
    for label, ids in (("an array", REPEATED_IDS), ("a list", REPEATED_IDS.tolist()),
                       ("an integer Tensor", c.tensor(REPEATED_IDS))):
        c.known("Embedding(6, 4)(ids given as %s)" % label, layer(ids), W[REPEATED_IDS])
    G = _rng(6).standard_normal((2, 3, 4))
    layer(REPEATED_IDS).backward(G)
    c.true(layer.weight.grad is not None, "after backward the layer's weight has no .grad: "
           "forward must apply EmbeddingFunction to the weight Tensor itself")
    c.known("Embedding's weight.grad", layer.weight.grad,
            _one_hot(REPEATED_IDS, 6).reshape(-1, 6).T @ G.reshape(-1, 4))


@STEP.check("ids_out_of_range_raise_index_error")
def ids_out_of_range(c):
    """An id outside [0, V) is an IndexError "embedding: ..." naming the id and V, also for
    -1 (no wrap-around) and for V itself."""
    apply, Embedding = c.get("EmbeddingFunction").apply, c.get("Embedding")
    W = c.tensor(_rng(7).standard_normal((5, 3)))
    c.raises("EmbeddingFunction.apply(W (5, 3), [0, 7, 2])",
             lambda: apply(W, np.array([0, 7, 2])), (IndexError,), contains=("embedding", "7", "5"))
    c.raises("EmbeddingFunction.apply(W (5, 3), [[0, 1], [-1, 2]])",
             lambda: apply(W, np.array([[0, 1], [-1, 2]])), (IndexError,),
             contains=("embedding", "-1", "5"))
    c.raises("Embedding(5, 3)([5])", lambda: Embedding(5, 3, rng=_rng(0))(np.array([5])),
             (IndexError,), contains=("embedding", "5"))
