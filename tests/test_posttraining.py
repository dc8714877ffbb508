"""Post-training (tinyllm.training.posttraining): the chat template, SFT targets masked to the
answer, sequence log-probabilities, the DPO loss (NumPy, gradcheck, PyTorch), the pydoc
question data, and short SFT and DPO runs through the API and the command line."""

import math

import numpy as np
import pytest

from tinyllm.autograd import Tensor
from tinyllm.cli import main
from tinyllm.data import CharTokenizer, load_corpus
from tinyllm.gradcheck import gradcheck
from tinyllm.training import load_checkpoint, save_checkpoint
from tinyllm.training import posttraining as P
from tinyllm.training.model_types import build_model


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.from_text(load_corpus("pydoc"))


def tiny_gpt(tokenizer, block_size=128, seed=0):
    from tinyllm import random
    random.manual_seed(seed)
    args = dict(block_size=block_size, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2,
                n_embd=16, dropout=0.0, bias=True)
    return build_model("gpt", args), args


def log_softmax_np(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def dpo_loss_np(pw, pl, rw, rl, beta):
    z = beta * ((pw - rw) - (pl - rl))
    return np.log1p(np.exp(-z))             # -log sigmoid(z), written another way


# ----- the chat template and SFT targets ----------------------------------------------------
def test_chat_text_puts_the_answer_between_the_assistant_marker_and_end():
    assert P.chat_text("Q?", "A.") == "<|user|>\nQ?\n<|assistant|>\nA.<|end|>"
    assert P.chat_text("Q?", "A.").startswith(P.chat_prompt("Q?"))


def test_sft_targets_are_ignored_on_the_prompt_and_are_the_next_tokens_on_the_answer(tokenizer):
    question, answer = 'What does "if" do?', "It chooses."
    ids, targets = P.sft_example(tokenizer, question, answer)
    full = tokenizer.encode(P.chat_text(question, answer))
    m = len(tokenizer.encode(P.chat_prompt(question)))
    assert ids.tolist() == full[:-1]
    assert (targets[:m - 1] == P.IGNORE_INDEX).all()
    assert targets[m - 1:].tolist() == full[m:]
    assert tokenizer.decode(targets[m - 1:].tolist()) == answer + P.END


def test_pad_batch_pads_inputs_with_pad_id_and_targets_with_ignore_index():
    rows = [(np.array([5, 6, 7]), np.array([-100, 7, 8])), (np.array([1]), np.array([2]))]
    inputs, targets = P.pad_batch(rows)
    assert inputs.tolist() == [[5, 6, 7], [1, P.PAD_ID, P.PAD_ID]]
    assert targets.tolist() == [[-100, 7, 8], [2, -100, -100]]


def test_sft_loss_is_the_mean_negative_log_prob_of_the_answer_tokens(tokenizer):
    model, _ = tiny_gpt(tokenizer)
    examples = [P.QAExample("a", "What does \"a\" do?", "Adds."),
                P.QAExample("b", "What does \"bb\" do?", "Binds names to objects.")]
    inputs, targets = P.sft_batch(tokenizer, examples)
    logits = P.answer_logits(model, inputs, targets).data.astype(np.float64)
    logp = log_softmax_np(logits)
    answer = targets != P.IGNORE_INDEX
    picked = np.take_along_axis(logp, np.where(answer, targets, 0)[..., None], -1)[..., 0]
    expected = -picked[answer].mean()
    assert float(P.sft_loss(model, inputs, targets).data) == pytest.approx(expected, rel=1e-5)
    sums = (picked * answer).sum(1)
    np.testing.assert_allclose(P.sequence_log_probs(model, inputs, targets).data, sums,
                               rtol=1e-5)


def test_the_prompt_positions_get_no_gradient_and_log_probs_pass_gradcheck():
    rng = np.random.default_rng(0)
    targets = np.array([[-100, -100, 3, 1], [-100, 2, 0, -100]])
    logits = Tensor(rng.standard_normal((2, 4, 5)), dtype=np.float64, requires_grad=True)
    P.log_probs_of_targets(logits, targets).sum().backward()
    assert (logits.grad[targets == P.IGNORE_INDEX] == 0).all()
    assert (np.abs(logits.grad[targets != P.IGNORE_INDEX]) > 0).all()
    gradcheck(lambda z: P.log_probs_of_targets(z, targets), (logits,), atol=1e-9, rtol=1e-6)


def test_sft_loss_of_a_batch_without_answer_tokens_is_an_error(tokenizer):
    model, _ = tiny_gpt(tokenizer)
    with pytest.raises(ValueError, match="sft_loss: the batch has no answer tokens"):
        P.sft_loss(model, np.zeros((1, 3), dtype=np.int64), np.full((1, 3), -100))


def test_token_log_probs_names_mismatched_shapes(tokenizer):
    model, _ = tiny_gpt(tokenizer)
    with pytest.raises(ValueError, match=r"input_ids \(1, 3\) and targets \(1, 4\)"):
        P.token_log_probs(model, np.zeros((1, 3), dtype=np.int64), np.zeros((1, 4)))


# ----- the DPO loss -------------------------------------------------------------------------
def random_logps(seed=0, n=5):
    rng = np.random.default_rng(seed)
    return [rng.normal(-20, 5, n) for _ in range(4)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dpo_loss_matches_numpy(reduction):
    pw, pl, rw, rl = random_logps()
    loss = P.dpo_loss(Tensor(pw, dtype=np.float64), Tensor(pl, dtype=np.float64), rw, rl,
                      beta=0.3, reduction=reduction)
    expected = dpo_loss_np(pw, pl, rw, rl, 0.3)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12)


def test_dpo_loss_is_log_2_when_the_policy_is_the_reference_and_stable_for_large_margins():
    pw, pl, _, _ = random_logps()
    loss = P.dpo_loss(Tensor(pw, dtype=np.float64), Tensor(pl, dtype=np.float64), pw, pl)
    assert float(loss.data) == pytest.approx(math.log(2), rel=1e-12)
    big = P.dpo_loss(Tensor([1e4, -1e4], dtype=np.float64), Tensor([0.0, 0.0], dtype=np.float64),
                     [0.0, 0.0], [0.0, 0.0], beta=1.0, reduction="none")
    np.testing.assert_allclose(big.data, [0.0, 1e4], rtol=1e-12)


def test_dpo_loss_gradcheck_float64():
    pw, pl, rw, rl = random_logps(1)
    policy = (Tensor(pw, dtype=np.float64, requires_grad=True),
              Tensor(pl, dtype=np.float64, requires_grad=True))
    assert gradcheck(lambda w, l: P.dpo_loss(w, l, rw, rl, beta=0.2, reduction="none"), policy,
                     atol=1e-9, rtol=1e-6)


def test_dpo_loss_gradient_is_minus_beta_sigmoid_of_minus_z():
    pw, pl, rw, rl = random_logps(2)
    w = Tensor(pw, dtype=np.float64, requires_grad=True)
    l = Tensor(pl, dtype=np.float64, requires_grad=True)
    P.dpo_loss(w, l, rw, rl, beta=0.5, reduction="sum").backward()
    z = 0.5 * ((pw - rw) - (pl - rl))
    np.testing.assert_allclose(w.grad, -0.5 / (1 + np.exp(z)), rtol=1e-12)
    np.testing.assert_allclose(l.grad, 0.5 / (1 + np.exp(z)), rtol=1e-12)


def test_dpo_loss_matches_pytorch():
    torch = pytest.importorskip("torch")
    pw, pl, rw, rl = random_logps(3)
    w = Tensor(pw, dtype=np.float64, requires_grad=True)
    l = Tensor(pl, dtype=np.float64, requires_grad=True)
    loss = P.dpo_loss(w, l, rw, rl, beta=0.1)
    loss.backward()
    tw, tl = (torch.tensor(a, requires_grad=True) for a in (pw, pl))
    logits = 0.1 * ((tw - torch.tensor(rw)) - (tl - torch.tensor(rl)))
    reference = -torch.nn.functional.logsigmoid(logits).mean()     # as in TRL's DPOTrainer
    reference.backward()
    assert float(loss.data) == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(l.grad, tl.grad.numpy(), rtol=1e-10)


def test_dpo_loss_errors_name_the_shapes_and_beta():
    a = np.zeros(3)
    with pytest.raises(ValueError, match=r"dpo_loss: .*policy chosen \(3,\), policy rejected "
                                         r"\(2,\)"):
        P.dpo_loss(Tensor(a), Tensor(np.zeros(2)), a, a)
    with pytest.raises(ValueError, match="dpo_loss: beta must be positive"):
        P.dpo_loss(Tensor(a), Tensor(a), a, a, beta=0.0)


def test_implicit_rewards_are_beta_times_the_log_ratio():
    np.testing.assert_allclose(P.implicit_rewards([-3.0, -5.0], [-4.0, -4.0], beta=0.5),
                               [0.5, -0.5])


# ----- the pydoc questions ------------------------------------------------------------------
def test_first_sentence_skips_the_title_notes_and_code():
    entry = ("The \"x\" statement\n*****************\n\nNew in version 3.5.\n\nSubtitle\n"
             "========\n\n   code ::= x\n\nThe x statement does\nsomething. Then more.\n")
    assert P.first_sentence(entry) == "The x statement does something."


def test_cut_at_word_keeps_whole_words():
    assert P.cut_at_word("one two three", 9) == "one two"
    assert P.cut_at_word("one two", 20) == "one two"


def test_pydoc_questions_have_one_line_answers_and_a_fixed_disjoint_split():
    examples = P.pydoc_qa_examples()
    assert len(examples) >= 50
    assert examples[0].question == 'What does "%s" do?' % examples[0].topic
    assert all(e.answer and "\n" not in e.answer for e in examples)
    train, held_out = P.split_examples(examples, 0.2, seed=0)
    assert len(held_out) == round(0.2 * len(examples))
    assert {e.topic for e in train} | {e.topic for e in held_out} == {e.topic for e in examples}
    assert not {e.topic for e in train} & {e.topic for e in held_out}
    assert P.split_examples(examples, 0.2, seed=0) == (train, held_out)


def test_preference_pairs_reject_another_answer_of_the_same_set():
    examples = P.pydoc_qa_examples()[:10]
    pairs = P.preference_pairs(examples, seed=0)
    answers = {e.answer for e in examples}
    for example, pair in zip(examples, pairs):
        assert pair.chosen == example.answer and pair.question == example.question
        assert pair.rejected != pair.chosen and pair.rejected in answers


def test_a_context_too_short_for_an_answer_is_an_error_naming_block_size(tokenizer):
    with pytest.raises(ValueError, match="block_size=64 leaves .* --block-size 128"):
        P.demo_examples(P.PostTrainConfig(), tokenizer, 64)


# ----- the runs -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory, tokenizer):
    """A tiny random GPT saved as a checkpoint, in place of a pre-trained one."""
    model, args = tiny_gpt(tokenizer)
    path = tmp_path_factory.mktemp("base") / "ckpt.npz"
    save_checkpoint(path, model, "gpt", args, tokenizer=tokenizer)
    return path


def quiet(message):
    pass


@pytest.mark.slow
def test_sft_then_dpo_runs_write_checkpoints_and_report_metrics(base_checkpoint, tmp_path):
    sft = P.run_sft(init_from=str(base_checkpoint), out=str(tmp_path / "sft"), steps=4,
                    batch_size=4, log=quiet)
    for metrics in (sft.before, sft.after):
        assert set(metrics) == {"exact_match", "token_accuracy", "answer_logprob", "examples"}
    assert sft.after["answer_logprob"] > sft.before["answer_logprob"]
    assert load_checkpoint(sft.checkpoint_path).extra["posttraining"]["task"] == "sft"
    dpo = P.run_dpo(init_from=str(sft.checkpoint_path), out=str(tmp_path / "dpo"), steps=4,
                    batch_size=4, lr=1e-3, log=quiet)
    assert dpo.before["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert dpo.before["preference_accuracy"] == 0.0 and dpo.before["reward_margin"] == 0.0
    assert dpo.train_metrics["dpo_loss"] < math.log(2)
    assert dpo.checkpoint_path.exists()


def test_dpo_steps_lower_the_loss_on_the_pairs_they_train_on(tokenizer):
    model, _ = tiny_gpt(tokenizer)
    reference, _ = tiny_gpt(tokenizer)
    pairs = P.preference_pairs(P.pydoc_qa_examples(max_answer_chars=30)[:4], seed=0)
    ref = P.score_pairs(reference, tokenizer, pairs)
    config = P.PostTrainConfig(task="dpo", steps=5, lr=3e-3)

    def loss_of(rows):
        w, l = P.pair_log_probs(model, tokenizer, pairs)
        return P.dpo_loss(w, l, ref[0], ref[1], beta=0.1)

    losses = P.fine_tune(model, config, loss_of, lambda: None, quiet)
    assert losses[0] == pytest.approx(math.log(2), abs=1e-5)
    assert losses[-1] < losses[0]


def test_cli_rejects_options_that_do_not_apply_to_post_training(capsys):
    assert main(["train", "--task", "sft", "--dropout", "0.1"]) == 2
    assert "--task sft does not use --dropout" in capsys.readouterr().err
    assert main(["train", "--init-from", "x.npz"]) == 2
    assert "--init-from and --beta belong to --task sft or --task dpo" in capsys.readouterr().err
    assert main(["train", "--task", "dpo", "--resume"]) == 2
    assert "--task dpo cannot --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_sft_from_a_checkpoint(base_checkpoint, tmp_path, capsys):
    assert main(["train", "--task", "sft", "--init-from", str(base_checkpoint), "--steps", "2",
                 "--batch-size", "2", "--out", str(tmp_path / "sft")]) == 0
    out = capsys.readouterr().out
    assert "held-out before SFT: exact_match" in out and "held-out after SFT:" in out
    assert (tmp_path / "sft" / "ckpt.npz").exists()


@pytest.mark.slow
def test_sft_without_init_from_pretrains_first_and_dpo_finds_the_sft_checkpoint(tmp_path):
    sizes = dict(n_layer=1, n_head=2, n_embd=16, block_size=128, pretrain_steps=2)
    sft = P.run_sft(out=str(tmp_path / "sft"), steps=2, batch_size=2, log=quiet, **sizes)
    assert (tmp_path / "sft" / "pretrained" / "ckpt.npz").exists()
    assert sft.model.config.block_size == 128 and sft.model.config.n_embd == 16
    messages = []
    dpo = P.run_dpo(out=str(tmp_path / "dpo"), steps=2, batch_size=2, log=messages.append)
    assert any(str(tmp_path / "sft" / "ckpt.npz") in m for m in messages)
    assert dpo.checkpoint_path == tmp_path / "dpo" / "ckpt.npz"
