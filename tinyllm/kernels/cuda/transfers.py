"""Copies between host memory and the GPU, counted.

tinyllm's tensors live in host (CPU) memory. So every call of a "cuda" kernel first copies its
inputs to the GPU's memory ("host to device") and afterwards its results back ("device to
host"), over the PCIe bus: about 25 GB/s on PCIe 4.0 x16, against 2-3 TB/s between an H100's
cores and its own memory. For a 1024 x 1024 float32 product the two 4 MiB inputs and the 4 MiB
result take about 0.5 ms on the bus; the product itself (2.1 GFLOP) takes well under 0.1 ms on
such a GPU. Counting the copies makes this visible::

    with tinyllm.use_backend("cuda"), count_transfers() as transfers:
        y = x @ w
    print(transfers)    # 2 copies to the GPU (... bytes), 1 back (... bytes)

The host functions of every ``cuda`` kernel module (``cuda.matmul``, ``cuda.attention``, ...)
make every copy through ``to_device`` and ``to_host`` below, and a benchmark that times a kernel
alone (``benchmarks/bench_kernels.py``) makes its copies before the timed region starts.
"""

import contextlib
from dataclasses import dataclass

from numba import cuda


@dataclass
class TransferCount:
    """Copies made while a ``count_transfers`` block ran, and their sizes in bytes."""
    to_device: int = 0
    bytes_to_device: int = 0
    to_host: int = 0
    bytes_to_host: int = 0

    def __str__(self):
        return ("%d copies to the GPU (%d bytes), %d back (%d bytes)"
                % (self.to_device, self.bytes_to_device, self.to_host, self.bytes_to_host))


_active = []            # the counters of the count_transfers blocks that are running


@contextlib.contextmanager
def count_transfers():
    """Count the copies between host and GPU made inside the block (nested blocks each count
    the copies made inside them)."""
    counter = TransferCount()
    _active.append(counter)
    try:
        yield counter
    finally:
        _active.remove(counter)


def to_device(array):
    """``cuda.to_device(array)``, counted: a new device array holding a copy of ``array``."""
    for counter in _active:
        counter.to_device += 1
        counter.bytes_to_device += array.nbytes
    return cuda.to_device(array)


def to_host(device_array, out=None):
    """``device_array.copy_to_host(out)``, counted: the GPU array's numbers in host memory."""
    for counter in _active:
        counter.to_host += 1
        counter.bytes_to_host += device_array.nbytes
    if out is None:
        return device_array.copy_to_host()
    return device_array.copy_to_host(out)
