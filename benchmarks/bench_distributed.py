"""Data-parallel training over MPI: what 2 ranks cost and save, and what an all-reduce costs.

    python benchmarks/bench_distributed.py                 # both parts
    python benchmarks/bench_distributed.py --part steps    # time per step only
    python benchmarks/bench_distributed.py --part allreduce
    python benchmarks/bench_distributed.py --part overlap  # --overlap 0 against 1

Part 1, time per step. The same GPT training run (n_layer 2, n_head 4, n_embd 128, block_size
64, batch 8 per micro-batch, 2 micro-batches per update: 1024 tokens per step) as
``python -m tinyllm train --grad-accum 2`` in one process (with 1 thread and with 2) and as
``mpiexec -n 2 python -m tinyllm train --grad-accum 2`` (1 thread per rank; plain, and with
``--overlap 1 --bucket-mb 0.25``). Each run is a worker subprocess that reports the median
time of a step (after 3 warm-up steps) and, on rank 0, its communication share: the seconds
spent in collectives (waiting included) over the seconds spent in training steps.

Part 3 (``--part overlap``), whether overlapping communication with backward pays: a larger GPT
(n_layer 4, n_embd 256: 3.2M parameters, 13 MB of gradients in 1 MB buckets) on 2 ranks, with
``--overlap 0`` and ``--overlap 1`` alternately, twice each, so that both see the same load.

Part 2, one all-reduce of a 10M-parameter float32 gradient (40 MB) on 2 ranks, against the
alpha-beta model of a ring all-reduce, T(n) = 2 (N-1) alpha + 2 (N-1)/N * n * beta, with alpha
measured as the median time of an all-reduce of one float and beta fitted from a 1 MB one.
Prints the algorithm bandwidth (bytes / time) and the bus bandwidth (2 (N-1)/N bytes / time:
what each link carried; NCCL's "busbw").
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
STEPS, WARMUP = 13, 3
MODEL = ["--n-layer", "2", "--n-head", "4", "--n-embd", "128", "--block-size", "64",
         "--batch-size", "8", "--grad-accum", "2", "--sample-tokens", "0", "--eval-batches",
         "1"]
ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ----- workers ---------------------------------------------------------------------------------
def step_worker(out, extra):
    """Train STEPS steps; rank 0 prints {"step_s": [...], "comm_s": ..., "train_s": ...}."""
    from tinyllm.training import TrainConfig
    from tinyllm.training.trainer import Trainer
    settings = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, batch_size=8, grad_accum=2,
                    sample_tokens=0, eval_batches=1, steps=STEPS, eval_every=STEPS, out=out)
    settings.update(extra)
    times, last = [], [None]

    def on_step(trainer):
        now = time.perf_counter()
        if last[0] is not None:
            times.append(now - last[0])
        last[0] = now
        if trainer.step == WARMUP and trainer.parallel is not None:
            trainer.parallel.comm.seconds = 0.0
            trainer.train_seconds = 0.0
        elif trainer.step == WARMUP:
            trainer.train_seconds = 0.0

    trainer = Trainer(TrainConfig(**settings), progress=False, log=lambda m: None,
                      on_step=on_step)
    trainer._loop()
    if trainer.is_main:
        comm = trainer.parallel.comm.seconds if trainer.parallel is not None else 0.0
        print(json.dumps({"step_s": times[WARMUP - 1:-1], "comm_s": comm,
                          "train_s": trainer.train_seconds}))


def allreduce_worker():
    """Rank 0 prints the median seconds of all-reduces of 1 float, 1 MB and 40 MB."""
    import numpy as np
    from tinyllm import distributed
    comm = distributed.init()
    result = {}
    for name, n, repeats in (("alpha", 1, 200), ("1MB", 2 ** 18, 30), ("40MB", 10 ** 7, 10)):
        x = np.ones(n, dtype=np.float32)
        times = []
        for _ in range(repeats + 2):
            comm.barrier()
            started = time.perf_counter()
            comm.allreduce_(x)
            times.append(time.perf_counter() - started)
        result[name] = statistics.median(times[2:])
    if comm.rank == 0:
        print(json.dumps(result))


# ----- the parent --------------------------------------------------------------------------------
def run_worker(args, ranks, env_extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    command = [sys.executable, __file__] + args
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit("worker failed: %s\n%s" % (" ".join(command), done.stderr[-2000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_steps():
    runs = [("1 process, 1 thread, --grad-accum 2", 1, {}, ONE_THREAD),
            ("1 process, 2 threads, --grad-accum 2", 1, {}, {}),
            ("mpiexec -n 2, 1 thread each", 2, {}, ONE_THREAD),
            ("mpiexec -n 2, --overlap 1 --bucket-mb 0.25", 2, {"overlap": 1, "bucket_mb": 0.25},
             ONE_THREAD)]
    print("time per step (GPT n_layer 2, n_embd 128, 1024 tokens per step; median of %d steps)"
          % (STEPS - WARMUP))
    baseline = None
    with tempfile.TemporaryDirectory() as folder:
        for name, ranks, extra, env in runs:
            result = run_worker(["--worker", "steps", "--out", folder, "--extra",
                                 json.dumps(extra)], ranks, env)
            median = statistics.median(result["step_s"])
            baseline = baseline or median
            print("  %-45s %7.1f ms/step  (%.2fx the first)  communication %4.1f%% of training"
                  % (name, 1000 * median, baseline / median,
                     100 * result["comm_s"] / result["train_s"]))


def time_overlap():
    big = {"n_layer": 4, "n_embd": 256, "bucket_mb": 1.0}
    print("overlap (GPT n_layer 4, n_embd 256, 1 MB buckets, 2 ranks of 1 thread; median of "
          "%d steps per run)" % (STEPS - WARMUP))
    results = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as folder:
        for overlap in (0, 1, 0, 1):
            result = run_worker(["--worker", "steps", "--out", folder, "--extra",
                                 json.dumps(dict(big, overlap=overlap))], 2, ONE_THREAD)
            results[overlap].append(result)
            print("  --overlap %d: %7.1f ms/step, communication %4.1f%% of training"
                  % (overlap, 1000 * statistics.median(result["step_s"]),
                     100 * result["comm_s"] / result["train_s"]))
    medians = {k: statistics.median(t for r in v for t in r["step_s"]) for k, v in results.items()}
    print("  median over both runs: --overlap 0 %.1f ms, --overlap 1 %.1f ms (ratio %.2f)"
          % (1000 * medians[0], 1000 * medians[1], medians[0] / medians[1]))


def time_allreduce():
    result = run_worker(["--worker", "allreduce"], 2, {})
    N, n = 2, 10 ** 7 * 4
    alpha = result["alpha"] / (2 * (N - 1))
    beta = (result["1MB"] - 2 * (N - 1) * alpha) / (2 * (N - 1) / N * 2 ** 20)
    predicted = 2 * (N - 1) * alpha + 2 * (N - 1) / N * n * beta
    measured = result["40MB"]
    print("all-reduce over 2 ranks (float32, median):")
    print("  1 float: %.1f us  -> alpha = %.1f us per message" % (1e6 * result["alpha"],
                                                                  1e6 * alpha))
    print("  1 MB:    %.3f ms  -> beta = %.3f ns per byte (%.2f GB/s per link)"
          % (1e3 * result["1MB"], 1e9 * beta, 1e-9 / beta))
    print("  40 MB (10M parameters): measured %.1f ms, model predicts %.1f ms (measured / "
          "model = %.2f)" % (1e3 * measured, 1e3 * predicted, measured / predicted))
    print("  algorithm bandwidth %.2f GB/s, bus bandwidth %.2f GB/s"
          % (n / measured / 1e9, 2 * (N - 1) / N * n / measured / 1e9))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("steps", "allreduce", "overlap", "both"),
                        default="both")
    parser.add_argument("--worker", choices=("steps", "allreduce"))
    parser.add_argument("--out")
    parser.add_argument("--extra", default="{}")
    args = parser.parse_args()
    if args.worker == "steps":
        return step_worker(args.out, json.loads(args.extra))
    if args.worker == "allreduce":
        return allreduce_worker()
    print("load average before: %s" % " ".join(os.getloadavg().__repr__()[1:-1].split(", ")))
    if args.part in ("steps", "both"):
        time_steps()
    if args.part in ("allreduce", "both"):
        time_allreduce()
    if args.part == "overlap":
        time_overlap()


if __name__ == "__main__":
    main()
