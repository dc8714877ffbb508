"""One GPT training step of tinyllm against the same step in PyTorch, measured side by side.

    python benchmarks/bench_train_step.py                          # nanoGPT's small CPU run
    python benchmarks/bench_train_step.py --config shakespeare     # nanoGPT's Shakespeare run
    python benchmarks/bench_train_step.py --threads 1              # one thread each
    python benchmarks/bench_train_step.py --train    # 2000 steps each, then validation losses

Two configurations (``--config``), both nanoGPT's, with dropout 0 and no biases (nanoGPT's
``bias=False``), a vocabulary of 65 characters (the size of nanoGPT's Shakespeare alphabet):

- ``small`` (the default): nanoGPT's small CPU run, n_layer 4, n_head 4, n_embd 128,
  block_size 64, batch 12 (768 tokens a step);
- ``shakespeare``: nanoGPT's ``train_shakespeare_char``, n_layer 6, n_head 6, n_embd 384,
  block_size 256, batch 64 (16,384 tokens a step; a step takes seconds on 2 cores, so the
  default is a few steps).

The text is the pydoc corpus (``tinyllm.data.load_corpus("pydoc")``, nothing is downloaded);
its 64 most frequent characters keep an id each and every other character shares the 65th.
AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the matrices), warm-up 100 steps then
cosine decay to 1e-4 at step 2000, gradient clipping at 1.0. A step is forward, backward,
clipping and the AdamW update.

Each framework runs in a subprocess of its own (a "worker"), so that its threads, its memory
allocator settings and its peak memory are its own. The PyTorch worker never imports tinyllm.
Both read the same batches: the parent draws every window start once, from a seeded NumPy
generator, and hands the same (x, y) windows to both. Both initialise by the same policy
(normal(0, 0.02), the residual projections c_proj scaled by 1 / sqrt(2 n_layer), biases 0),
each from its own seeded generator.

Timing: after a warm-up, the parent asks the workers in turn for rounds of steps (tinyllm,
PyTorch, tinyllm, ...), so that both see the same load from other programs, and reports the
median (and best) time of a step, and the median processor time of a step (all threads
together; on a loaded machine it moves less than the wall time). Memory: each worker's peak resident set (VmHWM in
/proc/self/status, which sees every allocator, PyTorch's included), and the part of it above
the resident set after the imports. ``--train``: each worker trains for the full 2000 steps
and evaluates the loss on the same fixed validation windows (consecutive, non-overlapping
windows of the last 10% of the corpus) every 500 steps.

The PyTorch side is ``benchmarks/reference_gpt_torch.py``; without PyTorch installed, only
tinyllm's numbers are printed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# As `import tinyllm` does (tinyllm/kernels/cpu_runtime.py), before NumPy loads OpenBLAS: its
# idle threads sleep at once instead of spinning for ~0.1 s. Both workers inherit it.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ORIGINAL_ENVIRONMENT = dict(os.environ)        # before tinyllm sets any of its defaults

CONFIGS = {
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
                  bias=False),
    "shakespeare": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64,
                        dropout=0.0, bias=False),
}
# (warm-up steps, rounds, steps per round) when the command line does not say
TIMING_DEFAULTS = {"small": (10, 10, 10), "shakespeare": (1, 3, 1)}
VOCAB_SIZE = 65
CONFIG_NAME = "small"           # the one in use; main() and the workers set it from --config
CONFIG = CONFIGS[CONFIG_NAME]
OPTIM = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000,
             weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0)
EVAL_EVERY = 500
EVAL_BATCH = 64


# ----- the data both workers share -------------------------------------------------------------
def prepare_data(path, steps, seed):
    """Encode the pydoc corpus in ``VOCAB_SIZE`` ids (its most frequent characters, the rest
    sharing the last id), split it 90/10, draw the window starts of every training step, cut
    the fixed validation windows, and save it all to ``path`` (an .npz file)."""
    from tinyllm.data import load_corpus, train_val_split
    text = load_corpus("pydoc")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    characters, counts = np.unique(codes, return_counts=True)
    rank = np.empty(len(characters), dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(characters))
    ids = np.minimum(rank[np.searchsorted(characters, codes)], VOCAB_SIZE - 1)
    train, val = train_val_split(ids, 0.1)
    T, B = CONFIG["block_size"], CONFIG["batch_size"]
    starts = np.random.default_rng(seed).integers(0, len(train) - T, size=(steps, B))
    val_starts = np.arange(0, len(val) - T, T)
    val_windows = val[val_starts[:, None] + np.arange(T + 1)]           # (n, T + 1)
    np.savez(path, train=train, starts=starts, val_windows=val_windows, vocab_size=VOCAB_SIZE)
    return VOCAB_SIZE, len(train), len(val_windows)


def batch(data, step):
    """(x, y) int64 (B, T) of training step ``step``: the windows at its drawn starts."""
    T = CONFIG["block_size"]
    windows = data["train"][data["starts"][step][:, None] + np.arange(T + 1)]
    return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])


def peak_memory():
    """(peak resident set, resident set now) of this process, in MiB."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


