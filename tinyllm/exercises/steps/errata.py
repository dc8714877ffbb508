"""Checks of step errata (chapters 2-12): find the error in the source documents.

Each check grades one exercise twice: the letter the student chose for what is wrong (compared
with a recorded code of the right letter, so that neither the letter nor the code is in a
file the student imports), and the corrected value, computed by the student's function on the
document's own numbers and on others and compared with recorded values (cross-checked when
recording against an independent computation: complex-step derivatives, PyTorch, loops). A
failed comparison does not print the expected value: finding it is the exercise.
"""

import hashlib

import numpy as np

from tinyllm.exercises.course import Step
from tinyllm.exercises.grading import CheckFailed

STEP = Step(
    name="errata", chapter=12, module="errata",
    title="find the error: the source documents' mistakes, corrected",
    teaches="How to check a formula or a worked number: redo the arithmetic, compare a "
            "gradient with a numerical derivative, write down every shape; on fourteen "
            "mistakes of the documents the course grew from (signs, worked numbers, "
            "attention, masking, distillation, Adam, decoding).",
    minutes=180,
    hints=(
        "Redo the document's arithmetic line by line before you read the options: most of "
        "these mistakes are a number that does not follow from the line before it.",
        "Write the shape of every quantity beside it (attention, the MLP example, the ten "
        "weights): a product whose shapes do not fit cannot be right, and a result of the "
        "wrong shape is not the quantity the text names.",
        "For a gradient, compare with central differences (L(theta + h e_j) - "
        "L(theta - h e_j)) / 2h at h = 1e-6. A sign error shows at once, and one step of "
        "theta - alpha * gradient must lower the loss.",
        "Each exercise has a 'Find the error' prompt in its chapter (2, 3, 4, 6, 8, 9, 10, 12), "
        "with the answer under a fold: open it when you are done, or stuck.",
        "The corrected results: a cross-entropy of probabilities is >= 0; with a sigmoid or "
        "softmax and cross-entropy, dL/dz = y_hat - y; the softmax of a single score is 1; "
        "Var(q . k) = d_k var_q var_k, and dividing by sqrt(d_k) divides it by d_k; "
        "the MLM input keeps [MASK]; the teacher's softmax(t / T) is the student's target; "
        "logits = h @ wte.T.",
    ))

LETTERS = ("a", "b", "c", "d")


# ----- helpers ----------------------------------------------------------------------------------
def _code(name, letter):
    """A number standing for a letter, so that the recorded answer is not a readable letter."""
    digest = hashlib.sha256(("tinyllm errata %s %s" % (name, letter)).encode()).digest()
    return np.int64(int.from_bytes(digest[:6], "big"))


def _choice(c, name):
    """Grade the constant NAME_WHAT_IS_WRONG against the recorded answer."""
    constant = name.upper() + "_WHAT_IS_WRONG"
    letter = c.get(constant)
    options = ", ".join('"%s"' % x for x in LETTERS)
    if letter is None:
        raise CheckFailed("%s is None: set it to the letter of what is wrong (%s)"
                          % (constant, options))
    if not isinstance(letter, str) or letter.strip().lower() not in LETTERS:
        raise CheckFailed("%s = %r: it should be one of %s" % (constant, letter, options))
    letter = letter.strip().lower()
    try:
        c.expect(constant, _code(name, letter))
    except CheckFailed:
        if c.recording:
            raise
        raise CheckFailed('%s = "%s" is not what is wrong: redo the document\'s computation '
                          'and read the options again' % (constant, letter))


def _expect(c, label, got, reference=None, **tolerances):
    """c.expect, but a wrong value is reported without the expected one."""
    try:
        c.expect(label, got, reference=reference, **tolerances)
    except CheckFailed as error:
        message = str(error)
        if c.recording or "has shape" in message or "dtype" in message \
                or "should hold numbers" in message:
            raise
        raise CheckFailed("%s = %s is not the corrected value" % (label, _short(c.array(got))))


def _short(array, limit=100):
    text = np.array2string(np.asarray(array), precision=6, separator=", ")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _rng(seed):
    return np.random.default_rng(seed)


