"""Step errata (chapters 2-12): find the error in the source documents.

The five documents the course grew from (Chinese articles on large language models) contain
mistakes: a formula with a wrong sign, a worked number that does not follow from its own
expression, an example whose shapes do not fit. Each exercise below quotes one of them (the
document's id and section, the original words, an English translation) and asks two things:

1. ``NAME_WHAT_IS_WRONG``: set it to the letter ("a", "b", "c" or "d") of the option that
   says what is wrong;
2. a function that computes the corrected value. The checker runs it on the document's own
   numbers and on others.

The checker does not print the values it expects: a FAIL says that your letter or your value
is not the corrected one, and you find out why. Redo the document's arithmetic by hand first.
Everything is NumPy, float64. Each exercise has a prompt in its chapter, with the answer under
a fold: try before you open it.
"""

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# ============================================================================================
# 1. bce_worked_example (chapter 2)
# 004_0648d7e44268025d.txt, §4, 应用举例 (worked example). The document states the binary
# cross-entropy  Loss = -[y log(y_hat) + (1 - y) log(1 - y_hat)]  and works two cases:
#
#   如果 y = 1，y_hat = 0.9，则：Loss = -[1 log(0.9) + (1 - 1) log(1 - 0.9)] = -[log(0.9)] ≈ -0.105
#   如果 y = 0，y_hat = 0.1，则：Loss = -[0 log(0.1) + (1 - 0) log(1 - 0.1)] = -[log(0.1)] ≈ 2.302
#
#   "If y = 1 and y_hat = 0.9, then Loss ≈ -0.105. If y = 0 and y_hat = 0.1, then Loss ≈ 2.302."
#
#   "a"  Both numbers are right: a loss may be negative when the prediction is good.
#   "b"  The document used the base-10 logarithm; with the natural logarithm both are right.
#   "c"  The first loss has the wrong sign (a cross-entropy of probabilities is never
#        negative), and the second evaluates -log 0.1 where its own expression says
#        -log(1 - 0.1).
#   "d"  The term (1 - y) log(1 - y_hat) does not belong in the loss; without it both are right.
# ============================================================================================
BCE_WORKED_EXAMPLE_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def bce_loss(y, y_hat):
    """Binary cross-entropy, elementwise: -[y log y_hat + (1 - y) log(1 - y_hat)].

    y (labels 0 or 1) and y_hat (probabilities in (0, 1)) broadcast; returns an array of
    their shape (no mean), natural logarithm. Then compare bce_loss(1, 0.9) and
    bce_loss(0, 0.1) with the document's two numbers.
    """
    raise NotImplementedError


# ============================================================================================
# 2. cross_entropy_gradient_sign (chapter 2)
# 004_0648d7e44268025d.txt, §4, 交叉熵损失函数 (the cross-entropy loss). After
# Loss = -sum_i y_i log(y_hat_i) the document says:
#
#   交叉熵损失函数的梯度可以表示为：dLoss/dtheta = sum_{i=1}^{n} (y_i - y_hat_i) x_i
#   其中，theta 表示模型参数，x_i 表示第 i 个样本的特征。
#
#   "The gradient of the cross-entropy loss can be written dLoss/dtheta = sum_i (y_i - y_hat_i)
#   x_i, where theta are the model's parameters and x_i the features of the i-th sample."
#   Its update rule (§4, 梯度下降优化) is theta = theta - alpha dLoss/dtheta.
#
# For logistic regression (y_hat_i = sigmoid(x_i . theta), binary cross-entropy summed over the
# samples), what is wrong?
#   "a"  It is the negative of the gradient: plugged into theta - alpha dLoss/dtheta it climbs
#        the loss.
#   "b"  It lacks the sigmoid's derivative y_hat_i (1 - y_hat_i) as a factor.
#   "c"  Nothing: it is the gradient, and the update descends.
#   "d"  The features should be squared: the gradient is sum_i (y_i - y_hat_i) x_i^2.
# ============================================================================================
CROSS_ENTROPY_GRADIENT_SIGN_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def cross_entropy_gradient(theta, X, y):
    """dL/dtheta for logistic regression with the summed binary cross-entropy.

    X (N, D) features, y (N,) labels 0/1, theta (D,); y_hat_i = sigmoid(X[i] . theta) and
    L = sum_i -[y_i log y_hat_i + (1 - y_i) log(1 - y_hat_i)]. Returns (D,).
    """
    raise NotImplementedError


