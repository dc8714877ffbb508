"""Data-parallel training over MPI: ``mpiexec -n N tinyllm train ...`` or your own script.

    comm.py    the ranks and their collectives, each with a deadline (``init``, ``rank``,
               ``world_size``, ``Communicator``, ``CollectiveTimeout``)
    ddp.py     ``DistributedDataParallel``: rank 0's weights to all, gradients summed in buckets
    zero.py    ``ZeroRedundancyOptimizer``: ZeRO stage 1, the optimizer state sharded
    run.py     what ``tinyllm train`` does under mpiexec (data order, checks, checkpoints)

A script of your own (``mpiexec -n 2 python my_script.py``; it also runs as one process)::

    import numpy as np
    import tinyllm
    from tinyllm import distributed
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.optim import AdamW

    comm = distributed.init()                        # rank, world_size, collectives
    tinyllm.manual_seed(0)
    model = distributed.DistributedDataParallel(GPT(GPTConfig(block_size=8, vocab_size=16,
                                                n_layer=1, n_head=2, n_embd=16)), comm)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    data = np.random.default_rng(0).integers(0, 16, size=(4 * comm.world_size, 9))
    for step in range(3):
        mine = data[comm.rank::comm.world_size]      # this rank's shard of the batch
        _, loss = model(mine[:, :-1], mine[:, 1:])
        loss.backward()
        model.reduce_gradients()                     # mean over the ranks
        optimizer.step(); optimizer.zero_grad()
        if comm.rank == 0:
            print(step, comm.allreduce_scalar(float(loss.data)) / comm.world_size)
        else:
            comm.allreduce_scalar(float(loss.data))

mpi4py is imported only when a communicator is made (``pip install 'tinyllm[mpi]'``).
"""

from tinyllm.distributed.comm import (DEFAULT_TIMEOUT, CollectiveTimeout, Communicator, init,
                                      is_main_process, launched_rank, launched_world_size, rank,
                                      world_size)
from tinyllm.distributed.ddp import DistributedDataParallel, make_buckets
from tinyllm.distributed.run import (DataParallelRun, DistributedSetupError,
                                     abort_unless_all_failed,
                                     check_launch,
                                     check_same_everywhere, data_fingerprint)
from tinyllm.distributed.zero import ZeroRedundancyOptimizer, partition_parameters

__all__ = ["abort_unless_all_failed", "DEFAULT_TIMEOUT", "CollectiveTimeout", "Communicator", "DataParallelRun",
           "DistributedDataParallel", "DistributedSetupError", "ZeroRedundancyOptimizer",
           "check_launch", "check_same_everywhere", "data_fingerprint", "init",
           "is_main_process", "launched_rank", "launched_world_size", "make_buckets",
           "partition_parameters", "rank", "world_size"]
