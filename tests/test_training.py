"""The training loop (tinyllm.training.trainer): it learns, gradient accumulation equals one big
batch, the learning-rate schedule is nanoGPT's, a killed run resumes to the very same losses,
and a NaN stops training while keeping the last good checkpoint."""

import math

import numpy as np
import pytest

from tinyllm.optim.lr_scheduler import warmup_cosine_lr
from tinyllm.training.tasks import checkpoint_model_type
from tinyllm.training import (CheckpointError, TrainConfig, Trainer, TrainingDiverged,
                              load_checkpoint, train)

CORPUS = "the quick brown fox jumps over the lazy dog. " * 40


def quiet(message):
    pass


def tiny_settings(tmp_path, **changes):
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        corpus.write_text(CORPUS)
    settings = dict(corpus=str(corpus), n_layer=1, n_head=2, n_embd=16, block_size=16,
                    batch_size=4, steps=20, eval_every=5, eval_batches=2, sample_tokens=0,
                    out=str(tmp_path / "out"))
    settings.update(changes)
    return settings


def tiny_trainer(tmp_path, resume=None, on_step=None, **changes):
    return Trainer(TrainConfig(**tiny_settings(tmp_path, **changes)), resume=resume,
                   progress=False, log=quiet, on_step=on_step)


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_training_reduces_the_loss_on_a_tiny_corpus(tmp_path, model):
    result = tiny_trainer(tmp_path, model=model, n_embd=32, batch_size=8, steps=60, lr=1e-2,
                          eval_every=30).run()
    first, last = result.history["val_loss"][0], result.history["val_loss"][-1]
    assert first == pytest.approx(math.log(result.tokenizer.vocab_size), rel=0.1)
    assert last < 0.7 * first
    assert result.history["val_step"] == [0, 30, 60]
    assert result.step == 60 and len(result.history["train_loss"]) == 60
    assert result.tokens_per_sec > 0


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    trainer = tiny_trainer(tmp_path, dropout=0.0)
    trainer.model.double()
    x, y = trainer.task.train_batch()
    big, _ = trainer.task.train_batch()
    x, y = np.concatenate([x, big]), np.concatenate([y, _])          # 8 windows
    params = list(trainer.model.parameters())

    loss_big = trainer.accumulate_gradients([(x, y)])
    grads_big = [p.grad.copy() for p in params]
    trainer.optimizer.zero_grad()
    micro = [(x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)]        # 4 micro-batches of 2
    loss_micro = trainer.accumulate_gradients(micro)
    assert loss_micro == pytest.approx(loss_big, rel=1e-12)
    for g_big, p in zip(grads_big, params):
        np.testing.assert_allclose(p.grad, g_big, rtol=1e-9, atol=1e-12)


def test_the_learning_rate_follows_warmup_and_cosine_decay(tmp_path):
    result = tiny_trainer(tmp_path, steps=12, warmup=3, lr=2e-3, min_lr=1e-4,
                          eval_every=12).run()
    expected = [warmup_cosine_lr(s, 2e-3, 3, 12, 1e-4) for s in range(12)]
    assert result.history["lr"] == pytest.approx(expected, rel=1e-12)


def test_defaults_derive_warmup_and_min_lr():
    config = TrainConfig(steps=50, lr=3e-3)
    assert config.warmup == 5 and config.min_lr == pytest.approx(3e-4)
    assert TrainConfig().warmup == 100


def test_the_optimizer_sees_clipped_gradients(tmp_path):
    trainer = tiny_trainer(tmp_path, clip=1e-3)
    norms_at_step = []
    original_step = trainer.optimizer.step

    def step_and_record():
        norms_at_step.append(math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                                           for p in trainer.model.parameters())))
        return original_step()

    trainer.optimizer.step = step_and_record
    trainer.train_step()
    assert trainer.history["grad_norm"][0] > 1e-2                 # the norm before clipping
    assert norms_at_step[0] == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_a_killed_run_resumes_to_exactly_the_same_losses(tmp_path, model):
    settings = dict(model=model, steps=20, eval_every=5, dropout=0.1)    # dropout draws too
    uninterrupted = tiny_trainer(tmp_path / "a", **settings).run()

    def kill_at_step_12(trainer):
        if trainer.step == 12:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tiny_trainer(tmp_path / "b", on_step=kill_at_step_12, **settings).run()
    assert load_checkpoint(tmp_path / "b" / "out").step == 10      # steps 11, 12 are lost
    resumed = tiny_trainer(tmp_path / "b", resume=True, **settings)
    assert resumed.step == 10
    result = resumed.run()
    assert result.history == uninterrupted.history                  # bit for bit
    assert len(result.history["train_loss"]) == 20


