"""One of the other processes of ``compilation.compile_kernels``.

    python -m tinyllm.kernels.compile_worker FOLDER DTYPE NAME...

compiles, for DTYPE data, each kernel NAME that no other process has claimed in FOLDER, and
prints "start NAME" and "done NAME SECONDS" as it goes; Numba's on-disk cache hands the
compiled code to the process that started it.
"""

import sys

import numpy as np

from tinyllm.kernels import compilation


def main(argv):
    folder, dtype, names = argv[0], np.dtype(argv[1]), argv[2:]
    compilation.compile_claimed(names, dtype, folder, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main(sys.argv[1:])