# ============================================================================================
# 3. mse_gradient_sign (chapter 2)
# 004_0648d7e44268025d.txt, §4, 均方误差损失函数 (the mean squared error loss):
#
#   Loss = 1/2 sum_{i=1}^{n} (y_i - y_hat_i)^2
#   均方误差损失函数的梯度可以表示为：dLoss/dtheta = sum_{i=1}^{n} (y_i - y_hat_i) x_i
#
#   "The gradient of the mean squared error can be written dLoss/dtheta = sum_i (y_i - y_hat_i)
#   x_i."
#
# For a linear model y_hat_i = x_i . theta, what is wrong?
#   "a"  The 1/2 is wrong: the gradient has a factor 2 in front of the sum.
#   "b"  Nothing: this is the gradient.
#   "c"  The sum should be divided by n.
#   "d"  The sign: the gradient is sum_i (y_hat_i - y_i) x_i, and the printed one points uphill.
# ============================================================================================
MSE_GRADIENT_SIGN_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def mse_gradient(theta, X, y):
    """dL/dtheta for a linear model y_hat = X theta and L = 1/2 sum_i (y_i - y_hat_i)^2.

    X (N, D), y (N,), theta (D,). Returns (D,).
    """
    raise NotImplementedError


# ============================================================================================
# 4. attention_with_one_key (chapter 6)
# 002_87b8b228869b4543.txt, §4.3.3, the worked example of attention:
#
#   其中，Q = embed(word1) = (1, 0)，K = embed(word2) = (0, 1)，V = embed(word3) = (1, 1)。
#   attention(Q, K, V) = softmax(QK^T / sqrt(2)) V = softmax((1 x 0 + 0 x 1) / sqrt(2)) (1, 1)
#                      = (0.5, 0.5)
#   这意味着 word1 与 word2 和 word3 的相似度相等。
#
#   "where Q = embed(word1) = (1, 0), K = embed(word2) = (0, 1), V = embed(word3) = (1, 1) ...
#   = (0.5, 0.5). This means that word1 is equally similar to word2 and word3."
#
#   "a"  Nothing: the softmax of the score 0 is 1/2, so the output is (0.5, 0.5).
#   "b"  With one key the softmax of its single score is 1, whatever the score, so the output
#        is 1 x V = (1, 1); and word3 (the value) was never compared with anything.
#   "c"  The score is 0, so the output is 0 x V = (0, 0).
#   "d"  The scale should be 1/d_k = 1/2, not 1/sqrt(2); then the output is (0.5, 0.5).
# Then write attention (and attention_weights of exercise 5, which it may use) and run it on
# the example, with one query, one key and one value (each a (1, 2) array).
# ============================================================================================
ATTENTION_WITH_ONE_KEY_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def attention(q, k, v):
    """Scaled dot-product attention: softmax(q k^T / sqrt(d_k)) v.

    q (L, d_k), k (S, d_k), v (S, d_v) -> (L, d_v); the softmax runs over the S keys.
    """
    raise NotImplementedError


# ============================================================================================
# 5. attention_step_two (chapter 6)
# 000_812de7f5e8660161.txt, §4.2, derives attention in three steps. Step 2:
#
#   2. 归一化相似度：将相似度分数进行归一化，得到概率分布。
#      Attention(Q, K, V) = softmax(Score(Q, K)),   with Score(Q, K) = QK^T (step 1)
#
#   "2. Normalise the similarities: normalise the similarity scores into a probability
#   distribution."  (The same document's §4.1 writes softmax(QK^T / sqrt(d_k)) V.)
#
#   "a"  It drops both the 1/sqrt(d_k) scale and V: softmax(QK^T) is the (L, S) matrix of
#        unscaled weights, not the (L, d_v) output Attention(Q, K, V).
#   "b"  The softmax should run over the queries (each column sums to 1), not the keys.
#   "c"  Nothing: step 2 is the attention output.
#   "d"  The softmax should be a sigmoid, so that each score is normalised on its own.
# Then write attention_weights, the weights step 2 should have produced.
# ============================================================================================
ATTENTION_STEP_TWO_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def attention_weights(q, k):
    """The attention weights P = softmax(q k^T / sqrt(d_k)), each row over the S keys.

    q (L, d_k), k (S, d_k) -> (L, S); every row is positive and sums to 1.
    """
    raise NotImplementedError


