"""Generation speed with the KV cache: tinyllm's GPT against transformers' GPT2LMHeadModel.

    python benchmarks/bench_generate.py              # tokens/s, then ms/token against context
    python benchmarks/bench_generate.py --threads 2 --rounds 5

Both models have GPT-2 small's configuration (12 layers, 12 heads, 768 features, vocabulary
50257, context 1024) with random weights (nothing is downloaded; transformers builds its
model from a ``GPT2Config``), float32, on the CPU, with the same number of threads
(``--threads``, default 1: NumPy's BLAS, Numba and ``torch.set_num_threads`` all get it; on a
busy machine more threads than idle cores make small products wait for the scheduler). Each generates 128 new tokens after
the same 32-token prompt, batch 1, greedily (temperature 0: no sampling cost on either side),
with its KV cache. Rounds alternate (tinyllm, transformers, tinyllm, ...) so both see the same
load from other programs; the median round is reported.

Then the time of one new token at contexts 128, 512 and 1024 (tinyllm, with the cache: the
cache is filled to the context once, and the step is timed several times at that length).
With the cache it grows only slowly with the context (O(T) attention next to the constant cost
of the weights); without it (``use_cache=False``, shown at 128 and 512) it grows with the
context itself.
"""

import argparse
import os
import statistics
import time

PARSER = argparse.ArgumentParser(description="Generation speed with the KV cache")
PARSER.add_argument("--rounds", type=int, default=3)
PARSER.add_argument("--threads", type=int, default=1)
PARSER.add_argument("--skip-reference", action="store_true")
ARGS = PARSER.parse_args()
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):          # read when NumPy, Numba and torch load
    os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm.models import GPT, GPTConfig  # noqa: E402
from tinyllm.models.sampling import CachedStepper, ContextStepper  # noqa: E402

PROMPT, NEW_TOKENS = 32, 128
CONFIG = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024)


def tinyllm_model():
    tinyllm.manual_seed(0)
    return GPT(GPTConfig(bias=True, dropout=0.0, **CONFIG)).eval()


def transformers_model(threads):
    import torch
    import transformers
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257,
                                     n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)
    return torch, transformers.GPT2LMHeadModel(config).float().eval()


def time_tinyllm(model, prompt):
    start = time.perf_counter()
    out = model.generate(prompt, NEW_TOKENS, temperature=0.0)
    elapsed = time.perf_counter() - start
    assert out.shape == (1, PROMPT + NEW_TOKENS)
    return elapsed


def time_transformers(torch, model, prompt):
    ids = torch.tensor(prompt)
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True,
                             pad_token_id=0)
        elapsed = time.perf_counter() - start
    assert out.shape == (1, PROMPT + NEW_TOKENS)
    return elapsed


def ms_per_token(model, context, repeats=5, use_cache=True):
    """The median time of one new token after ``context`` tokens."""
    ids = np.random.default_rng(1).integers(0, CONFIG["vocab_size"], (1, context))
    times = []
    with tinyllm.no_grad():
        if use_cache:                                            # the step generate() runs
            stepper = CachedStepper(model, CONFIG["block_size"])
            stepper.start(ids[:, :-1])                           # fill positions 0 .. context-2
            for _ in range(repeats):
                stepper.ids, stepper.cache.length = ids[:, :-1], context - 1   # the same step
                start = time.perf_counter()
                stepper.advance(ids[:, -1])
                times.append(time.perf_counter() - start)
        else:
            stepper = ContextStepper(model, CONFIG["block_size"])
            for _ in range(repeats):
                start = time.perf_counter()
                stepper.start(ids)
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(args):
    import numba
    threads = numba.get_num_threads()
    prompt = np.random.default_rng(0).integers(0, CONFIG["vocab_size"], (1, PROMPT))
    ours = tinyllm_model()
    reference = None
    if not args.skip_reference:
        try:
            reference = transformers_model(threads)
        except ImportError:
            print("transformers or torch is not installed: tinyllm only")
    print("GPT-2 small shapes, random weights, float32, batch 1, %d-token prompt, %d new tokens, "
          "%d threads" % (PROMPT, NEW_TOKENS, threads))
    time_tinyllm(ours, prompt)                                   # warm-up (JIT, allocations)
    if reference:
        time_transformers(*reference, prompt)
    ours_t, theirs_t = [], []
    for _ in range(args.rounds):
        ours_t.append(time_tinyllm(ours, prompt))
        if reference:
            theirs_t.append(time_transformers(*reference, prompt))
    ours_tps = NEW_TOKENS / statistics.median(ours_t)
    print("tinyllm       %7.1f tokens/s   (median of %d rounds: %s s)"
          % (ours_tps, args.rounds, ", ".join("%.2f" % t for t in ours_t)))
    if reference:
        theirs_tps = NEW_TOKENS / statistics.median(theirs_t)
        print("transformers  %7.1f tokens/s   (median of %d rounds: %s s)"
              % (theirs_tps, args.rounds, ", ".join("%.2f" % t for t in theirs_t)))
        print("ratio tinyllm / transformers: %.2fx" % (ours_tps / theirs_tps))

    print("\nms per new token (tinyllm), against the context length:")
    print("context   with cache   without cache")
    for context in (128, 512, 1024):
        cached = ms_per_token(ours, context)
        full = ms_per_token(ours, context, repeats=3, use_cache=False) if context <= 512 else None
        print("%7d   %10.1f   %s" % (context, cached,
                                     "%13.1f" % full if full is not None else "            -"))


if __name__ == "__main__":
    main(ARGS)
