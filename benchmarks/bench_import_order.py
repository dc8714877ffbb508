"""Does the order of the imports change tinyllm's speed? A training step and attention, timed in
two processes side by side: one that imports tinyllm first, one that imports NumPy first.

    python benchmarks/bench_import_order.py               # 15 rounds
    python benchmarks/bench_import_order.py --rounds 30

Why it could: OpenBLAS (NumPy's BLAS) reads ``OPENBLAS_THREAD_TIMEOUT`` when it is loaded, that
is when NumPy is first imported. ``import tinyllm`` sets it to make idle BLAS threads sleep at
once (``tinyllm/kernels/cpu_runtime.py``); a script that imported NumPy before tinyllm has an
OpenBLAS that already read the environment, and tinyllm then restarts its threads with the
setting. Without that, the BLAS threads kept spinning after every product and the fused kernels
that ran next lost up to half their speed.

Each order runs in a worker process of its own, which imports in that order, builds the same
GPT (nanoGPT's small CPU configuration: 4 layers, 4 heads, 128 features, 64 tokens, batch 12,
AdamW) and the same attention inputs, and waits for requests. The parent asks the two workers
in turns, round after round, for a few timed repetitions of each measurement, so that both see
the same load from other programs, and prints each side's median over all rounds and their
ratio (NumPy first / tinyllm first). The aim: every ratio within 0.95-1.05.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ATTENTION_SHAPES = [(12, 4, 64), (4, 4, 256)]       # (B, H, T), D = 32, causal


def worker(numpy_first):
    """Import in the order asked, then answer requests on stdin with JSON lists of seconds."""
    if numpy_first:
        import numpy as np
        import tinyllm
    else:
        import tinyllm
        import numpy as np
    import tinyllm.functional as F
    from tinyllm import Tensor

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_attention_api import gpt_train_step
    train_step = gpt_train_step(np, tinyllm)
    generator = np.random.default_rng(0)

    def attention(B, H, T):
        q, k, v, grad = (generator.standard_normal((B, H, T, 32)).astype(np.float32)
                         for _ in range(4))

        def step():
            qt, kt, vt = (Tensor(a, requires_grad=True) for a in (q, k, v))
            F.scaled_dot_product_attention(qt, kt, vt, is_causal=True).backward(grad)
        return step

    measurements = {"train": train_step}
    for B, H, T in ATTENTION_SHAPES:
        measurements["attention %d %d %d" % (B, H, T)] = attention(B, H, T)
    for step in measurements.values():             # compile, warm the caches
        for _ in range(3):
            step()
    print(json.dumps(sorted(measurements)), flush=True)
    for line in sys.stdin:
        name, repeats = line.rsplit(" ", 1)
        times = []
        for _ in range(int(repeats)):
            started = time.perf_counter()
            measurements[name]()
            times.append(time.perf_counter() - started)
        print(json.dumps(times), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternations (default 15)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repetitions of each measurement per round (default 5)")
    parser.add_argument("--worker", choices=["tinyllm-first", "numpy-first"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker == "numpy-first")

    orders = ["tinyllm-first", "numpy-first"]
    workers = {order: subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                        order], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True) for order in orders}
    names = [json.loads(workers[order].stdout.readline()) for order in orders][0]
    times = {(order, name): [] for order in orders for name in names}
    load_before = os.getloadavg()[0]
    for round_number in range(args.rounds):
        for name in names:
            for order in (orders if round_number % 2 == 0 else orders[::-1]):
                workers[order].stdin.write("%s %d\n" % (name, args.repeats))
                workers[order].stdin.flush()
                times[order, name] += json.loads(workers[order].stdout.readline())
    for process in workers.values():
        process.stdin.close()
        process.wait()

    import numpy
    print("import order: tinyllm first against NumPy first, each in a process of its own; "
          "%d rounds of %d repetitions, in turns" % (args.rounds, args.repeats))
    print("NumPy %s, Python %s, %d CPUs, load average %.2f before, %.2f after"
          % (numpy.__version__, sys.version.split()[0], os.cpu_count(), load_before,
             os.getloadavg()[0]))
    print("%-34s %16s %16s %8s" % ("median ms", "tinyllm first", "NumPy first", "ratio"))
    for name in names:
        first, second = (statistics.median(times[order, name]) for order in orders)
        label = ("GPT training step (small config)" if name == "train"
                 else "attention fwd+bwd B,H,T = " + ",".join(name.split()[1:]) + " causal")
        print("%-34s %16.2f %16.2f %8.3f   %s" % (
            label, 1e3 * first, 1e3 * second, second / first,
            "within 5%" if abs(second / first - 1) <= 0.05 else "NOT within 5%"))


if __name__ == "__main__":
    main()