# ============================================================================================
# 6. why_divide_by_sqrt_dk (chapter 6)
# 002_87b8b228869b4543.txt, §4.2.1, explains softmax(QK^T / sqrt(d_k)) V:
#
#   首先，计算查询向量 Q 与关键向量 K 的内积，得到一个矩阵 QK^T。然后，对矩阵 QK^T 进行归一化，
#   即除以 sqrt(d_k)，得到一个概率分布。最后，将概率分布与价值向量 V 相乘，得到加权求和的结果。
#
#   "First compute the inner products of Q and K, a matrix QK^T. Then normalise QK^T, that is,
#   divide it by sqrt(d_k), which gives a probability distribution. Last, multiply the
#   probability distribution by the values V to get the weighted sum."
#
#   "a"  Nothing: after the division every row of scores sums to 1.
#   "b"  It should divide by d_k, not sqrt(d_k), to get a probability distribution.
#   "c"  The division makes every score positive; the softmax then only rescales.
#   "d"  The scaled scores are arbitrary real numbers; the softmax makes the distribution. The
#        division keeps the scores' variance at 1 when the entries of q and k have variance 1,
#        so that the softmax does not saturate.
# Then write score_variance: the exact variance of a score, scaled or not.
# ============================================================================================
WHY_DIVIDE_BY_SQRT_DK_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def score_variance(d_k, scaled=True, var_q=1.0, var_k=1.0):
    """The exact variance of the score q . k (scaled=False) or q . k / sqrt(d_k) (scaled=True).

    q and k are independent random vectors of dimension d_k whose entries are independent,
    with mean 0 and variances var_q and var_k. Returns a float.
    """
    raise NotImplementedError


# ============================================================================================
# 7. mlm_condition (chapter 10)
# 001_9df7eba1388ab402.txt, §4.3, the example of masked language modelling (MLM):
#
#   例如，考虑输入序列"the cat sat on the"，其中"cat"被mask。MLM任务的目标是预测"cat"的概率分布，
#   即 P(cat | the sat on the)。
#
#   "For example, take the input sequence 'the cat sat on the', where 'cat' is masked. The MLM
#   task is to predict the probability distribution of 'cat', that is P(cat | the sat on the)."
#
#   "a"  MLM predicts the next word, so the condition is only what comes before: P(cat | the).
#   "b"  The condition must contain "cat" itself: P(cat | the cat sat on the).
#   "c"  The masked word is deleted from the condition. The model's input keeps a [MASK] token
#        in its place, and the prediction is read at that position:
#        P(x_2 = cat | the [MASK] sat on the).
#   "d"  Nothing: the masked word is removed from the input before the model reads it.
# Then write mlm_corrupt, which builds the model's input and its targets.
# ============================================================================================
MLM_CONDITION_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def mlm_corrupt(ids, positions, mask_id, ignore_index=-100):
    """The input and the targets of masked language modelling, every chosen token masked.

    ids (T,) integer token ids; positions: the indices to mask. Returns (input_ids, labels),
    both (T,) integer arrays: input_ids is a copy of ids with mask_id at the positions, and
    labels holds the original id at the positions and ignore_index everywhere else.
    ``ids`` is not modified.
    """
    raise NotImplementedError


