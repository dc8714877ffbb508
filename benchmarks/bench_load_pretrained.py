"""How long loading a GPT-2 124M-shaped model from a Hugging Face folder takes: tinyllm's
``from_pretrained`` against ``transformers``' ``GPT2LMHeadModel.from_pretrained`` on the same
folder, in the same run.

The model has GPT-2 small's shape (12 layers, 12 heads, 768 features, vocabulary 50257,
context 1024; 124M parameters, 498 MB of float32) with random weights: tinyllm builds it and
writes it with ``save_pretrained`` (config.json + model.safetensors) into a temporary folder;
nothing is downloaded. Each loader runs ``REPEATS`` times (the file stays in the page cache
after the first read, as for a model loaded again); the script prints every time and the
medians, and the ratio.

    python benchmarks/bench_load_pretrained.py           # from the repository root
"""

import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

from tinyllm.models import GPT, GPTConfig, from_pretrained
from tinyllm.nn import init

REPEATS = 3
GPT2_SMALL = GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768,
                       activation="gelu_tanh")


def timed(load, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model = load()
        times.append(time.perf_counter() - started)
        del model
    return times


def main():
    folder = tempfile.mkdtemp(prefix="tinyllm-gpt2-")
    with init.no_init():
        model = GPT(GPT2_SMALL)
    rng = np.random.default_rng(0)
    for _, param in model.named_parameters():      # random weights, fast: float32 normals
        param.data[...] = rng.standard_normal(param.shape, dtype=np.float32) * 0.02
    model.save_pretrained(folder)
    size = os.path.getsize(os.path.join(folder, "model.safetensors"))
    del model
    print("GPT-2 124M shape, %.0f MB of safetensors in %s" % (size / 1e6, folder))
    print("machine: %s, %d CPUs, Python %s, load average %s"
          % (platform.processor() or platform.machine(), os.cpu_count(),
             platform.python_version(), " ".join("%.1f" % x for x in os.getloadavg())))

    ours = timed(lambda: from_pretrained(folder))
    print("tinyllm from_pretrained:      %s  median %.2f s"
          % (" ".join("%.2f" % t for t in ours), statistics.median(ours)))
    try:
        import torch
        import transformers
    except ImportError:
        print("transformers / torch not installed: no reference time")
        return 0
    torch.set_num_threads(os.cpu_count())
    theirs = timed(lambda: transformers.GPT2LMHeadModel.from_pretrained(folder))
    print("transformers from_pretrained: %s  median %.2f s"
          % (" ".join("%.2f" % t for t in theirs), statistics.median(theirs)))
    print("ratio (transformers / tinyllm): %.2f" % (statistics.median(theirs)
                                                    / statistics.median(ours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
