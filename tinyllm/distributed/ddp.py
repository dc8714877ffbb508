"""Data parallelism: every rank holds the whole model, reads its own part of the batch, and the
gradients are summed over the ranks before each update (PyTorch's ``DistributedDataParallel``).

With N ranks each computing the gradient g_r of its own mean loss over b windows, the mean
(1/N) sum_r g_r is the gradient of the mean loss over all N * b windows: the same number that
one process gets by accumulating N micro-batches of b windows (``--grad-accum N``). So N ranks
with identical weights, given the same update, keep identical weights, step after step.

Gradients travel in *buckets*: the .grad arrays of consecutive parameters are copied into one
flat contiguous buffer of about ``bucket_mb`` megabytes, which is summed with one all-reduce.
One call per parameter would pay the latency (alpha) of the network once per tensor; one bucket
for everything could not start before the whole backward has finished (see ``overlap``).

With ``overlap=True`` a bucket's all-reduce starts during backward, as soon as the last of its
parameters has received its gradient (the autograd engine's post-accumulate-grad hook), and
``reduce_gradients`` only waits for what is still in flight. Buckets are filled in reverse
parameter order, the order in which backward produces the gradients, as PyTorch does.
"""

import numpy as np

from tinyllm.distributed.comm import init

DEFAULT_BUCKET_MB = 25.0        # PyTorch's default bucket_cap_mb


def make_buckets(params, bucket_mb):
    """Split ``params`` (in order) into lists whose gradients hold at most ``bucket_mb`` MB
    each (a parameter larger than that gets a bucket of its own)."""
    if not bucket_mb > 0:
        raise ValueError("DistributedDataParallel: bucket_mb must be positive, got %r"
                         % (bucket_mb,))
    limit = bucket_mb * 2 ** 20
    buckets, current, size = [], [], 0
    for p in params:
        nbytes = p.data.nbytes
        if current and size + nbytes > limit:
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        buckets.append(current)
    return buckets


class Bucket:
    """Parameters whose gradients are summed in one all-reduce of one flat buffer."""

    def __init__(self, params):
        self.params = params
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) != 1:
            raise ValueError("DistributedDataParallel: a bucket mixes dtypes %s" % sorted(
                str(d) for d in dtypes))
        self.sizes = [p.data.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.buffer = np.zeros(int(self.offsets[-1]), dtype=dtypes.pop())
        self.had_grad = [False] * len(params)
        self.request = None
        self.ready = 0              # parameters whose gradient is final (overlap)

    def flatten(self):
        """Copy the gradients into the buffer (a missing .grad counts as zeros)."""
        for i, p in enumerate(self.params):
            part = self.buffer[self.offsets[i]:self.offsets[i + 1]]
            self.had_grad[i] = p.grad is not None
            if p.grad is None:
                part[:] = 0
            else:
                part[:] = p.grad.reshape(-1)

    def unflatten(self, scale):
        """Write the summed buffer, times ``scale``, back into the parameters' .grad."""
        if scale != 1:
            self.buffer *= scale
        for i, p in enumerate(self.params):
            if self.had_grad[i]:
                p.grad = self.buffer[self.offsets[i]:self.offsets[i + 1]].reshape(p.shape).copy()


class DistributedDataParallel:
    """Wrap ``module`` for data-parallel training over the ranks of ``comm``.

    At construction rank 0's parameters (and buffers) are broadcast to every rank, so all ranks
    start from the same weights. Use it like the module (``ddp(x, y)`` calls it); after
    ``loss.backward()`` call ``ddp.reduce_gradients()``, which replaces every .grad by its
    mean over the ranks (``average=False``: its sum), then step the optimizer as usual.

    Differences from PyTorch: the reduction is a separate call (PyTorch hides it in backward's
    hooks), and without ``overlap`` it runs after backward; ``no_sync`` is not needed because
    gradient accumulation simply calls ``reduce_gradients`` once, after the last micro-batch.

    bucket_mb: bucket size in megabytes. overlap: start each bucket's all-reduce during
    backward (call ``prepare_overlap()`` before the backward whose gradients are final).
    """

    def __init__(self, module, comm=None, bucket_mb=DEFAULT_BUCKET_MB, overlap=False):
        self.module = module
        self.comm = comm if comm is not None else init()
        params = [p for p in module.parameters() if p.requires_grad]
        self.broadcast_parameters()
        # Reverse order: the last layers' gradients are ready first in backward.
        groups = {}
        for p in reversed(params):
            groups.setdefault(p.data.dtype, []).append(p)
        self.buckets = [Bucket(ps) for group in groups.values()
                        for ps in make_buckets(group, bucket_mb)]
        self.overlap = overlap
        self._armed = False
        if overlap:
            self._bucket_of = {}
            for bucket in self.buckets:
                for p in bucket.params:
                    self._bucket_of[id(p)] = bucket
                    p.register_post_accumulate_grad_hook(self._gradient_ready)
            self._expected = None       # gradient arrivals per parameter in one backward

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def parameters(self):
        return self.module.parameters()

    def broadcast_parameters(self):
        """Overwrite every rank's parameters and buffers with rank 0's."""
        for name, value in self.module.state_dict().items():
            array = np.ascontiguousarray(value)
            self.comm.broadcast_(array, what="broadcast of %s" % name)
            value[...] = array

    # ----- reduction -----------------------------------------------------------------------
    def reduce_gradients(self, average=True):
        """Sum every parameter's .grad over the ranks (divided by the world size when
        ``average``), in buckets; every rank ends with the same gradients."""
        scale = 1.0 / self.comm.world_size if average else 1.0
        if not self._armed:
            for bucket in self.buckets:
                bucket.flatten()
                bucket.request = self.comm.iallreduce_(bucket.buffer)
        for i, bucket in enumerate(self.buckets):
            if bucket.request is None:          # overlap: a bucket no hook started
                bucket.flatten()
                bucket.request = self.comm.iallreduce_(bucket.buffer)
            self.comm.wait(bucket.request, "all-reduce of gradient bucket %d of %d"
                           % (i + 1, len(self.buckets)))
            bucket.request = None
            bucket.unflatten(scale)
        if self._armed and self._expected is None:
            self._expected = dict(self._arrivals)
        self._armed = False

    # ----- overlap with backward -----------------------------------------------------------
    def prepare_overlap(self):
        """Before the last micro-batch's backward: let the hooks start the all-reduces.

        A parameter's gradient may arrive in several parts (a tied weight gets two), so the
        first overlapped backward only counts the parts of each; from the next one on, a
        bucket starts when all parts of all its gradients have arrived."""
        if not self.overlap:
            return
        self._armed = True
        self._arrivals = {}
        for bucket in self.buckets:
            bucket.ready = 0

    def _gradient_ready(self, param):
        """Hook: ``param.grad`` has received one more contribution in this backward."""
        if not self._armed:
            return
        key = id(param)
        self._arrivals[key] = self._arrivals.get(key, 0) + 1
        if self._expected is None or self._arrivals[key] != self._expected.get(key, 1):
            return                      # still learning the counts, or more is to come
        bucket = self._bucket_of[key]
        bucket.ready += 1
        if bucket.ready == len(bucket.params) and bucket.request is None:
            bucket.flatten()
            bucket.request = self.comm.iallreduce_(bucket.buffer)