# ============================================================================================
# 8. distillation_targets (chapter 10)
# 002_87b8b228869b4543.txt, §1.2, on knowledge distillation (知识蒸馏):
#
#   知识蒸馏是一种将复杂模型的知识传递到简化模型的技术。通过将大模型（教师模型）的输出作为
#   小模型（学生模型）的输入，使小模型能够学习到大模型的特征和知识。
#
#   "Knowledge distillation passes the knowledge of a complex model to a simpler one, by using
#   the output of the large model (the teacher) as the input of the small model (the student)."
#
#   "a"  Nothing: the student reads the teacher's output and refines it.
#   "b"  The student reads the same input x as the teacher; the teacher's softened outputs
#        softmax(t / T) are the targets of the student's loss. A student that read the
#        teacher's output would need the teacher at inference time and compress nothing.
#   "c"  It is the other way round: the teacher reads the student's output.
#   "d"  The student is initialised with the teacher's weights; no outputs are used.
# Then write distillation_loss.
# ============================================================================================
DISTILLATION_TARGETS_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def distillation_loss(student_logits, teacher_logits, temperature):
    """The knowledge-distillation loss (Hinton et al., 2015).

    student_logits s and teacher_logits t (N, C), temperature T > 0; p = softmax(t / T),
    q = softmax(s / T), and the loss is T^2 / N * sum_n KL(p_n || q_n)
    = T^2 / N * sum_{n,c} p_nc (log p_nc - log q_nc). Returns a float.
    """
    raise NotImplementedError


