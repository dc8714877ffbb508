"""The training loop: ``train(config)`` (the API) and the ``Trainer`` behind it.

One step of training (``Trainer.train_step``), as in nanoGPT:

    for each of grad_accum micro-batches:    loss_i = task.loss(model, batch_i)
                                             (loss_i / grad_accum).backward()   grads add up
    clip_grad_norm_(parameters, clip)        the update's length is capped
    optimizer.step(); zero_grad()            AdamW, decaying only the matrices
    scheduler.step()                         lr = warmup_cosine_lr(step, ...)

Summing (1/k) grad(loss_i) over k micro-batches of b windows gives exactly the gradient of the
mean loss over all k * b windows, so gradient accumulation trains with a k times larger batch
in the memory of one micro-batch.

Every ``eval_every`` steps (and at the last step) the loss on a fixed set of held-out batches
is measured and a checkpoint is written (atomically; see ``checkpoint.py``) with the weights,
the optimizer's moments, the config, the tokenizer, the step, the random generator's state and
the loss history. A run resumed from it draws the same batches and dropout masks as the run
that wrote it would have, so it produces the very same losses.

Under ``mpiexec -n N`` the k micro-batches of a step are shared among N ranks (k / N each) and
their gradients summed with an all-reduce: the same update as one process, up to the order of
the additions (see ``tinyllm/distributed/run.py``). Only rank 0 prints, evaluates and saves.

A loss or gradient norm that is NaN or infinite stops training at once (``TrainingDiverged``):
the step is not applied and the last checkpoint, written from finite weights, is left alone.
"""

import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyllm import distributed, random
from tinyllm.kernels import compilation
from tinyllm.kernels.backend import NO_GPU_MESSAGE, cuda_available, use_backend
from tinyllm.nn.utils import clip_grad_norm_
from tinyllm.optim import AdamW
from tinyllm.optim.lr_scheduler import WarmupCosineLR
from tinyllm.training.checkpoint import (CHECKPOINT_NAME, Checkpoint, CheckpointError,
                                         load_checkpoint, save_checkpoint)
from tinyllm.training.config import TrainConfig
from tinyllm.training.evaluation import evaluating, mean_loss
from tinyllm.training.memory import estimate_training_bytes, require_memory
from tinyllm.training.model_types import KERNEL_KINDS, build_model
from tinyllm.training.plotting import plot_losses
from tinyllm.training.tasks import checkpoint_model_type, make_task

PLOT_NAME = "loss.png"

# Settings that may change when a run is resumed; any other change would make the saved
# weights, optimizer state or data mean something else.
RESUMABLE_CHANGES = ("steps", "eval_every", "eval_batches", "sample_tokens", "backend", "out",
                     "zero", "overlap", "bucket_mb", "comm_timeout")


class TrainingDiverged(FloatingPointError):
    """The loss (or the gradient norm) became NaN or infinite; ``step`` is the step that
    failed, ``checkpoint_step`` the step of the last good checkpoint (None if none)."""

    def __init__(self, message, step, checkpoint_step):
        super().__init__(message)
        self.step, self.checkpoint_step = step, checkpoint_step


@dataclass
class TrainResult:
    """What ``train`` returns."""
    model: object
    tokenizer: object
    config: TrainConfig
    history: dict
    step: int
    train_loss: float               # mean training loss of the last (up to) 50 steps
    val_loss: float                 # the last evaluation's validation loss
    tokens_per_sec: float           # training tokens per second of training time
    checkpoint_path: Path
    plot_path: Path
    samples: dict = field(default_factory=dict)     # "before" and "after" training
    metrics: dict = field(default_factory=dict)     # the task's metrics on all held-out data


