"""The processes of a data-parallel run and the collectives between them, over MPI.

``mpiexec -n N python script.py`` starts N copies of a program; each is a *rank* (0 .. N-1)
of a *world* of N. They share nothing but messages. tinyllm needs four collectives:

    allreduce_(x)        every rank ends with x_0 + x_1 + ... + x_{N-1}    (gradients)
    broadcast_(x)        every rank ends with rank 0's x                   (initial weights)
    allgatherv(x)        every rank ends with [x_0, x_1, ...] concatenated (ZeRO's parameters)
    allgather_object(o)  every rank ends with the list [o_0, ..., o_{N-1}] (config checks)

Every one is started non-blocking (``Iallreduce``, ...) and then polled until it completes or a
deadline passes (``timeout`` seconds, default 300). A blocking ``Allreduce`` would wait forever
for a rank that died or hangs; here the ranks that wait raise ``CollectiveTimeout`` naming the
collective, and the command line aborts the whole job with that message.

mpi4py is imported only when a world of more than one process is asked for, so tinyllm runs
without it; ``launched_world_size()`` reads the launcher's environment (MPICH's ``PMI_SIZE``,
Open MPI's ``OMPI_COMM_WORLD_SIZE``) without importing anything.
"""

import os
import pickle
import sys
import time

import numpy as np

DEFAULT_TIMEOUT = 300.0         # seconds a rank waits in a collective for the others
POLL_SECONDS = 1e-4             # sleep between two tests of a pending collective

_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")

MPI_MISSING = ("this needs mpi4py and an MPI library: pip install 'tinyllm[mpi]' (mpi4py and "
               "the mpich wheel), then launch with mpiexec -n N ...")


class CollectiveTimeout(RuntimeError):
    """A collective did not complete in time: some rank died, hangs or took another path."""


def _read_env(names, default):
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def launched_world_size():
    """The number of processes mpiexec started (1 when not launched by mpiexec)."""
    return _read_env(_SIZE_VARIABLES, 1)


def launched_rank():
    """This process's rank according to the launcher (0 when not launched by mpiexec)."""
    return _read_env(_RANK_VARIABLES, 0)


def is_main_process():
    """True on rank 0 (and in a program not launched by mpiexec): the one that prints."""
    return launched_rank() == 0


def import_mpi():
    """mpi4py's ``MPI`` module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("tinyllm.distributed: %s (%s)" % (MPI_MISSING, error)) from None
    return MPI


class Communicator:
    """The world of ranks and its collectives (all of them sums over float arrays).

    comm: an mpi4py communicator (default ``MPI.COMM_WORLD``). timeout: seconds to wait in a
    collective before raising ``CollectiveTimeout``.
    """

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT):
        self.MPI = import_mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = timeout
        self.seconds = 0.0          # time spent waiting in collectives (communication share)

    def __repr__(self):
        return "Communicator(rank=%d, world_size=%d)" % (self.rank, self.world_size)

    # ----- waiting with a deadline ---------------------------------------------------------
    def wait(self, request, what):
        """Poll ``request`` until it completes; raise CollectiveTimeout after ``timeout`` s."""
        started = time.perf_counter()
        deadline = started + self.timeout
        while not request.Test():
            if time.perf_counter() > deadline:
                raise CollectiveTimeout(
                    "rank %d of %d waited %g s in %s, but not every rank took part: a rank "
                    "died, hangs, or runs different code (raise the limit with --comm-timeout "
                    "if a rank is only slow, e.g. evaluating)"
                    % (self.rank, self.world_size, self.timeout, what))
            # Yield the core at once for the first millisecond (short messages), then sleep.
            time.sleep(0 if time.perf_counter() - started < 1e-3 else POLL_SECONDS)
        self.seconds += time.perf_counter() - started

    # ----- the collectives -----------------------------------------------------------------
    def iallreduce_(self, array):
        """Start summing the contiguous ``array`` over the ranks, in place; returns the
        request (finish it with ``wait``)."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def allreduce_(self, array, what="allreduce"):
        """Sum ``array`` over the ranks, in place, and return it."""
        self.wait(self.iallreduce_(array), what)
        return array

    def allreduce_scalar(self, value):
        """The sum over the ranks of a float."""
        return float(self.allreduce_(np.array([value], dtype=np.float64), "allreduce of a "
                                     "scalar")[0])

    def broadcast_(self, array, root=0, what="broadcast"):
        """Overwrite the contiguous ``array`` with rank ``root``'s, in place."""
        self.wait(self.comm.Ibcast(array, root=root), what)
        return array

    def allgatherv(self, local, counts, what="allgather"):
        """Concatenate every rank's 1-D ``local`` (rank r holds ``counts[r]`` items)."""
        out = np.empty(int(sum(counts)), dtype=local.dtype)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
        request = self.comm.Iallgatherv(local, [out, (list(counts), list(offsets))])
        self.wait(request, what)
        return out

    def allgather_object(self, obj, what="allgather of objects"):
        """The list of every rank's picklable ``obj`` (two collectives: sizes, then bytes)."""
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        sizes = np.zeros(self.world_size, dtype=np.int64)
        sizes[self.rank] = data.size
        self.allreduce_(sizes, what + " (sizes)")
        joined = self.allgatherv(data, sizes.tolist(), what)
        ends = np.cumsum(sizes)
        return [pickle.loads(joined[end - size:end].tobytes()) for size, end in zip(sizes, ends)]

    def barrier(self, what="barrier"):
        self.wait(self.comm.Ibarrier(), what)

    def abort(self, code=1, drain_seconds=0.5):
        """End every rank of the job (the way out while a collective is pending).

        ``MPI_Abort`` kills the processes at once, and what a rank printed just before may
        still sit in ``mpiexec``'s forwarding of its output; flushing and waiting
        ``drain_seconds`` lets the message that says why reach the terminal."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(drain_seconds)
        self.comm.Abort(code)


_world = None


def init(timeout=DEFAULT_TIMEOUT):
    """The world's ``Communicator`` (created on the first call; later calls set the timeout).
    Works in a single process too (a world of 1), if mpi4py is installed."""
    global _world
    if _world is None:
        _world = Communicator(timeout=timeout)
    _world.timeout = timeout
    return _world


def world_size():
    """The number of ranks: from the communicator if ``init`` ran, else from the launcher."""
    return _world.world_size if _world is not None else launched_world_size()


def rank():
    """This process's rank: from the communicator if ``init`` ran, else from the launcher."""
    return _world.rank if _world is not None else launched_rank()