# ============================================================================================
# 9. what_adam_combines (chapter 3)
# 004_0648d7e44268025d.txt, §3, 参数优化 (optimising the parameters):
#
#   Adam优化器：结合了梯度下降和随机梯度下降的优点，通过动态调整学习率，提高了收敛速度和训练效果。
#
#   "The Adam optimizer combines the advantages of gradient descent and stochastic gradient
#   descent, and by adjusting the learning rate dynamically it converges faster and trains
#   better."
#
#   "a"  Nothing: Adam alternates full-batch steps (GD) and mini-batch steps (SGD).
#   "b"  Adam combines gradient descent with Newton's method: it divides by the second
#        derivative.
#   "c"  Adam searches for the best global learning rate at every step (a line search).
#   "d"  GD and SGD are one update rule fed full-batch or mini-batch gradients. Adam combines
#        momentum (the first moment m), a per-parameter scaling by the root mean square of
#        recent gradients (the second moment v) and bias correction of both; the learning rate
#        itself stays fixed.
# Then write adam: with lr = 0.01, how far does its first step move a parameter whose gradient
# is 1e-3, 1 or 1e3? And a GD step?
# ============================================================================================
WHAT_ADAM_COMBINES_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def adam(param, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """Run Adam (Kingma and Ba, 2015; PyTorch's torch.optim.Adam) for len(grads) steps.

    param: the starting parameter array; grads: a list of gradient arrays of its shape, the
    gradient seen at step 1, 2, ... Returns the parameter after the last step (a new array).
    """
    raise NotImplementedError


# ============================================================================================
# 10. ten_weight_example (chapter 4)
# 004_0648d7e44268025d.txt, §4, 梯度下降优化 (gradient descent), the worked example:
#
#   假设我们有一个简单的神经网络，包含一个输入层、一个隐藏层和一个输出层。输入层有一个神经元，
#   隐藏层有两个神经元，输出层有一个神经元。输入特征为 x = [1, 2, 3, 4]，实际标签为
#   y = [0, 1, 0, 1]。假设模型的初始权重为 theta_0 = [0.1, 0.2, ..., 0.9, 1.0]。
#   ... 假设模型预测的概率为 y_hat_1 = 0.6 ...
#   dLoss/dtheta_0 = (0 - 0.6) 1 + (0 - 0.6) 2 + (0 - 0.6) 3 + (0 - 0.6) 4 = -2.4
#   ... (eleven gradients, dLoss/dtheta_0 to dLoss/dtheta_10) ...
#   theta_10 = 1.1 - 0.1 x 2.4
#
#   "A simple network with an input layer, a hidden layer and an output layer: one input
#   neuron, two hidden neurons, one output neuron. Input features x = [1, 2, 3, 4], labels
#   y = [0, 1, 0, 1], initial weights [0.1, ..., 1.0]. Suppose the predicted probability is
#   0.6 ..." followed by the gradients and the update with alpha = 0.1.
#
#   "a"  The printed gradients are not its own sums ((0 - 0.6)(1 + 2 + 3 + 4) = -6.0, not
#        -2.4); ten weights are initialised but eleven are updated (theta_10 starts from 1.1,
#        never given); y_hat = 0.6 is assumed, not computed from the weights; "one input
#        neuron" contradicts four features; and the formula's sign is wrong.
#   "b"  Only the learning rate: alpha = 0.1 is too large for this network.
#   "c"  Nothing: the example is consistent.
#   "d"  Only the loss: the example should use the mean squared error.
# Then redo it on a network that has exactly ten weights and reads the four features:
# 4 -> 2 -> 1 without biases, W1 (2, 4) = the first eight weights row by row, W2 (1, 2) = the
# last two, tanh hidden units, a sigmoid output, binary cross-entropy, x = (1, 2, 3, 4), y = 0.
# ============================================================================================
TEN_WEIGHT_EXAMPLE_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def ten_weight_network(W1, W2, x, y):
    """Loss and gradients of the 4 -> 2 -> 1 network with ten weights and no biases.

    W1 (2, 4), W2 (1, 2), x (4,), y (0 or 1): h = tanh(W1 x), y_hat = sigmoid(W2 h) (one
    number), L = -[y log y_hat + (1 - y) log(1 - y_hat)]. Returns (L, dL/dW1 (2, 4),
    dL/dW2 (1, 2)).
    """
    raise NotImplementedError


# ============================================================================================
# 11. mlp_example_shapes (chapter 4)
# 002_87b8b228869b4543.txt, §4.3.3, the multilayer network of the worked example
# (word1 = (1, 0), word3 = (1, 1)):
#
#   例如，将 word1 与 word3 进行拼接，得到输入向量 x = (word1, word3) = (1, 0) + (1, 1) = (2, 1)。
#   假设第一层的权重为 weight_1 = (1, 1)，偏置为 bias_1 = (0, 0)，第二层的权重为
#   weight_2 = (1, 0)，偏置为 bias_2 = (0, 1)。
#   hidden layer 1 = activation((1, 1) . (2, 1) + (0, 0)) = activation((2, 1)) = (1, 0)
#   output layer   = activation((1, 0) . (1, 0) + (0, 1)) = activation((1, 1)) = (1, 1)
#
#   "For example, concatenate (拼接) word1 and word3 to get the input x = (word1, word3) =
#   (1, 0) + (1, 1) = (2, 1). Suppose the first layer's weight is (1, 1) and its bias (0, 0),
#   the second layer's weight (1, 0) and its bias (0, 1)." (Section 4.3.2 asks for n = 2
#   units per layer.)
#
#   "a"  Nothing: the computation is right line by line.
#   "b"  Only the activation: it must be a softmax, which maps (2, 1) to (1, 0).
#   "c"  Concatenation gives (1, 0, 1, 1), not the sum (2, 1); (1, 1) . (2, 1) = 3 is a number,
#        and two hidden units need a 2 x 4 weight matrix; no common activation maps (2, 1) to
#        (1, 0); and (1, 0) . (1, 0) + (0, 1) = (1, 2), not (1, 1).
#   "d"  Only the biases: they must be added after the activation.
# Then write mlp_example, the shape-correct computation. (Chapter 4 redoes it with
# W1 = [[1, 1, 0, 0], [0, 0, 1, 1]], b1 = (0, 0), W2 = the identity, b2 = (0, 1) and tanh.)
# ============================================================================================
MLP_EXAMPLE_SHAPES_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def mlp_example(word_a, word_b, W1, b1, W2, b2):
    """The two-layer network of the example, on the concatenation of two word vectors.

    word_a (d_a,), word_b (d_b,); x = the concatenation (d_a + d_b,); W1 (n, d_a + d_b),
    b1 (n,), W2 (m, n), b2 (m,). Returns tanh(W2 tanh(W1 x + b1) + b2), shape (m,).
    """
    raise NotImplementedError


# ============================================================================================
# 12. t5_is_not_causal (chapter 8)
# 003_17cc72e02b4b1641.txt, §5.2, 源代码详细实现 (the source code):
#
#   from transformers import AutoTokenizer, AutoModelForCausalLM, Trainer, TrainingArguments
#   tokenizer = AutoTokenizer.from_pretrained("t5-base")
#   model = AutoModelForCausalLM.from_pretrained("t5-base")
#
#   "a"  t5-base is too large to fine-tune; a smaller checkpoint is needed.
#   "b"  T5 is an encoder-decoder (12 encoder and 12 decoder blocks, each decoder block with
#        cross-attention to the encoder); a causal language model is decoder-only, and the
#        library refuses the combination. T5 is loaded with AutoModelForSeq2SeqLM and trained
#        on pairs: input_ids the source, labels the target, and the decoder reads the labels
#        shifted right.
#   "c"  The model must be built with from_config, since from_pretrained cannot be fine-tuned.
#   "d"  The tokenizer of t5-base cannot be loaded with AutoTokenizer.
# Then write shift_right, the decoder's input that an encoder-decoder makes from its labels.
# ============================================================================================
T5_IS_NOT_CAUSAL_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def shift_right(labels, decoder_start_token_id, pad_token_id, ignore_index=-100):
    """The decoder's input of an encoder-decoder, made from the target labels.

    labels (B, T) integer ids, with ignore_index at positions that are not scored. Returns
    (B, T): each row starts with decoder_start_token_id, followed by the labels shifted one
    position to the right (the last label is dropped); ignore_index becomes pad_token_id.
    """
    raise NotImplementedError


# ============================================================================================
# 13. gpt2_without_lm_head (chapter 9)
# 002_87b8b228869b4543.txt, §5.2 and §5.4, greedy generation with GPT-2:
#
#   model = GPT2Model.from_pretrained(model_name)
#   ...  inputs = encode_text([input_text])[0]     # padding="max_length", max_length = 128
#   outputs = model(**inputs)
#   logits = outputs.logits
#   next_token = logits.argmax(-1).squeeze(-1).item()
#
#   The printed output is '。' ten times, and the document concludes:
#   从这个输出结果可以看出，模型生成了包含重复文本的句子，这表明模型在生成文本时具有一定的泛化能力。
#   "The output shows that the model generated sentences with repeated text, which shows that
#   the model has some ability to generalise when it generates text."
#
#   "a"  Nothing is wrong with the code; greedy decoding repeats, which shows generalisation.
#   "b"  The tokenizer cannot encode Chinese, so every id decodes to '。'.
#   "c"  Greedy decoding needs temperature 1; at temperature 0 it repeats.
#   "d"  GPT2Model is the Transformer without the language-model head: its output is the final
#        hidden states (1, 128, 768), with no logits. The next-token logits are the hidden
#        state times the (tied) token embedding, h W_te^T (50257 of them), read at the last
#        real position, not over all 128 padded ones. Repetition is greedy decoding's known
#        failure, not generalisation.
# Then write greedy_next_token.
# ============================================================================================
GPT2_WITHOUT_LM_HEAD_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def greedy_next_token(hidden_states, wte, length):
    """The greedy next token of a padded sequence, from the final hidden states.

    hidden_states (T, D): the last layer's output at the T positions (after the final layer
    norm); wte (V, D): the token embedding, tied to the output projection; length: the number
    of real tokens (positions length .. T - 1 are padding). Returns the token id (an int).
    """
    raise NotImplementedError


# ============================================================================================
# 14. sigmoid_output_argmax (chapter 12)
# 004_0648d7e44268025d.txt, §5.4, the prediction API of the sentiment classifier, whose last
# layer is Dense(units=1, activation='sigmoid') (§5.2):
#
#   predictions = model.predict(padded_text)
#   result = predictions.argmax(axis=1).flatten().tolist()
#   ...  API返回预测结果：{"result": [1]}     ("the API returns the prediction {"result": [1]}")
#
#   "a"  Nothing: argmax over axis 1 picks the more likely class.
#   "b"  predictions has shape (1, 1), one probability p of class 1; an argmax over an axis of
#        length 1 is 0 for every p, so {"result": [1]} cannot occur. Threshold p at 0.5 (or
#        return p).
#   "c"  The argmax should run over axis 0, the examples.
#   "d"  The sigmoid output is a logit; a softmax must be applied before the argmax.
# Then write predict_labels.
# ============================================================================================
SIGMOID_OUTPUT_ARGMAX_WHAT_IS_WRONG = None     # one of "a", "b", "c", "d"


def predict_labels(probabilities, threshold=0.5):
    """The class labels of a one-unit sigmoid classifier.

    probabilities (N, 1): P(class 1) per example, as model.predict returns them. Returns (N,)
    integers, 1 where the probability is above the threshold, else 0.
    """
    raise NotImplementedError
