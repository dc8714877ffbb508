"""Tokenizer speed: tinyllm's BPETokenizer against tiktoken (encoding) and Hugging Face's
tokenizers (training), on the same machine in the same run.

    python benchmarks/bench_tokenizer.py [--megabytes 5] [--vocab-size 10000] [--repeats 3]

Text: the bundled corpora, no download: pydoc's help texts followed by the standard library's
source, cut to ``--megabytes``. Encoding: one tokenizer is trained with tinyllm on the pydoc text,
and a ``tiktoken.Encoding`` is built from the SAME vocabulary and merges (mergeable_ranks = the
token ids, which follow the merge order), so both produce the same ids (checked) and nothing is
downloaded. Both run on one thread; each time is the median of ``--repeats`` runs, tinyllm
starting from an empty cache of words every time. Training: ``--vocab-size`` ids learned from the
text's lines by tinyllm and by ``tokenizers``' BpeTrainer (one thread: RAYON_NUM_THREADS=1).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")      # tokenizers' encode/training threads

from tinyllm.data import load_corpus                              # noqa: E402
from tinyllm.data.tokenizers.gpt2 import GPT2_SPLIT_PATTERN, BPETokenizer  # noqa: E402


def median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def benchmark_text(megabytes):
    pydoc = load_corpus("pydoc")
    code = load_corpus("stdlib", max_bytes=int(megabytes * 1_000_000))
    data = (pydoc + code).encode("utf-8")[:int(megabytes * 1_000_000)]
    return pydoc, data.decode("utf-8", errors="ignore")


def encoding(text, tok, repeats):
    import tiktoken
    ordinary = {token: i for i, token in tok.vocab.items()}
    encoder = tiktoken.Encoding("tinyllm_bench", pat_str=GPT2_SPLIT_PATTERN,
                                mergeable_ranks=ordinary, special_tokens=tok.special_tokens)
    size = len(text.encode("utf-8")) / 1e6

    def ours():
        tok._cache.clear()
        return tok.encode(text, allowed_special="none")

    t_tiktoken, ids_tiktoken = median_time(lambda: encoder.encode_ordinary(text), repeats)
    t_ours, ids_ours = median_time(ours, repeats)
    assert ids_ours == ids_tiktoken, "tinyllm and tiktoken disagree"
    print("encoding %.2f MB (%d tokens, %.2f bytes/token), median of %d, one thread"
          % (size, len(ids_ours), size * 1e6 / len(ids_ours), repeats))
    print("  tiktoken             %6.2f MB/s" % (size / t_tiktoken))
    print("  tinyllm BPETokenizer %6.2f MB/s" % (size / t_ours))
    print("  tinyllm / tiktoken   %6.2f   (target >= 0.2)" % (t_tiktoken / t_ours))


def training(text, vocab_size):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    lines = text.splitlines(keepends=True)          # the same documents for both
    start = time.perf_counter()
    ours = BPETokenizer.train_from_iterator(lines, vocab_size=vocab_size,
                                            special_tokens=["<|endoftext|>"])
    t_ours = time.perf_counter() - start

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    start = time.perf_counter()
    hf.train_from_iterator(lines, trainer)
    t_hf = time.perf_counter() - start
    print("training %d ids (%d merges) on %.2f MB, one run each"
          % (vocab_size, len(ours.merges), len(text.encode("utf-8")) / 1e6))
    print("  tokenizers (Rust)    %7.2f s" % t_hf)
    print("  tinyllm BPETokenizer %7.2f s" % t_ours)
    print("  tinyllm / tokenizers %7.1fx slower" % (t_ours / t_hf))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pydoc, text = benchmark_text(args.megabytes)
    tok = BPETokenizer.train_from_iterator([pydoc], vocab_size=args.vocab_size,
                                           special_tokens=["<|endoftext|>"])
    print("load average (1 min): %.2f" % os.getloadavg()[0])
    encoding(text, tok, args.repeats)
    training(text, args.vocab_size)


if __name__ == "__main__":
    main()
