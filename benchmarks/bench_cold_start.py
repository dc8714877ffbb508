"""How long `tinyllm train` takes to reach its first training step, with an empty Numba cache and
with a warm one.

The first run on a machine compiles tinyllm's Numba kernels (and writes them to Numba's
on-disk cache); later runs load them from there. This script runs

    python -m tinyllm train --steps 5 --out TMP/out

twice in a subprocess, both times with NUMBA_CACHE_DIR pointing at the same new temporary
folder (so the user's own cache is neither used nor changed): the first run starts with it
empty, the second finds it warm. It prints, for each run, the seconds from starting the command
to the end of its first training step (read from the progress bar, "1/5") and to its end, and
the processor time the run used (user + system, all its threads): on a shared machine the
wall-clock times grow with the load, the processor time much less.

    python benchmarks/bench_cold_start.py           # from the repository root
"""

import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STEPS = 5
FIRST_STEP = re.compile(r"\b1/%d\b" % STEPS)       # the progress bar after step 1


def children_cpu_seconds():
    """User + system seconds used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_train_run(cache_dir, out_dir):
    """(seconds to the end of the first step, seconds to the end of the run, processor
    seconds of the run) of one `tinyllm train --steps 5`, with Numba's cache in
    ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "tinyllm", "train", "--steps", str(STEPS),
               "--out", str(out_dir), "--overwrite"]
    first_step = []
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, bufsize=1)

    def watch_progress_bar():
        seen = ""
        while True:
            piece = process.stderr.read(1)
            if not piece:
                return
            seen = (seen + piece)[-200:]
            if not first_step and FIRST_STEP.search(seen):
                first_step.append(time.perf_counter() - started)

    reader = threading.Thread(target=watch_progress_bar)
    reader.start()
    status = process.wait()
    total = time.perf_counter() - started
    reader.join()
    if status != 0:
        raise SystemExit("%s failed with exit status %d" % (" ".join(command), status))
    return (first_step[0] if first_step else float("nan")), total, \
        children_cpu_seconds() - cpu_before


def main():
    import numba
    import numpy
    print("tinyllm cold start: `tinyllm train --steps %d`, empty and warm Numba cache" % STEPS)
    print("  Python %s, NumPy %s, Numba %s, %d CPUs, %s"
          % (platform.python_version(), numpy.__version__, numba.__version__, os.cpu_count(),
             platform.processor() or platform.machine()))
    if hasattr(os, "getloadavg"):
        print("  load average before: %.2f" % os.getloadavg()[0])
    with tempfile.TemporaryDirectory() as folder:
        cache_dir, out_dir = Path(folder) / "numba-cache", Path(folder) / "out"
        cache_dir.mkdir()
        print("%-12s %20s %12s %18s" % ("Numba cache", "to first step (s)", "whole (s)",
                                         "processor (s)"))
        for case in ("empty", "warm"):
            first, total, cpu = time_train_run(cache_dir, out_dir)
            print("%-12s %20.1f %12.1f %18.1f" % (case, first, total, cpu), flush=True)


if __name__ == "__main__":
    main()
