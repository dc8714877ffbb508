"""``tinyllm serve`` under load, on loopback: continuous batching against one request at a time.

    python benchmarks/bench_serve.py             # 16 clients, about a minute in all
    python benchmarks/bench_serve.py --quick     # fewer requests

The model is a GPT with random weights (what it writes does not matter here, only how long it
takes): n_layer 2, n_head 2, n_embd 64, block_size 256 (so that a
long request of 200 new tokens stays within the context and its keys and values stay cached),
a character vocabulary. The same
checkpoint is served twice, each time by a server in a subprocess of its own (so that the
clients' threads do not share its interpreter lock):

- "batched": ``--max-batch 16``, the default: requests join one forward pass per token;
- "one at a time": ``--no-batching`` (``--max-batch 1``): requests run in order of arrival.

Against each, 16 client threads send their requests one after another, all 16 at once:
8 "long" clients send ``--long-requests`` requests of 200 new tokens each; 8 "short" clients
send ``--short-requests`` requests of 1 to 8 new tokens (drawn from a seeded generator, the
same for both servers). Sampling with temperature 0.8, a seed per request. A client stops
sending when ``--max-seconds`` have passed (the figures then say how many requests ran).

Printed per server: throughput (new tokens of all requests / the wall time from the first
request to the last reply), the latency of short requests (median p50 and p99, and of long
ones), and the ratios batched / one at a time. Before the load, 128 clients send GET /health
at the same moment to the batched server (the listen backlog's test).

The server runs with ``--threads`` BLAS and Numba threads (default 1: on a machine shared with
other work, a BLAS product split over 2 threads waits for whichever is descheduled, and one
(64, 64) x (64, 192) product took 43 ms instead of well under 1 ms on a loaded 2-core machine).
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TEXT = ("def add(a, b):\n    return a + b\n\nclass Point:\n    x: int = 0\n    y: int = 0\n"
        "for i in range(10):\n    print(i)\n")
CONFIG = dict(block_size=256, n_layer=2, n_head=2, n_embd=64)    # a long request fits its context
LONG_TOKENS = 200


def write_checkpoint(path):
    import tinyllm
    from tinyllm.data import CharTokenizer
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.training import save_checkpoint
    tinyllm.manual_seed(0)
    tokenizer = CharTokenizer.from_text(TEXT)
    args = dict(CONFIG, vocab_size=tokenizer.vocab_size)
    save_checkpoint(path, GPT(GPTConfig(**args)), "gpt", args, tokenizer=tokenizer)


def serve(checkpoint, max_batch):
    """The server subprocess: print the port, then serve until killed."""
    from tinyllm.serving.serve import ServerLimits, make_server
    server = make_server(checkpoint, "127.0.0.1", 0, verbose=False,
                         limits=ServerLimits(max_batch_size=max_batch))
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)


def post(port, body):
    """Send one /generate request; (status, seconds, new tokens)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    try:
        connection.request("POST", "/generate", json.dumps(body),
                           {"Content-Type": "application/json"})
        reply = connection.getresponse()
        data = json.loads(reply.read())
    finally:
        connection.close()
    seconds = time.perf_counter() - start
    return reply.status, seconds, len(data.get("completion", ""))


def workload(args):
    """Each client's list of request bodies (the same for both servers)."""
    import numpy as np
    rng = np.random.default_rng(0)
    clients = []
    for c in range(16):
        long = c < 8
        n = args.long_requests if long else args.short_requests
        bodies = []
        for r in range(n):
            prompt = TEXT[int(rng.integers(0, 40)):][:int(rng.integers(3, 30))]
            tokens = LONG_TOKENS if long else int(rng.integers(1, 9))
            bodies.append({"prompt": prompt, "max_new_tokens": tokens, "temperature": 0.8,
                           "seed": 1000 * c + r})
        clients.append(("long" if long else "short", bodies))
    return clients