def _complex_step_gradient(loss, theta, h=1e-30):
    """dloss/dtheta by the complex step: Im(loss(theta + i h e_j)) / h, exact to rounding.

    ``loss`` must be written with analytic functions (exp, log, tanh, +, *, @), no abs or max.
    """
    theta = np.asarray(theta, dtype=np.float64)
    grad = np.zeros_like(theta)
    for index in np.ndindex(theta.shape):
        shifted = theta.astype(np.complex128)
        shifted[index] += 1j * h
        grad[index] = np.imag(loss(shifted)) / h
    return grad


def _summed_bce(X, y):
    def loss(theta):
        y_hat = 1.0 / (1.0 + np.exp(-(X @ theta)))
        return np.sum(-(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat)))
    return loss


def _attention_loops(q, k, v):
    """softmax(q k^T / sqrt(d)) v, one query and one key at a time."""
    L, d = q.shape
    out = np.zeros((L, v.shape[1]))
    for i in range(L):
        scores = [float(np.dot(q[i], k[j])) / np.sqrt(d) for j in range(k.shape[0])]
        top = max(scores)
        weights = [np.exp(s - top) for s in scores]
        total = sum(weights)
        for j, w in enumerate(weights):
            out[i] += (w / total) * v[j]
    return out


def _weights_loops(q, k):
    return _attention_loops(q, k, np.eye(k.shape[0]))


# The document's examples, as the chapters redo them.
DOC_X = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])     # bias feature, x
DOC_Y = np.array([0.0, 1.0, 0.0, 1.0])
DOC_THETA = np.array([0.1, 0.2])
WORDS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])                  # word1, word2, word3


# ----- 1. the worked BCE numbers ----------------------------------------------------------------
@STEP.check("bce_worked_example")
def bce_worked_example(c):
    """004 §4: what is wrong with -0.105 and 2.302, and the binary cross-entropies corrected."""
    _choice(c, "bce_worked_example")
    bce_loss = c.get("bce_loss")
    y = np.array([1.0, 0.0, 0.0, 0.0])
    y_hat = np.array([0.9, 0.1, 0.6, 0.9])
    got = bce_loss(y, y_hat)
    c.shape("bce_loss of 4 pairs", got, (4,))
    _expect(c, "bce_loss(y = (1, 0, 0, 0), y_hat = (0.9, 0.1, 0.6, 0.9))", got,
            reference=lambda: -np.log(np.where(y == 1, y_hat, 1 - y_hat)))
    rng = _rng(0)
    y2 = rng.integers(0, 2, (2, 3)).astype(np.float64)
    p2 = rng.uniform(0.05, 0.95, (2, 3))
    _expect(c, "bce_loss of 6 random pairs", bce_loss(y2, p2),
            reference=lambda: -np.log(np.where(y2 == 1, p2, 1 - p2)))


# ----- 2. the sign of the cross-entropy gradient ------------------------------------------------
@STEP.check("cross_entropy_gradient_sign")
def cross_entropy_gradient_sign(c):
    """004 §4: what is wrong with sum (y_i - y_hat_i) x_i, and the gradient corrected."""
    _choice(c, "cross_entropy_gradient_sign")
    gradient = c.get("cross_entropy_gradient")
    got = gradient(DOC_THETA.copy(), DOC_X.copy(), DOC_Y.copy())
    _expect(c, "the gradient on the document's inputs 1..4, labels 0, 1, 0, 1, theta = (0.1, "
            "0.2)", got,
            reference=lambda: _complex_step_gradient(_summed_bce(DOC_X, DOC_Y), DOC_THETA))
    loss = _summed_bce(DOC_X, DOC_Y)
    before, after = loss(DOC_THETA), loss(DOC_THETA - 0.1 * np.asarray(got, dtype=np.float64))
    c.true(after < before, "one step theta - 0.1 * gradient raises the summed loss from %.4f to "
           "%.4f: the gradient points uphill" % (before, after))
    c.note("one step: loss %.4f -> %.4f" % (before, after))
    rng = _rng(1)
    X, theta = rng.standard_normal((7, 3)), rng.standard_normal(3)
    y = rng.integers(0, 2, 7).astype(np.float64)
    _expect(c, "the gradient on 7 random samples, 3 features", gradient(theta, X, y),
            reference=lambda: _complex_step_gradient(_summed_bce(X, y), theta))


