"""The fused attention kernels alone, on one thread: this checkout's against another version's.

    python benchmarks/bench_attention_tasks.py
    python benchmarks/bench_attention_tasks.py --against OTHER/tinyllm/kernels/attention.py

calls ``attention_forward_tasks`` and ``attention_backward_tasks`` (tinyllm/kernels/attention.py)
directly, for every task at once (first = 0, stop = all), so on the calling thread only: no
thread pool, no autograd, no checks. With ``--against`` it loads a second copy of the module
from that file (an older commit's, say, from ``git show COMMIT:tinyllm/kernels/attention.py``)
and times both in turns, call by call, in the same process, so that both see the same machine
(each going first in every other round).
Each figure is the best of ``--rounds`` calls (a kernel's own speed, not a user's wait: see
bench_attention_api.py for that). It also prints the largest difference from the float64
NumPy reference, so that a faster version that is wrong shows at once.

    python benchmarks/bench_attention_tasks.py --two-at-once

asks what a second core can give: each kernel of this checkout runs alone on one thread and, in
the rounds between, on two threads at the same moment (each with its own inputs and outputs,
started together at a barrier), and the script prints the best time of a call both ways. On a machine whose cores
share nothing the two are equal; where they are not, a kernel split over two threads can never
run twice as fast as on one.
"""

import argparse
import threading
import time
import types

import numpy as np

from tinyllm.kernels import attention

SHAPES = [(12, 4, 64), (12, 4, 256), (1, 4, 1024)]     # (B, H, T)
HEAD_SIZE = 32


def load_module(path):
    """A separate copy of an attention kernels module from a file, compiled anew: its kernels'
    ``cache=True`` is turned off (Numba's on-disk cache would record a module that cannot be
    imported by name, and fail to load it the next time)."""
    source = open(path, encoding="utf-8").read().replace("cache=True", "cache=False")
    module = types.ModuleType("attention_against")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def calls(module, q, k, v, grad, causal):
    """(forward, backward, results) for one module: two argument-free calls and the arrays they
    write, (out, lse, dq, dk, dv)."""
    B, H, T, D = q.shape
    scale = q.dtype.type(1 / np.sqrt(D))
    padding = np.zeros((0, 0), dtype=np.bool_)
    out, lse = np.empty_like(q), np.empty((B, H, T), dtype=q.dtype)
    grads = [np.empty_like(q) for _ in range(3)]
    tasks = module.forward_tasks(q)

    def forward():
        module.attention_forward_tasks(q, k, v, scale, causal, padding, out, lse, 0, tasks)

    def backward():
        module.attention_backward_tasks(grad, q, k, v, out, lse, scale, causal, padding,
                                        *grads, 0, B * H)

    return forward, backward, (out, lse, *grads)


def exact_results(q, k, v, grad, causal):
    """(O, L, dQ, dK, dV) by the float64 NumPy reference."""
    q64, k64, v64, g64 = (x.astype(np.float64) for x in (q, k, v, grad))
    scale = 1 / np.sqrt(q.shape[-1])
    out, lse = attention.attention_forward_reference(q64, k64, v64, scale, causal)
    return (out, lse) + attention.attention_backward_reference(g64, q64, k64, v64, out, lse,
                                                               scale, causal)


def largest_error(results, exact):
    """The largest absolute difference of a version's (O, L, dQ, dK, dV) from the exact ones."""
    return max(float(np.abs(a - b).max()) for a, b in zip(results, exact))


