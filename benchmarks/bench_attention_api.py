"""Attention forward + backward through the public API, "numpy" backend against "numba", and the
effect of importing NumPy before tinyllm.

A user calls attention as

    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)    # q, k, v: Tensors
    out.backward(grad)

and this script times exactly that (the checks, the autograd graph and the op, not just the
kernels) on the "numpy" backend (the composite of ops: scores, mask, softmax, weighted sum)
and on the "numba" backend (the fused op), float32, D = 32. For each shape both run in turns
(numpy, numba, numpy, ...), so that both see the same load from other programs, and each
number is the median of its runs. The fused kernel thus always starts right after NumPy's
BLAS has run, as it does inside a training step.

It also times one GPT training step (nanoGPT's small CPU configuration: 4 layers, 4 heads,
128 features, 64 tokens, batch 12) on the default backend.

    python benchmarks/bench_attention_api.py                # imports tinyllm first
    python benchmarks/bench_attention_api.py --numpy-first  # imports NumPy first, as many scripts do
    python benchmarks/bench_attention_api.py --both         # both orders, each in a subprocess

    python benchmarks/bench_attention_api.py --cpu-time     # one thread, CPU seconds
    python benchmarks/bench_attention_api.py --kernels      # and the fused kernels alone

``--cpu-time`` runs both backends on one thread (``NUMBA_NUM_THREADS=1``,
``OPENBLAS_NUM_THREADS=1``) and times them in CPU seconds of that thread
(``time.thread_time``), which other programs on the machine change far less than wall time:
it compares the work of the two backends on a loaded machine, not their speed on its cores.

``--kernels`` adds a third call to the turns: the two fused kernels alone
(``attention_forward_numba`` and ``attention_backward_numba`` of tinyllm/kernels/attention.py on
arrays made once, on the kernel threads), and prints their median and what the "numba" call
costs beyond them (the checks, the Tensors, the autograd graph, the output and gradient arrays).

Importing NumPy first used to cost the fused kernels up to half their speed (OpenBLAS's idle
threads kept spinning, see ``tinyllm/kernels/cpu_runtime.py``); ``--both`` shows whether the
two orders now give the same times.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

SHAPES = [(12, 4, 64), (12, 4, 256), (12, 4, 1024), (4, 4, 256), (1, 4, 1024)]   # (B, H, T)
HEAD_SIZE = 32
TRAIN_CONFIG = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=True)
TRAIN_BATCH = 12


def import_in_order(numpy_first):
    """Import NumPy and tinyllm in the order asked; returns the two modules."""
    if numpy_first:
        import numpy
        import tinyllm
    else:
        import tinyllm
        import numpy
    return numpy, tinyllm


def attention_step(F, Tensor, q, k, v, grad, is_causal):
    """One forward + backward through the public API; q, k, v get fresh gradients."""
    qt, kt, vt = (Tensor(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=is_causal)
    out.backward(grad)
    return out


# The clock of time_pair: wall time, or the CPU time of this thread with --cpu-time.
clock = time.perf_counter


def time_pair(functions, seconds, least=3):
    """Median seconds of each function in ``functions``, called in turns until ``seconds`` of
    the first have passed (at least ``least`` and at most 50 turns), after one untimed turn."""
    for f in functions:
        f()
    times = [[] for _ in functions]
    while (len(times[0]) < least or sum(times[0]) < seconds) and len(times[0]) < 50:
        for f, record in zip(functions, times):
            started = clock()
            f()
            record.append(clock() - started)
    return [statistics.median(record) for record in times]


def fused_kernels(np, q, k, v, grad, is_causal):
    """A function that runs the two fused kernels alone on q, k, v and grad, into arrays made
    once: what the "numba" backend's call costs without the API around it."""
    from tinyllm.kernels import attention
    B, H, T, D = q.shape
    scale = q.dtype.type(1 / np.sqrt(D))
    padding = np.zeros((0, 0), dtype=np.bool_)
    out, lse = np.empty_like(q), np.empty((B, H, T), dtype=q.dtype)
    grads = [np.empty_like(q) for _ in range(3)]

    def run():
        attention.attention_forward_numba(q, k, v, scale, is_causal, padding, out, lse)
        attention.attention_backward_numba(grad, q, k, v, out, lse, scale, is_causal, padding,
                                           *grads)
    return run