# ----- 3. the sign of the MSE gradient ----------------------------------------------------------
@STEP.check("mse_gradient_sign")
def mse_gradient_sign(c):
    """004 §4: what is wrong with the printed MSE gradient, and the gradient corrected."""
    _choice(c, "mse_gradient_sign")
    gradient = c.get("mse_gradient")
    targets = np.array([0.5, 1.0, 2.5, 3.0])

    def half_sse(X, y):
        return lambda theta: 0.5 * np.sum((y - X @ theta) ** 2)

    _expect(c, "the gradient on the inputs 1..4, targets (0.5, 1, 2.5, 3), theta = (0.1, 0.2)",
            gradient(DOC_THETA.copy(), DOC_X.copy(), targets.copy()),
            reference=lambda: _complex_step_gradient(half_sse(DOC_X, targets), DOC_THETA))
    rng = _rng(2)
    X, theta, y = rng.standard_normal((6, 3)), rng.standard_normal(3), rng.standard_normal(6)
    _expect(c, "the gradient on 6 random samples, 3 features", gradient(theta, X, y),
            reference=lambda: _complex_step_gradient(half_sse(X, y), theta))


# ----- 4. attention with one key ----------------------------------------------------------------
@STEP.check("attention_with_one_key")
def attention_with_one_key(c):
    """002 §4.3.3: what is wrong with (0.5, 0.5), and attention computed correctly."""
    _choice(c, "attention_with_one_key")
    attention = c.get("attention")
    q, k, v = WORDS[0:1], WORDS[1:2], WORDS[2:3]
    got = attention(q.copy(), k.copy(), v.copy())
    c.shape("attention of one query, one key, one value", got, (1, 2))
    _expect(c, "attention(Q = (1, 0), K = (0, 1), V = (1, 1))", got,
            reference=lambda: _attention_loops(q, k, v))
    _expect(c, "self-attention of word1, word2, word3 (Q = K = V = the three rows)",
            attention(WORDS.copy(), WORDS.copy(), WORDS.copy()),
            reference=lambda: _attention_loops(WORDS, WORDS, WORDS))
    rng = _rng(3)
    q, k, v = (rng.standard_normal((4, 8)), rng.standard_normal((6, 8)),
               rng.standard_normal((6, 3)))
    got = attention(q, k, v)
    c.shape("attention of 4 queries over 6 keys, d_v = 3", got, (4, 3))
    _expect(c, "attention of 4 random queries over 6 keys", got,
            reference=lambda: _attention_loops(q, k, v))


# ----- 5. step 2 of document 000 ----------------------------------------------------------------
@STEP.check("attention_step_two")
def attention_step_two(c):
    """000 §4.2: what is wrong with step 2, and the attention weights corrected."""
    _choice(c, "attention_step_two")
    attention_weights = c.get("attention_weights")
    rng = _rng(4)
    q, k = rng.standard_normal((4, 64)), rng.standard_normal((6, 64))
    got = attention_weights(q, k)
    c.shape("the weights of 4 queries over 6 keys", got, (4, 6))
    c.known("the row sums of the weights", np.sum(c.array(got), axis=-1), np.ones(4))
    _expect(c, "the weights of 4 random queries over 6 keys, d_k = 64", got,
            reference=lambda: _weights_loops(q, k))
    c.note("largest weight per query: %s" % _short(np.max(c.array(got), axis=-1), 60))


# ----- 6. what the division by sqrt(d_k) does ---------------------------------------------------
@STEP.check("why_divide_by_sqrt_dk")
def why_divide_by_sqrt_dk(c):
    """002 §4.2.1: what dividing by sqrt(d_k) does, and the variance of the scores."""
    _choice(c, "why_divide_by_sqrt_dk")
    score_variance = c.get("score_variance")

    def exact(d_k, scaled, var_q, var_k):
        per_coordinate = np.full(d_k, var_q * var_k)     # Var(q_i k_i) = E[q_i^2] E[k_i^2]
        return np.sum(per_coordinate) / (d_k if scaled else 1)

    cases = [(d, s, 1.0, 1.0) for d in (1, 4, 16, 64, 256, 1024) for s in (False, True)]
    cases += [(8, False, 2.0, 0.5), (8, True, 2.0, 0.5), (32, True, 3.0, 1.0),
              (32, False, 0.25, 0.25)]
    got = [float(score_variance(d, scaled=s, var_q=a, var_k=b)) for d, s, a, b in cases]
    _expect(c, "score_variance(d_k, scaled, var_q, var_k) for %d cases" % len(cases),
            np.array(got), reference=lambda: np.array([exact(*case) for case in cases]))


