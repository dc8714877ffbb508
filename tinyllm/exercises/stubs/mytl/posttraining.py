"""Step posttraining (chapter 18): the targets of supervised fine-tuning on a chat template,
and the loss of direct preference optimisation (DPO).

SFT trains on prompt + answer but counts only the answer: the targets are the tokens shifted
left by one, with ``ignore_index`` wherever the next token still belongs to the prompt
(``sft_targets``).

DPO (Rafailov et al., 2023) learns from a chosen answer y_w and a rejected answer y_l to the same
prompt x. With the sequence log-probabilities (sums over the answer tokens) of the policy pi and
of a frozen reference model ref,

    z = beta * ((log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)))
    L = mean over the pairs of -log sigmoid(z)

(``dpo_loss``). The reference's log-probabilities are constants: no gradient flows into them.

You write: ``sft_targets`` and ``dpo_loss``. For the latter, either write the Function
``DPOLoss`` (forward, and a backward you derive) and return ``DPOLoss.apply(...)``, or compose
it from Tensor operations, keeping the reference out of the graph; either way -log sigmoid(z)
must stay finite for |z| of 1000.
"""

import numpy as np

from mytl.autograd import Function, Tensor


def sft_targets(prompt_ids, answer_ids, ignore_index=-100):
    """(inputs, targets) of one SFT example whose loss is masked to the answer.

    prompt_ids (m,) and answer_ids (k,) integer sequences (the answer ends with its end token);
    the sequence is x = prompt + answer, n = m + k tokens. Returns two new integer arrays of
    length n - 1:

        inputs[t]  = x[t]                                    t = 0 .. n - 2
        targets[t] = x[t + 1]        if x[t + 1] is an answer token (t + 1 >= m)
                     ignore_index    otherwise (the next token belongs to the prompt)

    Raises ValueError naming ``sft_targets`` if the prompt or the answer is empty.
    """
    raise NotImplementedError


def _shape(x):
    return x.shape if isinstance(x, Tensor) else np.shape(x)


class DPOLoss(Function):
    """L = mean_i -log sigmoid(z_i), z = beta ((pw - rw) - (pl - rl)).

    Inputs (arrays, in forward): policy_chosen pw, policy_rejected pl, reference_chosen rw,
    reference_rejected rl, each (N,); the option beta. forward returns a 0-d array; backward
    returns (dL/dpw, dL/dpl, None, None): the reference is frozen.
    """

    @staticmethod
    def forward(ctx, policy_chosen, policy_rejected, reference_chosen, reference_rejected,
                beta=0.1):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=0.1):
    """The DPO loss of N preference pairs, a 0-d Tensor.

    policy_chosen, policy_rejected: Tensors (N,) of log pi(y_w|x), log pi(y_l|x);
    reference_chosen, reference_rejected: Tensors or arrays (N,) of the frozen reference's
    log-probabilities (no gradient reaches them, even if they require grad); beta > 0.

        z_i = beta * ((policy_chosen_i - reference_chosen_i)
                      - (policy_rejected_i - reference_rejected_i))
        L   = (1 / N) sum_i -log sigmoid(z_i)           (finite for any z: log(1 + e^-z))

    Raises ValueError naming ``dpo_loss`` and the shapes if the four are not (N,) vectors of
    the same shape, and naming beta if beta <= 0.
    """
    raise NotImplementedError