# ----- the two workers ---------------------------------------------------------------------------
class TinyllmRunner:
    """tinyllm's GPT, AdamW and schedule (as ``tinyllm.training`` trains it)."""
    name = "tinyllm"

    def __init__(self, vocab_size, seed):
        import tinyllm
        from tinyllm.models.gpt import GPT, GPTConfig
        from tinyllm.nn.utils import clip_grad_norm_
        from tinyllm.optim.lr_scheduler import warmup_cosine_lr
        self.clip_grad_norm_, self.warmup_cosine_lr = clip_grad_norm_, warmup_cosine_lr
        self.no_grad = tinyllm.no_grad
        tinyllm.manual_seed(seed)
        self.model = GPT(GPTConfig(vocab_size=vocab_size, **{k: CONFIG[k] for k in (
            "n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")}))
        self.optimizer = self.model.configure_optimizers(OPTIM["weight_decay"],
                                                         OPTIM["learning_rate"],
                                                         OPTIM["betas"])
        self.description = "tinyllm backend %s" % tinyllm.get_backend()

    def lr(self, step):
        return self.warmup_cosine_lr(step, OPTIM["learning_rate"], OPTIM["warmup_iters"],
                                     OPTIM["lr_decay_iters"], OPTIM["min_lr"])

    def step(self, x, y, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        _, loss = self.model(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.clip_grad_norm_(self.model.parameters(), OPTIM["grad_clip"])
        self.optimizer.step()
        return float(loss.data)

    def evaluate(self, windows):
        self.model.eval()
        total = 0.0
        with self.no_grad():
            for start in range(0, len(windows), EVAL_BATCH):
                chunk = windows[start:start + EVAL_BATCH]
                _, loss = self.model(chunk[:, :-1], chunk[:, 1:])
                total += float(loss.data) * len(chunk)
        self.model.train()
        return total / len(windows)


class TorchRunner:
    """The PyTorch reference of ``benchmarks/reference_gpt_torch.py``."""
    name = "PyTorch"

    def __init__(self, vocab_size, seed, threads):
        import torch
        sys.path.insert(0, HERE)
        import reference_gpt_torch as reference
        self.torch, self.reference = torch, reference
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.model = reference.GPT(vocab_size, CONFIG["block_size"], CONFIG["n_layer"],
                                   CONFIG["n_head"], CONFIG["n_embd"], CONFIG["bias"])
        self.optimizer = self.model.configure_optimizers(OPTIM["weight_decay"],
                                                         OPTIM["learning_rate"],
                                                         OPTIM["betas"])
        self.description = "PyTorch %s, %d threads" % (torch.__version__,
                                                      torch.get_num_threads())

    def lr(self, step):
        return self.reference.get_lr(step, OPTIM["learning_rate"], OPTIM["warmup_iters"],
                                     OPTIM["lr_decay_iters"], OPTIM["min_lr"])

    def step(self, x, y, lr):
        return self.reference.train_step(self.model, self.optimizer, self.torch.as_tensor(x),
                                         self.torch.as_tensor(y), lr, OPTIM["grad_clip"])

    def evaluate(self, windows):
        return self.reference.evaluate(self.model, windows, EVAL_BATCH)


def use_config(name):
    """Make ``name`` (a key of CONFIGS) the configuration in use."""
    global CONFIG, CONFIG_NAME
    CONFIG, CONFIG_NAME = CONFIGS[name], name


def worker(framework, data_path, seed, torch_threads):
    """Serve the parent's requests, one JSON line in and one out: {"run": [first, count]} runs
    training steps first .. first + count - 1 and answers their times; {"evaluate": true}
    answers the validation loss; {"quit": true} answers the memory figures."""
    data = dict(np.load(data_path))
    vocab_size = int(data["vocab_size"])
    if framework == "tinyllm":
        runner = TinyllmRunner(vocab_size, seed)
    else:
        runner = TorchRunner(vocab_size, seed, torch_threads)
    _, rss_after_setup = peak_memory()             # imports, data and model, before any step
    reply({"ready": runner.description})
    for line in sys.stdin:
        request = json.loads(line)
        if "run" in request:
            first, count = request["run"]
            times, cpu_times, losses, lrs = [], [], [], []
            for step in range(first, first + count):
                x, y = batch(data, step)
                lr = runner.lr(step)
                start, start_cpu = time.perf_counter(), time.process_time()
                losses.append(runner.step(x, y, lr))
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - start_cpu)
                lrs.append(lr)
            reply({"times": times, "cpu_times": cpu_times, "losses": losses, "lrs": lrs})
        elif "evaluate" in request:
            reply({"val_loss": runner.evaluate(data["val_windows"])})
        else:
            peak, _ = peak_memory()
            reply({"peak_mib": peak, "rss_after_setup_mib": rss_after_setup})
            return


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Worker:
    """The parent's handle on one worker subprocess."""

    def __init__(self, framework, data_path, args):
        command = [sys.executable, os.path.abspath(__file__), "--worker", framework,
                   "--data", data_path, "--seed", str(args.seed), "--config", args.config,
                   "--torch-threads", str(args.torch_threads)]
        environment = dict(ORIGINAL_ENVIRONMENT)
        if args.threads:            # tinyllm's Numba kernels and NumPy's BLAS, as PyTorch's
            environment.update(NUMBA_NUM_THREADS=str(args.threads),
                               OPENBLAS_NUM_THREADS=str(args.threads))
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=environment)
        self.description = self.ask(None)["ready"]

    def ask(self, request):
        if request is not None:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("a benchmark worker stopped; its error is printed above")
        return json.loads(line)

    def finish(self):
        memory = self.ask({"quit": True})
        self.process.wait()
        return memory