# ----- 7. the MLM condition ---------------------------------------------------------------------
@STEP.check("mlm_condition")
def mlm_condition(c):
    """001 §4.3: what is wrong with P(cat | the sat on the), and the masked input and labels."""
    _choice(c, "mlm_condition")
    mlm_corrupt = c.get("mlm_corrupt")
    vocabulary = {"the": 0, "cat": 1, "sat": 2, "on": 3, "[MASK]": 4}
    ids = np.array([vocabulary[w] for w in "the cat sat on the".split()])

    def by_hand(ids, positions, mask_id, ignore_index=-100):
        inputs = [mask_id if i in positions else t for i, t in enumerate(ids.tolist())]
        labels = [t if i in positions else ignore_index for i, t in enumerate(ids.tolist())]
        return np.array(inputs), np.array(labels)

    original = ids.copy()
    result = mlm_corrupt(ids, [1], vocabulary["[MASK]"])
    c.true(isinstance(result, tuple) and len(result) == 2,
           "mlm_corrupt should return a tuple (input_ids, labels)")
    c.true(np.array_equal(ids, original), "mlm_corrupt modified its argument ids")
    c.shape("input_ids of 'the cat sat on the'", result[0], (5,))
    _expect(c, "input_ids of 'the cat sat on the', 'cat' masked", result[0],
            reference=lambda: by_hand(ids, [1], 4)[0])
    _expect(c, "labels of 'the cat sat on the', 'cat' masked", result[1],
            reference=lambda: by_hand(ids, [1], 4)[1])
    rng = _rng(5)
    ids2 = rng.integers(0, 50, 12)
    inputs2, labels2 = mlm_corrupt(ids2, [0, 5, 11], 50, ignore_index=-1)
    _expect(c, "input_ids of 12 random ids, 3 masked", inputs2,
            reference=lambda: by_hand(ids2, [0, 5, 11], 50, -1)[0])
    _expect(c, "labels of 12 random ids, 3 masked, ignore_index = -1", labels2,
            reference=lambda: by_hand(ids2, [0, 5, 11], 50, -1)[1])


# ----- 8. distillation --------------------------------------------------------------------------
@STEP.check("distillation_targets")
def distillation_targets(c):
    """002 §1.2: what the teacher's output is for, and the distillation loss."""
    _choice(c, "distillation_targets")
    distillation_loss = c.get("distillation_loss")

    def by_hand(s, t, T):
        total = 0.0
        for s_row, t_row in zip(s / T, t / T):
            log_p = t_row - np.log(np.sum(np.exp(t_row)))
            log_q = s_row - np.log(np.sum(np.exp(s_row)))
            total += float(np.sum(np.exp(log_p) * (log_p - log_q)))
        return T * T * total / len(s)

    rng = _rng(6)
    s, t = rng.standard_normal((5, 4)), 3.0 * rng.standard_normal((5, 4))
    got = [float(distillation_loss(s.copy(), t.copy(), T)) for T in (1.0, 2.0, 4.0)]
    _expect(c, "distillation_loss(s, t, T) for T = 1, 2, 4", np.array(got),
            reference=lambda: np.array([by_hand(s, t, T) for T in (1.0, 2.0, 4.0)]))
    c.known("distillation_loss of a student equal to the teacher",
            float(distillation_loss(t.copy(), t.copy(), 2.0)), 0.0)