def call_times_alone_and_at_once(first, second, rounds, calls_per_round=5):
    """The best time of a call of ``first`` alone on the calling thread, and of ``first`` and
    ``second`` run at the same moment on two threads. The rounds alternate (alone, at once,
    alone, ...) so that both see the same moments of a shared machine. At once, the two
    threads start together at a barrier and meet at it again when both are done, so that the
    next "alone" runs alone; each times ``calls_per_round`` calls (several, so that their work
    overlaps even when one of them wakes late)."""
    barrier = threading.Barrier(2)
    alone, at_once = np.inf, [np.inf, np.inf]

    def timed(function):
        started = time.perf_counter()
        for _ in range(calls_per_round):
            function()
        return (time.perf_counter() - started) / calls_per_round

    def helper():
        for _ in range(rounds):
            barrier.wait()                  # start together
            at_once[1] = min(at_once[1], timed(second))
            barrier.wait()                  # both done

    thread = threading.Thread(target=helper)
    thread.start()
    for _ in range(rounds):
        alone = min(alone, timed(first))
        barrier.wait()
        at_once[0] = min(at_once[0], timed(first))
        barrier.wait()
    thread.join()
    return alone, at_once


def two_at_once(rounds):
    """Each kernel alone on one thread and two copies at the same moment (--two-at-once)."""
    print("best of %d rounds of 5 calls, float32, D=%d, ms a call" % (rounds, HEAD_SIZE))
    print("   B   H     T  causal  kernel     alone   two at once   slower")
    rng = np.random.default_rng(0)
    for B, H, T in SHAPES:
        for causal in (False, True):
            pairs = []
            for _ in range(2):
                q, k, v, grad = (rng.standard_normal((B, H, T, HEAD_SIZE), dtype=np.float32)
                                 for _ in range(4))
                forward, backward, _ = calls(attention, q, k, v, grad, causal)
                forward()
                backward()
                pairs.append((forward, backward))
            for index, name in enumerate(("forward", "backward")):
                alone, both = call_times_alone_and_at_once(pairs[0][index], pairs[1][index],
                                                           rounds)
                print("%4d %3d %5d  %6s  %-8s %7.3f  %6.3f %6.3f  %5.2fx"
                      % (B, H, T, "yes" if causal else "no", name, alone * 1e3, both[0] * 1e3,
                         both[1] * 1e3, max(both) / alone))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="another attention.py to time beside this one")
    parser.add_argument("--two-at-once", action="store_true",
                        help="each kernel alone, then on two threads at the same moment")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    if args.two_at_once:
        two_at_once(args.rounds)
        return
    # Both versions compiled anew in this process, the same way: a kernel loaded from Numba's
    # cache ran about 5% slower in one measurement than the same source compiled in the process
    # (the same machine code at other addresses), which would tilt the comparison.
    modules = [("this", load_module(attention.__file__))]
    if args.against:
        modules.append(("against", load_module(args.against)))
    print("one thread, best of %d calls, float32, D=%d, ms" % (args.rounds, HEAD_SIZE))
    print("   B   H     T  causal  version   forward  backward  largest error")
    rng = np.random.default_rng(0)
    for B, H, T in SHAPES:
        q, k, v, grad = (rng.standard_normal((B, H, T, HEAD_SIZE), dtype=np.float32)
                         for _ in range(4))
        for causal in (False, True):
            runs = []
            for name, module in modules:
                forward, backward, results = calls(module, q, k, v, grad, causal)
                forward()
                backward()                                  # compiled, and results filled
                runs.append((name, forward, backward, results, [np.inf, np.inf]))
            for round_number in range(args.rounds):
                # Each version goes first in every other round: the second call of a round
                # finds q, k, v in the cache warm from the first, a few percent faster.
                for name, forward, backward, results, best in runs[::1 - 2 * (round_number % 2)]:
                    for i, function in enumerate((forward, backward)):
                        started = time.perf_counter()
                        function()
                        best[i] = min(best[i], time.perf_counter() - started)
            exact = exact_results(q, k, v, grad, causal)     # once for every version
            for name, forward, backward, results, best in runs:
                print("%4d %3d %5d  %6s  %-8s %8.3f  %8.3f  %.1e"
                      % (B, H, T, "yes" if causal else "no", name, best[0] * 1e3,
                         best[1] * 1e3, largest_error(results, exact)))


if __name__ == "__main__":
    main()