# ----- the two modes -------------------------------------------------------------------------------
def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def time_steps(workers, args):
    """Warm up, then alternate rounds of timed steps between the workers."""
    for w in workers:
        w.ask({"run": [0, args.warmup]})
    step = args.warmup
    times = {w.description: [] for w in workers}
    cpu_times = {w.description: [] for w in workers}
    for _ in range(args.rounds):
        for w in workers:
            answer = w.ask({"run": [step, args.steps]})
            times[w.description] += answer["times"]
            cpu_times[w.description] += answer["cpu_times"]
        step += args.steps
    return times, cpu_times


def report_timing(workers, times, cpu_times, memory, steps):
    tokens = CONFIG["batch_size"] * CONFIG["block_size"]
    medians, cpu_medians = {}, {}
    print("\n%-36s %10s %10s %12s %12s %14s %18s" % (
        "one training step (%d timed)" % steps, "median ms", "best ms", "median cpu ms",
        "tokens/s", "peak RSS MiB", "above setup MiB"))
    for w in workers:
        t = times[w.description]
        medians[w.description] = statistics.median(t)
        cpu_medians[w.description] = statistics.median(cpu_times[w.description])
        m = memory[w.description]
        print("%-36s %10.1f %10.1f %12.1f %12.0f %14.0f %18.0f" % (
            w.description, 1e3 * medians[w.description], 1e3 * min(t),
            1e3 * cpu_medians[w.description], tokens / medians[w.description], m["peak_mib"],
            m["peak_mib"] - m["rss_after_setup_mib"]))
    if len(workers) == 2:
        ours, theirs = (medians[w.description] for w in workers)
        cpu_ours, cpu_theirs = (cpu_medians[w.description] for w in workers)
        m_ours, m_theirs = (memory[w.description] for w in workers)
        target = {"small": 1.1, "shakespeare": 1.2}[CONFIG_NAME]
        print("\ntinyllm / PyTorch, time per step (medians): %.1f ms / %.1f ms = %.2f   "
              "(target <= %.1f)" % (1e3 * ours, 1e3 * theirs, ours / theirs, target))
        print("tinyllm / PyTorch, processor time per step: %.1f ms / %.1f ms = %.2f"
              % (1e3 * cpu_ours, 1e3 * cpu_theirs, cpu_ours / cpu_theirs))
        print("tinyllm / PyTorch, peak resident memory:    %.0f MiB / %.0f MiB = %.2f"
              % (m_ours["peak_mib"], m_theirs["peak_mib"],
                 m_ours["peak_mib"] / m_theirs["peak_mib"]))


