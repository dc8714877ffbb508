"""What ``tinyllm train`` needs to train on the N ranks of ``mpiexec -n N``.

The data order is that of one process with ``--grad-accum G``: every rank draws the same G
micro-batches from tinyllm's generator (all ranks seed it alike and draw alike, so they stay
in step) and keeps its own G / N of them, rank r the micro-batches r * G/N to (r+1) * G/N - 1.
Each rank scales its losses by 1 / G, the gradients are summed over the ranks, and the update
is then exactly the one of the single process, up to the order of the additions. (nanoGPT's
DDP mode differs: each rank seeds its generator with seed + rank and draws batches of its own,
so its runs depend on the number of ranks.) Dropout masks are drawn alike on all ranks, so
runs with dropout match a single process only in distribution.
"""

import hashlib
import json

import numpy as np

from tinyllm.distributed import comm as _comm
from tinyllm.distributed.comm import init, launched_world_size
from tinyllm.distributed.ddp import DistributedDataParallel
from tinyllm.distributed.zero import ZeroRedundancyOptimizer


class DistributedSetupError(ValueError):
    """A setting that cannot work on this many ranks; every rank raises the same one."""


def abort_unless_all_failed(error, code):
    """After ``error`` ended this rank's work: if other ranks may still wait in a collective
    for it, end the whole job (MPI_Abort) instead of letting them hang. Errors that every rank
    raises alike (``DistributedSetupError``, or any error before MPI started) end normally."""
    world = _comm._world
    if world is None or world.world_size == 1 or isinstance(error, DistributedSetupError):
        return
    world.abort(code)


def check_launch(config, world_size=None):
    """Raise DistributedSetupError for settings that cannot work with ``world_size`` ranks
    (default: as many as mpiexec started), before anything is loaded or built."""
    n = launched_world_size() if world_size is None else world_size
    if config.zero not in (0, 1):
        raise DistributedSetupError("--zero %r: tinyllm implements ZeRO stage 1 only (0: off, "
                                    "1: shard the optimizer state)" % (config.zero,))
    if config.zero and n == 1:
        raise DistributedSetupError("--zero 1 shards the optimizer state over MPI ranks, but "
                                    "this is a single process; launch with mpiexec -n N "
                                    "tinyllm train ... (N >= 2), or drop --zero")
    if config.grad_accum % n != 0:
        raise DistributedSetupError(
            "--grad-accum %d cannot be split over %d ranks: it counts the micro-batches of one "
            "update summed over all ranks (as in nanoGPT), so it must be a multiple of the "
            "world size; use --grad-accum %d, or mpiexec -n with a divisor of %d"
            % (config.grad_accum, n, n * max(1, config.grad_accum // n), config.grad_accum))
    if not config.comm_timeout > 0:
        raise DistributedSetupError("--comm-timeout must be positive, got %r"
                                    % (config.comm_timeout,))


def fingerprint(*parts):
    """A SHA-256 hex digest of arrays (dtype, shape, bytes) and other values (their repr)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(("%s%s" % (part.dtype, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def data_fingerprint(task):
    """The fingerprint of a task's training and held-out data (whichever of ``train_ids``,
    ``val_ids``, ``train_examples``, ``val_examples``, ``val_pairs`` it has)."""
    names = ("train_ids", "val_ids", "train_examples", "val_examples", "val_pairs")
    return fingerprint(*[getattr(task, name) for name in names if hasattr(task, name)])


def check_same_everywhere(comm, settings, data_hash):
    """Raise DistributedSetupError (on every rank) unless all ranks have the same settings
    (a dict) and data fingerprint; the message names the ranks and settings that differ."""
    views = comm.allgather_object((json.dumps(settings, sort_keys=True), data_hash),
                                  "the check that all ranks have the same config and data")
    ours, our_data = views[0]
    config0 = json.loads(ours)
    for r, (text, data) in enumerate(views[1:], start=1):
        if text != ours:
            other = json.loads(text)
            keys = sorted(k for k in set(config0) | set(other) if config0.get(k) != other.get(k))
            raise DistributedSetupError(
                "the ranks were started with different settings: %s; every rank must run the "
                "same command" % "; ".join("rank 0 has %s=%r, rank %d has %r"
                                           % (k, config0.get(k), r, other.get(k)) for k in keys))
        if data != our_data:
            raise DistributedSetupError(
                "rank %d read other data than rank 0 (corpus %r tokenizes differently, data "
                "fingerprints %s... and %s...): give every rank the same corpus file"
                % (r, config0.get("corpus"), our_data[:12], data[:12]))


class DataParallelRun:
    """The distributed parts of one training run on ``comm.world_size`` ranks.

    config: needs ``grad_accum``, ``zero``, ``bucket_mb``, ``overlap``, ``comm_timeout`` and
    ``to_dict()``. After construction: ``ddp`` (the wrapped model), ``optimizer`` (the plain
    one, or its ZeRO wrapper), ``rank``, ``world_size``, ``is_main``.
    """

    def __init__(self, config, model, optimizer, task):
        check_launch(config)
        self.comm = init(config.comm_timeout)
        self.rank, self.world_size = self.comm.rank, self.comm.world_size
        self.is_main = self.rank == 0
        check_launch(config, self.world_size)
        check_same_everywhere(self.comm, config.to_dict(), data_fingerprint(task))
        self.ddp = DistributedDataParallel(model, self.comm, config.bucket_mb,
                                           overlap=bool(config.overlap))
        self.optimizer = ZeroRedundancyOptimizer(optimizer, self.comm) if config.zero \
            else optimizer
        self.zero = bool(config.zero)
        self.micro_batches = config.grad_accum // self.world_size

    def shard(self, batches):
        """This rank's part of the micro-batches every rank drew (see the module docstring)."""
        k = self.micro_batches
        return batches[self.rank * k:(self.rank + 1) * k]

    def prepare_checkpoint(self):
        """Before rank 0 saves: under ZeRO, gather the optimizer state (every rank calls it)."""
        if isinstance(self.optimizer, ZeroRedundancyOptimizer):
            self.optimizer.consolidate_state_dict()

    def report_optimizer_memory(self, log):
        """Log the optimizer state's bytes on each rank (a collective; call on every rank)."""
        nbytes = sum(v.nbytes for s in self.optimizer_state().values() for v in s.values()
                     if isinstance(v, np.ndarray))
        per_rank = self.comm.allgather_object(nbytes, "all-gather of memory figures")
        log("data parallel over %d ranks%s; optimizer state per rank: %s"
            % (self.world_size, ", ZeRO stage 1" if self.zero else "",
               ", ".join("rank %d %.2f MB" % (r, b / 1e6) for r, b in enumerate(per_rank))))
        return per_rank

    def optimizer_state(self):
        """This rank's optimizer state: {parameter: {name: value}}."""
        inner = self.optimizer.optimizer if self.zero else self.optimizer
        return inner.state