def run_load(port, clients, max_seconds):
    """All clients at once; returns (wall seconds, tokens, latencies by kind, failures)."""
    latencies = {"short": [], "long": []}
    tokens, failures = [0], [0]
    lock = threading.Lock()
    start = time.perf_counter()

    def client(kind, bodies):
        for body in bodies:
            if time.perf_counter() - start > max_seconds:
                return
            status, seconds, n = post(port, body)
            with lock:
                if status != 200:
                    failures[0] += 1
                    continue
                latencies[kind].append(seconds)
                tokens[0] += n

    threads = [threading.Thread(target=client, args=c) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, tokens[0], latencies, failures[0]


def health_burst(port, clients=128):
    """``clients`` threads open a connection each at the same moment and GET /health: the
    latencies (s). A listen backlog too small for the burst drops connections, whose clients
    retry after the kernel's 1 s SYN timeout."""
    barrier = threading.Barrier(clients)
    latencies, lock = [], threading.Lock()

    def client():
        barrier.wait()
        start = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", "/health")
            ok = connection.getresponse().status == 200
        finally:
            connection.close()
        with lock:
            latencies.append(time.perf_counter() - start if ok else float("inf"))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def measure(checkpoint, max_batch, clients, max_seconds, threads, burst=False):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", checkpoint,
                               "--max-batch", str(max_batch)], stdout=subprocess.PIPE,
                              env=env, text=True)
    try:
        port = int(server.stdout.readline())
        for tokens in (LONG_TOKENS, 1):            # warm-up: compile, fill the caches
            post(port, {"prompt": "def ", "max_new_tokens": tokens, "seed": 0})
        if burst:
            latencies = health_burst(port)
            answered = [t for t in latencies if t != float("inf")]
            print("a burst of %d GET /health at once: p50 %.3f s, p99 %.3f s, max %.3f s; "
                  "%d not answered 200" % (len(latencies), percentile(answered, 50),
                                           percentile(answered, 99), max(answered),
                                           len(latencies) - len(answered)), flush=True)
        return run_load(port, clients, max_seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 long, 6 short per client")
    parser.add_argument("--long-requests", type=int, default=3)
    parser.add_argument("--short-requests", type=int, default=12)
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="a client sends no new request after this (default: 120)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and Numba threads of the server (default: 1)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--max-batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.max_batch)
    if args.quick:
        args.long_requests, args.short_requests = 2, 6
    clients = workload(args)
    print("tinyllm serve under load: 16 clients (8 x %d long requests of %d tokens, 8 x %d "
          "short ones of 1-8 tokens); GPT %s; server threads %d"
          % (args.long_requests, LONG_TOKENS, args.short_requests, CONFIG, args.threads))
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = os.path.join(folder, "gpt.npz")
        write_checkpoint(checkpoint)
        for name, max_batch in (("batched (--max-batch 16)", 16),
                                ("one at a time (--no-batching)", 1)):
            wall, tokens, latencies, failures = measure(checkpoint, max_batch, clients,
                                                        args.max_seconds, args.threads,
                                                        burst=max_batch > 1)
            results[name] = (tokens / wall, percentile(latencies["short"], 50),
                             percentile(latencies["short"], 99))
            print("%-30s %6.1f s  %5d tokens  %7.1f tokens/s   short p50 %6.3f s  p99 %6.3f s"
                  "   long p50 %6.2f s   (%d short, %d long requests; %d failed)"
                  % (name, wall, tokens, tokens / wall, results[name][1], results[name][2],
                     statistics.median(latencies["long"]) if latencies["long"] else
                     float("nan"), len(latencies["short"]), len(latencies["long"]), failures),
                  flush=True)
    (batched, alone) = results.values()
    print("batched / one at a time: throughput %.1f / %.1f tokens/s = %.2fx; short p99 "
          "%.3f s against %.3f s" % (batched[0], alone[0], batched[0] / alone[0], batched[2],
                                     alone[2]))


if __name__ == "__main__":
    main()
