"""What the kernel thread pool (``cpu_runtime.run_in_chunks``) costs per call, this checkout's
against another version's.

    python benchmarks/bench_thread_pool.py
    python benchmarks/bench_thread_pool.py --against OTHER/tinyllm/kernels/cpu_runtime.py

Every fused kernel (attention, GELU, layer norm, softmax cross-entropy, Adam) runs through
``run_in_chunks``: ranges of tasks on the calling thread and the pool's threads at once. What
the pool costs shows where a kernel call is short: it times ``run_in_chunks`` on a Numba
kernel of 48 equal tasks that take about 0.1 ms and about 1 ms on one thread (printed beside
it), and one GPT training step at nanoGPT's small configuration (4 layers, 4 heads, 128
features, 64 tokens, batch 12; about 40 pool calls a step). With ``--against`` the other
version's ``run_in_chunks`` (loaded from its file, with a pool of its own) is timed in the same
process, in turns, each version first in every other round; medians and bests of the rounds.
"""

import argparse
import importlib.util
import os
import statistics
import time

import numpy as np
from numba import njit

import tinyllm
from bench_attention_api import gpt_train_step
from tinyllm.kernels import cpu_runtime

TASKS = 48


@njit(nogil=True, cache=True)
def sum_tasks(x, first, stop):
    """A stand-in kernel: tasks first .. stop - 1, each a sum over x."""
    total = 0.0
    for _ in range(first, stop):
        for i in range(x.size):
            total += x[i]
    return total


def load_other(path):
    """``run_in_chunks`` of another cpu_runtime.py, as a module of its own."""
    spec = importlib.util.spec_from_file_location("cpu_runtime_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_in_chunks


def time_in_turns(versions, call, rounds):
    """{name: [seconds]} of ``call()`` with each version's run_in_chunks in place, in turns."""
    times = {name: [] for name, _ in versions}
    own = cpu_runtime.run_in_chunks
    try:
        for round_number in range(rounds):
            for name, run_in_chunks in versions[::1 - 2 * (round_number % 2)]:
                cpu_runtime.run_in_chunks = run_in_chunks   # what the kernels look up
                started = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - started)
    finally:
        cpu_runtime.run_in_chunks = own
    return times


def report(label, times, unit, scale):
    for name, record in times.items():
        print("%-34s %-8s median %8.1f %s   best %8.1f %s"
              % (label, name, scale * statistics.median(record), unit,
                 scale * min(record), unit))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="another cpu_runtime.py to time beside this one")
    parser.add_argument("--rounds", type=int, default=2000,
                        help="rounds of the stand-in kernel (default 2000)")
    parser.add_argument("--steps", type=int, default=200,
                        help="rounds of the GPT step (default 200)")
    args = parser.parse_args()
    versions = [("this", cpu_runtime.run_in_chunks)]
    if args.against:
        versions.append(("against", load_other(args.against)))
    print("%d kernel threads; load average %.2f" % (cpu_runtime.kernel_threads(),
                                                    os.getloadavg()[0]))
    for length in (2000, 20000):
        x = np.ones(length)
        sum_tasks(x, 0, 1)
        started = time.perf_counter()
        for _ in range(100):
            sum_tasks(x, 0, TASKS)
        one_thread = (time.perf_counter() - started) / 100
        times = time_in_turns(versions, lambda: cpu_runtime.run_in_chunks(
            lambda first, stop: sum_tasks(x, first, stop), TASKS), args.rounds)
        report("%d tasks, %.2f ms on one thread" % (TASKS, 1e3 * one_thread), times, "us", 1e6)
    step = gpt_train_step(np, tinyllm)      # the step bench_attention_api.py times
    for _ in range(5):
        step()
    report("GPT training step", time_in_turns(versions, step, args.steps), "ms", 1e3)


if __name__ == "__main__":
    main()
