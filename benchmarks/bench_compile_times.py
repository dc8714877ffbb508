"""How long each Numba kernel takes to compile during a first `tinyllm train --steps 2`.

Run it with an empty cache, so that every kernel compiles:

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/bench_compile_times.py

It listens to Numba's compile events and prints, for each kernel that starts a compilation
(the kernels it calls are counted in it), the wall-clock seconds and the processor seconds
(user + system, from resource.getrusage) the compilation took. The compiler runs on one
thread, so on a loaded machine the processor seconds stay close to a quiet machine's wall-clock
seconds; the last lines give each kernel's compiled type signatures.
"""

import os
import resource
import tempfile
import time

from numba.core import event

from tinyllm.cli import main
from tinyllm.kernels import compilation


def processor_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CompileTimer(event.Listener):
    """Records (kernel, wall seconds, processor seconds) of each outermost compilation."""

    def __init__(self):
        self.rows, self.depth = [], 0

    def on_start(self, ev):
        if self.depth == 0:
            self.started = (time.perf_counter(), processor_seconds())
            self.function = ev.data["dispatcher"].py_func
        self.depth += 1

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:
            name = self.function.__module__ + "." + self.function.__name__
            self.rows.append((name, time.perf_counter() - self.started[0],
                              processor_seconds() - self.started[1]))


def report_compile_times():
    timer = CompileTimer()
    with event.install_listener("numba:compile", timer):
        main(["train", "--steps", "2", "--out", tempfile.mkdtemp(), "--overwrite"])
    print("1-minute load average after the run: %.2f" % os.getloadavg()[0])
    for name, wall, cpu in timer.rows:
        print("%-66s wall %6.2f s  processor %6.2f s" % (name, wall, cpu))
    print("all compilations: processor %.2f s" % sum(row[2] for row in timer.rows))
    for names in compilation.KERNELS.values():
        for name in names:
            print(name, [str(s) for s in compilation.dispatcher(name).signatures])


if __name__ == "__main__":
    report_compile_times()