def train(workers):
    """Both models for all 2000 steps on the same batches, taking turns every 500 steps (so
    that both see the same load); validation loss every 500 steps."""
    total = OPTIM["lr_decay_iters"]
    curves, lrs, seconds = {}, {}, {}
    for w in workers:
        curves[w.description] = [(0, w.ask({"evaluate": True})["val_loss"])]
        lrs[w.description], seconds[w.description] = [], 0.0
    for first in range(0, total, EVAL_EVERY):          # the workers take turns, as in timing
        for w in workers:
            answer = w.ask({"run": [first, EVAL_EVERY]})
            seconds[w.description] += sum(answer["times"])
            lrs[w.description] += answer["lrs"]
            curves[w.description].append((first + EVAL_EVERY,
                                          w.ask({"evaluate": True})["val_loss"]))
            print("%-36s step %4d  train loss %.4f  val loss %.4f" % (
                w.description, first + EVAL_EVERY, answer["losses"][-1],
                curves[w.description][-1][1]), flush=True)
    tokens = total * CONFIG["batch_size"] * CONFIG["block_size"]
    print("\n%-36s %s" % ("validation loss at step", "".join("%9d" % s for s, _ in
                                                               curves[workers[0].description])))
    for w in workers:
        print("%-36s %s   (%.0f s of steps, %.0f tokens/s)" % (
            w.description, "".join("%9.4f" % v for _, v in curves[w.description]),
            seconds[w.description], tokens / seconds[w.description]))
    if len(workers) == 2:
        (a, b) = (curves[w.description][-1][1] for w in workers)
        lr_a, lr_b = (np.array(lrs[w.description]) for w in workers)
        print("\nsame learning rates at every step: %s (largest difference %.1e)"
              % (np.allclose(lr_a, lr_b, rtol=1e-12), np.abs(lr_a - lr_b).max()))
        print("final validation loss: tinyllm %.4f, PyTorch %.4f, difference %.4f nats "
              "(target <= 0.05)" % (a, b, abs(a - b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true",
                        help="train both models for 2000 steps and compare validation losses")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small",
                        help="nanoGPT's small CPU run (default) or its Shakespeare run")
    parser.add_argument("--warmup", type=int, help="untimed steps first (small: 10, "
                        "shakespeare: 1)")
    parser.add_argument("--rounds", type=int, help="alternations of the workers (10, 3)")
    parser.add_argument("--steps", type=int, help="timed steps per round (10, 1)")
    parser.add_argument("--threads", type=int, help="threads of both frameworks (tinyllm: "
                        "NUMBA_NUM_THREADS and OPENBLAS_NUM_THREADS; PyTorch: "
                        "set_num_threads); default: each its own default")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: the number of cores)")
    parser.add_argument("--no-torch", action="store_true", help="time tinyllm alone")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--worker", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_config(args.config)
    defaults = TIMING_DEFAULTS[args.config]
    args.warmup = defaults[0] if args.warmup is None else args.warmup
    args.rounds = defaults[1] if args.rounds is None else args.rounds
    args.steps = defaults[2] if args.steps is None else args.steps
    if args.threads:
        args.torch_threads = args.threads
    if args.worker:
        return worker(args.worker, args.data, args.seed, args.torch_threads)

    steps_needed = max(OPTIM["lr_decay_iters"], args.warmup + args.rounds * args.steps)
    with tempfile.TemporaryDirectory() as folder:
        data_path = os.path.join(folder, "data.npz")
        vocab_size, n_train, n_val = prepare_data(data_path, steps_needed, args.seed)
        sys.path.insert(0, HERE)
        from bench_kernels import machine_description
        print("\n".join(machine_description()))
        print("load average (1, 5, 15 min) before: %s"
              % " ".join("%.2f" % x for x in os.getloadavg()))
        print("GPT (--config %s): %s, vocab %d (pydoc characters), %d training tokens, "
              "%d validation windows" % (args.config, ", ".join("%s=%s" % kv for kv in
                                                                CONFIG.items()),
                                         vocab_size, n_train, n_val), flush=True)
        frameworks = ["tinyllm"]
        if not args.no_torch:
            if torch_available():
                frameworks.append("torch")
            else:
                print("PyTorch is not installed: timing tinyllm alone")
        workers = [Worker(name, data_path, args) for name in frameworks]
        if args.train:
            train(workers)
            for w in workers:
                w.finish()
        else:
            times, cpu_times = time_steps(workers, args)
            memory = {w.description: w.finish() for w in workers}
            report_timing(workers, times, cpu_times, memory, args.rounds * args.steps)
        print("load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()