# ----- 9. Adam ----------------------------------------------------------------------------------
def _torch_adam(param, grads, lr, betas, eps):
    import torch
    p = torch.tensor(param, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return p.detach().numpy()


@STEP.check("what_adam_combines")
def what_adam_combines(c):
    """004 §3: what Adam combines, and Adam's updates."""
    _choice(c, "what_adam_combines")
    adam = c.get("adam")
    g = np.array([1e-3, 1.0, 1e3])
    got = adam(np.zeros(3), [g.copy()], lr=0.01)
    _expect(c, "the first step from 0 with lr = 0.01, gradients (1e-3, 1, 1e3)", got,
            reference=lambda: _torch_adam(np.zeros(3), [g], 0.01, (0.9, 0.999), 1e-8))
    c.note("first step %s; a GD step would be %s"
           % (_short(np.asarray(got, dtype=np.float64), 40), _short(-0.01 * g, 40)))
    rng = _rng(7)
    start = rng.standard_normal((2, 3))
    grads = [rng.standard_normal((2, 3)) * 10.0 ** rng.integers(-2, 3) for _ in range(6)]
    _expect(c, "6 steps with lr = 0.1, betas = (0.8, 0.99), eps = 1e-6",
            adam(start.copy(), [x.copy() for x in grads], lr=0.1, betas=(0.8, 0.99), eps=1e-6),
            reference=lambda: _torch_adam(start, grads, 0.1, (0.8, 0.99), 1e-6))


# ----- 10. the ten-weight example ---------------------------------------------------------------
def _ten_weight_loss(W1, W2, x, y):
    h = np.tanh(W1 @ x)
    y_hat = 1.0 / (1.0 + np.exp(-(W2 @ h)))[0]
    return -(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))


@STEP.check("ten_weight_example")
def ten_weight_example(c):
    """004 §4: what is wrong with the ten-weight example, and its loss and gradients redone."""
    _choice(c, "ten_weight_example")
    network = c.get("ten_weight_network")
    weights = np.arange(1, 11) / 10.0
    W1, W2, x = weights[:8].reshape(2, 4), weights[8:].reshape(1, 2), np.array([1., 2., 3., 4.])
    rng = _rng(8)
    cases = [("the document's weights, x = (1, 2, 3, 4), y = 0", W1, W2, x, 0.0),
             ("random weights, y = 1", rng.normal(0, 0.5, (2, 4)), rng.normal(0, 0.5, (1, 2)),
              rng.standard_normal(4), 1.0)]
    for text, W1, W2, x, y in cases:
        result = network(W1.copy(), W2.copy(), x.copy(), y)
        c.true(isinstance(result, tuple) and len(result) == 3,
               "ten_weight_network should return (loss, dW1, dW2)")
        loss, dW1, dW2 = result
        c.shape("dW1 (%s)" % text, dW1, (2, 4))
        c.shape("dW2 (%s)" % text, dW2, (1, 2))
        _expect(c, "the loss (%s)" % text, float(loss),
                reference=lambda: _ten_weight_loss(W1, W2, x, y))
        _expect(c, "dW1 (%s)" % text, dW1, reference=lambda: _complex_step_gradient(
            lambda w: _ten_weight_loss(w, W2, x, y), W1), atol=1e-12)
        _expect(c, "dW2 (%s)" % text, dW2, reference=lambda: _complex_step_gradient(
            lambda w: _ten_weight_loss(W1, w, x, y), W2))


# ----- 11. the MLP example ----------------------------------------------------------------------
@STEP.check("mlp_example_shapes")
def mlp_example_shapes(c):
    """002 §4.3.3: what is wrong with the MLP example, and the shape-correct computation."""
    _choice(c, "mlp_example_shapes")
    mlp_example = c.get("mlp_example")

    def by_hand(a, b, W1, b1, W2, b2):
        x = np.hstack([a, b])
        hidden = np.array([np.tanh(np.dot(row, x) + bias) for row, bias in zip(W1, b1)])
        return np.array([np.tanh(np.dot(row, hidden) + bias) for row, bias in zip(W2, b2)])

    args = (WORDS[0], WORDS[2], np.array([[1., 1., 0., 0.], [0., 0., 1., 1.]]), np.zeros(2),
            np.eye(2), np.array([0.0, 1.0]))
    got = mlp_example(*[a.copy() for a in args])
    c.shape("the output of the example", got, (2,))
    _expect(c, "the example redone (word1, word3; chapter 4's weights)", got,
            reference=lambda: by_hand(*args))
    rng = _rng(9)
    args2 = (rng.standard_normal(3), rng.standard_normal(2), rng.standard_normal((5, 5)),
             rng.standard_normal(5), rng.standard_normal((3, 5)), rng.standard_normal(3))
    _expect(c, "words of sizes 3 and 2, 5 hidden units, 3 outputs", mlp_example(*args2),
            reference=lambda: by_hand(*args2))