def test_resuming_with_a_different_model_is_refused(tmp_path):
    tiny_trainer(tmp_path, steps=5).run()
    with pytest.raises(ValueError, match="cannot resume .* with n_layer=2: it was trained "
                                         "with n_layer=1"):
        tiny_trainer(tmp_path, steps=5, n_layer=2, resume=True)
    with pytest.raises(CheckpointError, match="holds a 'gpt' model, but --model lstm"):
        tiny_trainer(tmp_path, steps=5, model="lstm", resume=True)


def test_resuming_may_extend_the_run(tmp_path):
    tiny_trainer(tmp_path, steps=5).run()
    result = tiny_trainer(tmp_path, steps=8, resume=True).run()
    assert result.step == 8 and result.history["step"] == list(range(1, 9))


def test_an_injected_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    saved = {}

    def poison_at_step_7(trainer):
        if trainer.step == 5:
            saved["bytes"] = trainer.checkpoint_path.read_bytes()
        if trainer.step == 7:
            next(trainer.model.parameters()).data[0, 0] = np.nan

    trainer = tiny_trainer(tmp_path, on_step=poison_at_step_7)
    with pytest.raises(TrainingDiverged, match=r"training stopped at step 8: the loss is nan; "
                                               r"the last good checkpoint \(step 5\) is kept"):
        trainer.run()
    assert trainer.checkpoint_path.read_bytes() == saved["bytes"]
    checkpoint = load_checkpoint(trainer.checkpoint_path)
    assert checkpoint.step == 5
    assert all(np.isfinite(v).all() for v in checkpoint.model_state.values())
    assert (tmp_path / "out" / "loss.png").exists()                # the curve so far


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_huge_learning_rate_stops_training_before_any_bad_checkpoint(tmp_path):
    # lr 1e39 overflows float32 weights to inf on the first update; the next loss is NaN
    trainer = tiny_trainer(tmp_path, lr=1e39, warmup=0, clip=0.0, eval_every=1)
    with pytest.raises(TrainingDiverged, match="training stopped at step 1: the validation "
                                               "loss after it is nan; no checkpoint had been "
                                               "written yet") as error:
        trainer.run()
    assert error.value.step == 1 and error.value.checkpoint_step is None
    assert not trainer.checkpoint_path.exists()


def test_samples_are_printed_before_and_after_and_the_plot_is_a_png(tmp_path):
    lines = []
    result = train(TrainConfig(**tiny_settings(tmp_path, steps=4, eval_every=2,
                                               sample_tokens=12)), progress=False,
                   log=lines.append)
    text = "\n".join(lines)
    assert "sample at step 0" in text and "sample at step 4" in text
    assert len(result.samples["before"]) == 13 and len(result.samples["after"]) == 13
    with open(result.plot_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_sampling_during_training_does_not_change_the_run(tmp_path):
    quiet_run = tiny_trainer(tmp_path / "a", steps=6).run()
    chatty_run = tiny_trainer(tmp_path / "b", steps=6, sample_tokens=20).run()
    assert quiet_run.history == chatty_run.history


@pytest.mark.parametrize("model, metric", [("mlm", "masked_accuracy"), ("seq2seq", "bleu"),
                                           ("classifier", "accuracy")])
def test_the_other_tasks_train_and_evaluate(tmp_path, model, metric):
    result = tiny_trainer(tmp_path, model=model, steps=4, eval_every=2).run()
    assert len(result.history["val_loss"]) == 3
    checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint.model_type == checkpoint_model_type(model)
    trainer = tiny_trainer(tmp_path, model=model, steps=4, resume=True)
    assert metric in trainer.task.evaluate(trainer.model)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"warmup must be an integer in \[0, steps\)"):
        TrainConfig(steps=10, warmup=10)
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        TrainConfig(n_embd=30)
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        TrainConfig(model="rnn")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        TrainConfig(backend="tpu")
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.from_dict({"stepz": 3})


def test_a_corpus_too_small_for_the_context_is_named(tmp_path):
    corpus = tmp_path / "small.txt"
    corpus.write_text("just a few words here")
    with pytest.raises(ValueError, match="too small for block_size=16"):
        Trainer(TrainConfig(**tiny_settings(tmp_path, corpus=str(corpus))), progress=False,
                log=quiet)
