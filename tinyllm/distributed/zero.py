"""ZeRO stage 1 (Rajbhandari et al., 2020): shard the optimizer's state over the ranks.

In plain data parallelism every rank keeps AdamW's two moments for every parameter: with P
parameters in float32 that is 8P bytes per rank, twice the weights themselves. But the ranks
all compute the same update from the same (all-reduced) gradients, so each can instead own
1/N of the parameters: it keeps the moments of those only, updates those only, and then every
rank gathers the updated parameters of every other (an all-gather of P numbers). Optimizer
memory per rank falls from 8P to about 8P / N bytes; the results stay the same, since each
parameter is still updated by the same formula from the same gradient.

The parameters are assigned whole, largest first, each to the rank that owns the fewest
numbers so far (PyTorch's ``ZeroRedundancyOptimizer`` partitions the same way).
"""

import numpy as np

from tinyllm.distributed.comm import init


def partition_parameters(params, world_size):
    """``owner[i]``, the rank that updates ``params[i]``: largest first, to the least loaded."""
    load = [0] * world_size
    owner = [0] * len(params)
    for i in sorted(range(len(params)), key=lambda i: (-params[i].data.size, i)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = rank
        load[rank] += params[i].data.size
    return owner


def state_nbytes(optimizer):
    """Bytes held in the arrays of ``optimizer.state`` (Adam: the moments m and v)."""
    return sum(value.nbytes for state in optimizer.state.values() for value in state.values()
               if isinstance(value, np.ndarray))


class ZeroRedundancyOptimizer:
    """Wrap ``optimizer`` (any tinyllm optimizer) so that this rank updates only its share.

    ``step()`` runs the optimizer on the parameters this rank owns (the others' gradients are
    hidden from it, so it neither updates them nor creates their state) and then all-gathers
    the parameters. ``param_groups`` is the wrapped optimizer's, so learning-rate schedulers
    work unchanged. ``consolidate_state_dict()`` (a collective) then ``state_dict()`` give the
    whole state in the plain optimizer's layout, so checkpoints look the same with and without
    ZeRO; ``load_state_dict`` keeps this rank's share of such a state.
    """

    def __init__(self, optimizer, comm=None):
        self.optimizer = optimizer
        self.comm = comm if comm is not None else init()
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.owner = partition_parameters(self.params, self.comm.world_size)
        self.counts = [sum(p.data.size for p, r in zip(self.params, self.owner) if r == rank)
                       for rank in range(self.comm.world_size)]
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError("ZeroRedundancyOptimizer: the parameters mix dtypes %s"
                             % sorted(str(d) for d in dtypes))
        self.dtype = dtypes.pop()
        self._consolidated = None
        self._keep_own_state()

    def _keep_own_state(self):
        """Drop the state of parameters other ranks own (e.g. after loading a checkpoint)."""
        index = {id(p): i for i, p in enumerate(self.params)}
        self.optimizer.state = {p: s for p, s in self.optimizer.state.items()
                                if self.mine(index[id(p)])}

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def mine(self, index):
        return self.owner[index] == self.comm.rank

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)

    def step(self):
        """Update this rank's parameters, then gather everyone's updated parameters."""
        hidden = {}
        for i, p in enumerate(self.params):
            if not self.mine(i):
                hidden[i], p.grad = p.grad, None
        try:
            self.optimizer.step()
        finally:
            for i, grad in hidden.items():
                self.params[i].grad = grad
        self.all_gather_parameters()

    def all_gather_parameters(self):
        """Every rank's parameters become the values their owners computed."""
        local = [p.data.reshape(-1) for i, p in enumerate(self.params) if self.mine(i)]
        local = np.concatenate(local) if local else np.zeros(0, dtype=self.dtype)
        joined = self.comm.allgatherv(local.astype(self.dtype, copy=False), self.counts,
                                      "all-gather of the parameters (ZeRO)")
        offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(int)
        for rank in range(self.comm.world_size):
            start = offsets[rank]
            for i, p in enumerate(self.params):
                if self.owner[i] == rank:
                    p.data[...] = joined[start:start + p.data.size].reshape(p.shape)
                    start += p.data.size

    def state_nbytes(self):
        """Bytes of optimizer state on this rank (its share only)."""
        return state_nbytes(self.optimizer)

    def consolidate_state_dict(self):
        """Gather the whole optimizer state (every rank's share) on every rank, for the next
        ``state_dict()``; a collective, so every rank calls it (as in PyTorch)."""
        own = self.optimizer.state_dict()
        shares = self.comm.allgather_object(own["state"], "all-gather of the optimizer state")
        state = {}
        for share in shares:
            state.update(share)
        self._consolidated = {"state": dict(sorted(state.items())),
                              "param_groups": own["param_groups"]}

    def state_dict(self):
        """The whole state gathered by the last ``consolidate_state_dict()``, in the plain
        optimizer's layout (what a checkpoint saves)."""
        if self._consolidated is None:
            raise RuntimeError("ZeroRedundancyOptimizer.state_dict: call "
                               "consolidate_state_dict() on every rank first")
        saved, self._consolidated = self._consolidated, None
        return saved

    def load_state_dict(self, state_dict):
        """Load a whole state (as ``consolidated_state_dict`` or a plain optimizer saves it)
        and keep this rank's share."""
        self.optimizer.load_state_dict(state_dict)
        self._keep_own_state()