# ----- 12. T5 -----------------------------------------------------------------------------------
@STEP.check("t5_is_not_causal")
def t5_is_not_causal(c):
    """003 §5.2: what is wrong with T5 as a causal LM, and the decoder's shifted input."""
    _choice(c, "t5_is_not_causal")
    shift_right = c.get("shift_right")

    def by_hand(labels, start, pad, ignore=-100):
        rows = []
        for row in labels.tolist():
            shifted = [start] + row[:-1]
            rows.append([pad if t == ignore else t for t in shifted])
        return np.array(rows)

    labels = np.array([[37, 12, 8, 1, -100, -100], [5, 6, 7, 9, 11, 1]])
    original = labels.copy()
    got = shift_right(labels, 0, 0)
    c.true(np.array_equal(labels, original), "shift_right modified its argument labels")
    c.shape("the decoder input of 2 rows of 6 labels", got, (2, 6))
    _expect(c, "shift_right(labels, start 0, pad 0)", got,
            reference=lambda: by_hand(labels, 0, 0))
    rng = _rng(10)
    labels2 = rng.integers(3, 30, (3, 5))
    labels2[0, 3:] = -100
    labels2[2, 1:] = -100
    _expect(c, "shift_right of 3 random rows, start 2, pad 1",
            shift_right(labels2.copy(), 2, 1), reference=lambda: by_hand(labels2, 2, 1))


# ----- 13. GPT-2 without its language-model head ------------------------------------------------
@STEP.check("gpt2_without_lm_head")
def gpt2_without_lm_head(c):
    """002 §5.2: what is wrong with the argmax over GPT2Model's output, and greedy decoding."""
    _choice(c, "gpt2_without_lm_head")
    greedy_next_token = c.get("greedy_next_token")

    def by_hand(hidden, wte, length):
        h = hidden[length - 1]
        scores = [float(np.dot(h, row)) for row in wte]
        return np.int64(scores.index(max(scores)))

    rng = _rng(11)
    got, expected_by_hand = [], []
    for case in range(6):
        T, D, V = 10, 8, 50
        hidden, wte = rng.standard_normal((T, D)), rng.standard_normal((V, D))
        length = int(rng.integers(2, T))
        token = greedy_next_token(hidden.copy(), wte.copy(), length)
        c.true(np.ndim(token) == 0, "greedy_next_token should return one id, got shape %s"
               % (np.shape(token),))
        got.append(int(token))
        expected_by_hand.append(by_hand(hidden, wte, length))
    _expect(c, "the next token of 6 random padded sequences (T = 10, D = 8, V = 50)",
            np.array(got, dtype=np.int64), reference=lambda: np.array(expected_by_hand))


# ----- 14. argmax over a sigmoid output ---------------------------------------------------------
@STEP.check("sigmoid_output_argmax")
def sigmoid_output_argmax(c):
    """004 §5.4: what is wrong with argmax over one sigmoid unit, and the labels corrected."""
    _choice(c, "sigmoid_output_argmax")
    predict_labels = c.get("predict_labels")
    p = np.concatenate([[0.0, 0.0003, 0.4999, 0.5001, 0.9997, 1.0],
                        _rng(12).uniform(0, 1, 14)])[:, None]
    got = predict_labels(p.copy())
    c.shape("the labels of 20 probabilities", got, (20,))
    _expect(c, "predict_labels of 20 probabilities (N, 1)", got,
            reference=lambda: np.array([1 if value > 0.5 else 0 for value in p[:, 0]]))
    got = predict_labels(p.copy(), threshold=0.9)
    _expect(c, "predict_labels with threshold 0.9", got,
            reference=lambda: np.array([1 if value > 0.9 else 0 for value in p[:, 0]]))