def bench_attention(np, tinyllm, seconds, least, kernels=False):
    import tinyllm.functional as F
    from tinyllm import Tensor
    print("attention forward+backward through F.scaled_dot_product_attention, float32, D=%d"
          % HEAD_SIZE)
    print("%4s %3s %5s %7s %10s %10s %8s" % ("B", "H", "T", "causal", "numpy ms", "numba ms",
                                            "ratio")
          + ("  kernels ms  outside ms" if kernels else ""))
    generator = np.random.default_rng(0)
    for B, H, T in SHAPES:
        q, k, v, grad = (generator.standard_normal((B, H, T, HEAD_SIZE)).astype(np.float32)
                         for _ in range(4))
        for is_causal in (False, True):
            def on(backend):
                def run():
                    with tinyllm.use_backend(backend):
                        attention_step(F, Tensor, q, k, v, grad, is_causal)
                return run
            calls = [on("numpy"), on("numba")]
            if kernels:
                calls.append(fused_kernels(np, q, k, v, grad, is_causal))
            medians = time_pair(calls, seconds, least)
            numpy_s, numba_s = medians[:2]
            line = "%4d %3d %5d %7s %10.2f %10.2f %8.2f" % (
                B, H, T, "yes" if is_causal else "no", 1e3 * numpy_s, 1e3 * numba_s,
                numpy_s / numba_s)
            if kernels:
                line += "  %10.2f  %10.2f" % (1e3 * medians[2], 1e3 * (numba_s - medians[2]))
            print(line, flush=True)


def gpt_train_step(np, tinyllm):
    """A function that runs one training step (forward, backward, AdamW) of a GPT at nanoGPT's
    small CPU configuration on a fixed random batch."""
    from tinyllm.models.gpt import GPT, GPTConfig
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, **TRAIN_CONFIG))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    generator = np.random.default_rng(0)
    shape = (TRAIN_BATCH, TRAIN_CONFIG["block_size"])
    x, y = generator.integers(0, 65, shape), generator.integers(0, 65, shape)

    def step():
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def bench_train_step(np, tinyllm, seconds):
    step = gpt_train_step(np, tinyllm)
    for _ in range(3):
        step()
    median, = time_pair([step], seconds)
    print("GPT training step (4 layers, 4 heads, 128 features, 64 tokens, batch 12), "
          "backend %s: %.2f ms" % (tinyllm.get_backend(), 1e3 * median), flush=True)


def run_both(args):
    """This script twice, in subprocesses: tinyllm first, then NumPy first, each with the
    other options given."""
    passed_on = ["--seconds", str(args.seconds), "--least", str(args.least)]
    for option in ("no_train_step", "kernels", "cpu_time"):
        if getattr(args, option):
            passed_on.append("--" + option.replace("_", "-"))
    for flag in ([], ["--numpy-first"]):
        command = [sys.executable, os.path.abspath(__file__)] + passed_on + flag
        print("$ python benchmarks/bench_attention_api.py %s" % " ".join(command[2:]),
              flush=True)
        subprocess.run(command, check=True)
        print(flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numpy-first", action="store_true",
                        help="import NumPy before tinyllm (default: tinyllm first)")
    parser.add_argument("--both", action="store_true",
                        help="run both import orders, each in a subprocess")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="time each case for about this long (default 2)")
    parser.add_argument("--least", type=int, default=3,
                        help="time each case at least this many times (default 3)")
    parser.add_argument("--no-train-step", action="store_true",
                        help="skip the GPT training step")
    parser.add_argument("--kernels", action="store_true",
                        help="also time the fused kernels alone, in the same turns")
    parser.add_argument("--cpu-time", action="store_true",
                        help="one thread for both backends, timed in CPU seconds of the thread")
    args = parser.parse_args()
    if args.both:
        return run_both(args)
    if args.cpu_time:
        global clock
        os.environ["NUMBA_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"
        clock = time.thread_time
        print("one thread per backend, CPU time of the thread (time.thread_time)")
    np, tinyllm = import_in_order(args.numpy_first)
    import numba
    from tinyllm.kernels import cpu_runtime
    print("imported %s first; NumPy %s, Numba %s, %d CPUs, load average %.2f"
          % ("NumPy" if args.numpy_first else "tinyllm", np.__version__, numba.__version__,
             os.cpu_count(), os.getloadavg()[0]))
    print("idle BLAS threads: %s" % cpu_runtime.describe_blas_threads())
    bench_attention(np, tinyllm, args.seconds, args.least, args.kernels)
    if not args.no_train_step:
        bench_train_step(np, tinyllm, args.seconds)


if __name__ == "__main__":
    main()