def configure_optimizer(model, config):
    """AdamW with nanoGPT's two groups: weight decay for parameters with 2 or more axes
    (weight matrices, embeddings), none for biases and LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    return AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


def format_metrics(metrics):
    """"loss 1.2345, perplexity 3.4360, ..." from a dict of metrics."""
    return ", ".join("%s %s" % (name, "%.4f" % value if isinstance(value, float) else value)
                     for name, value in metrics.items())


def empty_history():
    """The loss history: per step and per evaluation."""
    return {"step": [], "train_loss": [], "lr": [], "grad_norm": [], "val_step": [],
            "val_loss": []}


def check_resumable(config, checkpoint):
    """Raise ValueError unless ``config`` continues the run saved in ``checkpoint``."""
    if checkpoint.model_type != checkpoint_model_type(config.model):
        raise CheckpointError("checkpoint %s holds a %r model, but --model %s was asked for"
                              % (checkpoint.path, checkpoint.model_type, config.model))
    if checkpoint.optimizer_state is None or checkpoint.rng_state is None:
        raise CheckpointError("checkpoint %s holds no optimizer or random-generator state, so "
                              "its training cannot be resumed (generate and eval can still "
                              "use it)" % checkpoint.path)
    saved = checkpoint.config
    for key, value in config.to_dict().items():
        if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value:
            raise ValueError("cannot resume %s with %s=%r: it was trained with %s=%r (only %s "
                             "may change when resuming)"
                             % (checkpoint.path, key, value, key, saved[key],
                                ", ".join(RESUMABLE_CHANGES)))


@contextlib.contextmanager
def backend_context(name):
    """Run the block on kernel backend ``name`` (None: keep the current one). A backend that
    cannot run here (cuda without a GPU) is a ValueError, like any other bad setting."""
    if name is None:
        yield
        return
    if name == "cuda" and not cuda_available():
        raise ValueError("backend cuda: %s" % NO_GPU_MESSAGE)
    with use_backend(name):
        yield


class Trainer:
    """Trains the model of ``config`` (a ``TrainConfig``).

    resume: None (a new run), True (the checkpoint in ``config.out``), a checkpoint path or a
    loaded ``Checkpoint``. A new run into a folder that holds a checkpoint is an error unless
    ``overwrite`` is true. progress: show the tqdm progress bar. log: a function of one string for messages (default
    ``tqdm.write``, which keeps the bar intact). on_step: called as on_step(trainer) after
    every step, its evaluation and its checkpoint.
    """

    def __init__(self, config=None, resume=None, progress=True, log=None, on_step=None,
                 overwrite=False):
        self.config = config = config or TrainConfig()
        self.log = log or tqdm.write
        self.progress, self.on_step = progress, on_step
        self.checkpoint_path = Path(config.out) / CHECKPOINT_NAME
        self.plot_path = Path(config.out) / PLOT_NAME
        prepare_output_folder(config.out, self.log)
        checkpoint = None
        if config.zero or distributed.launched_world_size() > 1:
            distributed.check_launch(config)        # before anything is loaded or built
        if isinstance(resume, Checkpoint):
            checkpoint = resume
        elif resume:
            checkpoint = load_checkpoint(self.checkpoint_path if resume is True else resume)
        elif self.checkpoint_path.exists() and not overwrite:
            raise ValueError("%s already holds a checkpoint: pass --resume to continue it, "
                             "--overwrite to start over in its place, or --out to train into "
                             "another folder" % self.checkpoint_path)
        if checkpoint is not None:
            check_resumable(config, checkpoint)
        self.task = make_task(config, checkpoint.tokenizer if checkpoint else None)
        self.tokenizer = self.task.tokenizer
        require_memory(estimate_training_bytes(self.task.model_type, self.task.model_args(),
                                               config.batch_size, config.block_size),
                       "training this %s model" % config.model,
                       "choose a smaller --n-embd, --n-layer, --batch-size or --block-size")
        self.stop_signal = None             # SIGINT or SIGTERM, once one has arrived
        random.manual_seed(config.seed)
        self.model = build_model(self.task.model_type, self.task.model_args())
        self.optimizer = configure_optimizer(self.model, config)
        self.step = 0
        self.history = empty_history()
        self.checkpoint_step = None
        self.train_seconds = 0.0            # time spent in train_step, this session
        self.session_steps = 0
        if checkpoint is not None:
            self._restore(checkpoint)
        # Under mpiexec -n N: N data-parallel ranks (see tinyllm/distributed/run.py).
        self.parallel = None
        if distributed.launched_world_size() > 1:
            self.parallel = distributed.DataParallelRun(config, self.model, self.optimizer,
                                                        self.task)
            if not self.parallel.is_main:                   # only rank 0 prints
                self.log, self.progress = (lambda message: None), False
        self.scheduler = WarmupCosineLR(self.optimizer, config.warmup, config.steps,
                                        config.min_lr, last_epoch=self.step - 1)

    def _restore(self, checkpoint):
        try:
            self.model.load_state_dict(checkpoint.model_state)
            self.optimizer.load_state_dict(checkpoint.optimizer_state)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError("checkpoint %s does not fit this model: %s"
                                  % (checkpoint.path, str(error).replace("\n", " "))) from None
        self.step = self.checkpoint_step = checkpoint.step
        self.history = {key: list(values) for key, values in checkpoint.history.items()}
        random.set_rng_state(checkpoint.rng_state)

    # ----- one step -----------------------------------------------------------------------
    def accumulate_gradients(self, batches):
        """Forward and backward over the micro-batches, adding (1/k) grad(loss_i) into the
        parameters' .grad, k the micro-batches of all ranks; returns this rank's part of the
        mean loss. A NaN/inf loss raises TrainingDiverged."""
        k = len(batches) * (1 if self.parallel is None else self.parallel.world_size)
        total = 0.0
        for i, batch in enumerate(batches):
            loss = self.task.loss(self.model, batch)
            value = float(loss.data)
            if not math.isfinite(value) and self.parallel is None:
                self._diverged(self.step + 1, "the loss is %s" % value)
            if self.parallel is not None and i == len(batches) - 1:
                self.parallel.ddp.prepare_overlap()
            (loss / k).backward()
            total += value / k
        return total

    def train_step(self):
        """One optimizer update (see the module docstring); returns (loss, grad norm)."""
        batches = [self.task.train_batch() for _ in range(self.config.grad_accum)]
        if self.parallel is not None:               # every rank drew all; each keeps its own
            batches = self.parallel.shard(batches)
        loss = self.accumulate_gradients(batches)
        if self.parallel is not None:               # sums over the ranks
            self.parallel.ddp.reduce_gradients(average=False)
            loss = self.parallel.comm.allreduce_scalar(loss)
            if not math.isfinite(loss):
                self._diverged(self.step + 1, "the loss is %s" % loss)
        max_norm = self.config.clip if self.config.clip > 0 else math.inf
        norm = float(clip_grad_norm_(self.model.parameters(), max_norm).data)
        if not math.isfinite(norm):
            self._diverged(self.step + 1, "the gradient norm is %s" % norm)
        self.updater().step()
        self.optimizer.zero_grad()
        self.step += 1
        self.history["step"].append(self.step)
        self.history["train_loss"].append(loss)
        self.history["lr"].append(self.optimizer.param_groups[0]["lr"])
        self.history["grad_norm"].append(norm)
        self.scheduler.step()
        return loss, norm

    def _diverged(self, step, what):
        """Raise TrainingDiverged for ``step``, naming the checkpoint that is kept."""
        self.optimizer.zero_grad()
        if self.checkpoint_step is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = "the last good checkpoint (step %d) is kept in %s" % (self.checkpoint_step,
                                                                       self.checkpoint_path)
        raise TrainingDiverged("training stopped at step %d: %s; %s. Try a smaller --lr or "
                               "more --warmup." % (step, what, kept), step, self.checkpoint_step)

    # ----- evaluation and checkpoints -----------------------------------------------------
    def evaluate(self):
        """Mean loss over the task's fixed validation batches (eval mode, no gradients)."""
        with evaluating(self.model):
            return mean_loss(lambda batch: self.task.loss(self.model, batch),
                             self.task.val_batches())

    def updater(self):
        """What steps the weights: the optimizer, or under --zero 1 its ZeRO wrapper."""
        return self.optimizer if self.parallel is None else self.parallel.optimizer

    @property
    def is_main(self):
        """True in the process that evaluates, prints and writes checkpoints (rank 0)."""
        return self.parallel is None or self.parallel.is_main

    def record_evaluation(self):
        val_loss = self.evaluate()
        if not math.isfinite(val_loss):
            self._diverged(self.step, "the validation loss after it is %s" % val_loss)
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(val_loss)
        return val_loss

    def save(self):
        """Write the checkpoint (only from finite weights) and remember its step."""
        if not all(np.isfinite(p.data).all() for p in self.model.parameters()):
            self._diverged(self.step, "some weights became NaN or infinite")
        save_checkpoint(self.checkpoint_path, self.model, self.task.model_type,
                        self.task.model_args(), tokenizer=self.tokenizer,
                        optimizer=self.updater(), config=self.config.to_dict(), step=self.step,
                        rng_state=random.get_rng_state(), history=self.history)
        self.checkpoint_step = self.step

    def sample(self):
        """The task's sample text, drawn with a generator of its own (seeded by the config's
        seed), so printing samples never changes the training run."""
        generator = np.random.default_rng(self.config.seed)
        return self.task.sample(self.model, generator, self.config.sample_tokens)

    # ----- the loop -----------------------------------------------------------------------
    def run(self):
        """Train up to ``config.steps``; returns a ``TrainResult``."""
        self.log(self.describe())
        with backend_context(self.config.backend), self._compiling_kernels() as compilation:
            samples = {"before": self._print_sample()}
            if self.step == 0 and self.is_main:
                self.log("step 0: val loss %.4f" % self.record_evaluation())
            compilation.wait()              # the backward kernels, from the other processes
            try:
                with self._stopping_on_signals():
                    self._loop()
            except KeyboardInterrupt as interrupt:
                if isinstance(interrupt, TrainingInterrupted):     # between two steps
                    self._save_on_interrupt()
                self.log("interrupted at step %d; %s" % (self.step, self._resume_hint()))
                raise
            finally:                                # the curve so far, even after a failure
                if (self.history["step"] or self.history["val_step"]) and self.is_main:
                    plot_losses(self.history, self.plot_path, title=self._title())
            samples["after"] = self._print_sample()
            metrics = self.task.evaluate(self.model) if self.is_main else {}
            self.log("held-out metrics at step %d: %s" % (self.step, format_metrics(metrics)))
        result = self._result(samples, metrics)
        self.log("done: step %d, train loss %.4f, val loss %.4f, %.0f tokens/s; checkpoint %s, "
                 "loss curve %s" % (result.step, result.train_loss, result.val_loss,
                                    result.tokens_per_sec, self.checkpoint_path, self.plot_path))
        return result

    def _compiling_kernels(self):
        """Say, before a first run compiles the Numba kernels, that it does, how long it may
        take and where the result is kept; then compile them, naming each as it starts: the
        forward kernels before the first sample, the others (in other processes meanwhile)
        before the first step (``compilation.announcing_compilation``)."""
        dtype = next(iter(self.model.parameters())).dtype
        # Under MPI every rank is a process already, one per core: no more processes.
        processes = 1 if distributed.launched_world_size() > 1 else None
        return compilation.announcing_compilation(KERNEL_KINDS.get(self.task.model_type, ()),
                                                  self.log, dtype=dtype, processes=processes)

    def _print_sample(self):
        """Log the sample text at the current step and return it (None when turned off)."""
        if not self.config.sample_tokens or not self.is_main:
            return None
        text = self.sample()
        self.log("---- sample at step %d ----\n%s\n----" % (self.step, text))
        return text

    def _result(self, samples, metrics):
        history = self.history
        return TrainResult(
            model=self.model, tokenizer=self.tokenizer, config=self.config, history=history,
            step=self.step,
            train_loss=float(np.mean(history["train_loss"][-50:])) if history["train_loss"]
            else math.nan,
            val_loss=history["val_loss"][-1] if history["val_loss"] else math.nan,
            tokens_per_sec=self.tokens_per_sec(), checkpoint_path=self.checkpoint_path,
            plot_path=self.plot_path, samples=samples, metrics=metrics)

    def _loop(self):
        c = self.config
        bar = tqdm(total=c.steps, initial=self.step, disable=not self.progress, unit="step",
                   desc=c.model, dynamic_ncols=True)
        tokens_per_sec = None
        try:
            while self.step < c.steps:
                started = time.perf_counter()
                loss, _ = self.train_step()
                seconds = time.perf_counter() - started
                self.train_seconds += seconds
                self.session_steps += 1
                rate = c.tokens_per_step / seconds
                tokens_per_sec = rate if tokens_per_sec is None else \
                    0.9 * tokens_per_sec + 0.1 * rate
                bar.update(1)
                bar.set_postfix(loss="%.4f" % loss, tok_s="%.0f" % tokens_per_sec,
                                lr="%.2e" % self.history["lr"][-1])
                if self.parallel is not None and self.session_steps == 1:
                    self.parallel.report_optimizer_memory(self.log)
                checkpoint_due = self.step % c.eval_every == 0 or self.step == c.steps
                if checkpoint_due and self.parallel is not None:
                    self.parallel.prepare_checkpoint()          # ZeRO: gather the state
                if checkpoint_due and self.is_main:
                    val_loss = self.record_evaluation()
                    self.save()
                    self.log("step %d: train loss %.4f, val loss %.4f, lr %.2e, %.0f tokens/s; "
                             "saved %s" % (self.step, loss, val_loss, self.history["lr"][-1],
                                           tokens_per_sec, self.checkpoint_path))
                if self.on_step is not None:
                    self.on_step(self)
                if self.stop_signal is not None:
                    raise TrainingInterrupted(self.stop_signal)
        finally:
            bar.close()

    @contextlib.contextmanager
    def _stopping_on_signals(self):
        """SIGINT (Ctrl-C) and SIGTERM finish the current step, then stop the loop (which
        saves a checkpoint); a second signal stops at once. Only the main thread can handle
        signals, so elsewhere the default behaviour stays."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.stop_signal is not None:
                raise KeyboardInterrupt(signal.Signals(signum).name)
            self.stop_signal = signum
            self.log("%s: stopping after step %d and saving a checkpoint (again: stop now)"
                     % (signal.Signals(signum).name, self.step + 1))
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def _save_on_interrupt(self):
        """Save the steps since the last checkpoint, if any and if the weights are finite."""
        if self.step == (self.checkpoint_step or 0):
            return
        try:
            self.save()
        except TrainingDiverged:
            return
        self.log("saved the checkpoint of step %d in %s" % (self.step, self.checkpoint_path))

    def tokens_per_sec(self):
        """Training tokens per second over the steps this session ran (evaluations,
        checkpoints and samples not counted)."""
        if not self.session_steps:
            return 0.0
        return self.session_steps * self.config.tokens_per_step / self.train_seconds

    def describe(self):
        c = self.config
        return ("training %s: %s parameters, vocabulary of %d, %s; %d steps of %d tokens, lr %g "
                "(warm-up %d, cosine to %g)%s"
                % (c.model, format(self.model.num_parameters(), ","), self.tokenizer.vocab_size,
                   self.task.data_description(), c.steps, c.tokens_per_step, c.lr, c.warmup,
                   c.min_lr, "; resuming from step %d" % self.step if self.step else ""))

    def _title(self):
        c = self.config
        return "%s (%d layers, %d wide): %s" % (c.model, c.n_layer, c.n_embd,
                                                self.task.data_description())

    def _resume_hint(self):
        if self.checkpoint_step is None:
            return "no checkpoint was written yet"
        return ("the last checkpoint (step %d) is %s; continue with: tinyllm train --resume "
                "--out %s" % (self.checkpoint_step, self.checkpoint_path, self.config.out))


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal (``signum``: SIGINT or SIGTERM) after saving."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def prepare_output_folder(out, log):
    """Make the folder ``out`` and check it is writable, before any training; remove the
    temporary files (ckpt.npz.PID.XXXX.tmp) that writes killed midway left behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError("--out %s is a file, not a folder; name a folder for the checkpoint "
                         "and the loss curve" % out)
    out.mkdir(parents=True, exist_ok=True)
    probe = out / (".write-test.%d.tmp" % os.getpid())
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError("--out %s is not writable (%s); choose another folder"
                         % (out, error.strerror or error)) from None
    for tmp in sorted(out.glob(CHECKPOINT_NAME + ".*.tmp")):
        pid = tmp.name[len(CHECKPOINT_NAME) + 1:].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and _process_alive(int(pid)):
            continue                        # another run is writing it right now
        tmp.unlink(missing_ok=True)
        log("removed %s, left by a checkpoint write that was killed midway" % tmp)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def train(config=None, resume=None, progress=True, log=None, on_step=None, overwrite=False,
          **settings):
    """Train a model and return a ``TrainResult`` (model, tokenizer, history, losses, paths).

        from tinyllm.training import train
        result = train(steps=200, n_layer=2, out="out/small")     # settings of TrainConfig
        result.val_loss, result.samples["after"]

    config: a ``TrainConfig`` (default: the defaults), updated by ``settings``. resume: True to
    continue the checkpoint in ``config.out``, or a checkpoint path; overwrite: start a new run
    in a folder that holds a checkpoint. See ``Trainer``.
    """
    config = TrainConfig(**settings) if config is None else replace(config, **settings)
    trainer = Trainer(config, resume=resume, progress=progress, log=log, on_step=on_step,
                      overwrite=overwrite)
    return trainer.run()
