"""The server under load and abuse (tinyllm.serving.serve, tinyllm.serving.scheduler): a
whole-request read deadline, a bounded queue that answers 503, JSON for every method and
failure, cancellation when a client leaves, quiet logs, and continuous batching that gives
every request the tokens it would get alone."""

import json
import select
import socket
import threading
import time

import numpy as np
import pytest

import tinyllm
from tinyllm.data import CharTokenizer
from tinyllm.models import GPT, GPTConfig, LSTMClassifier, sampling
from tinyllm.training import save_checkpoint
from tinyllm.serving.inference import GenerationOptions, GenerationStopped, complete
from tinyllm.serving.scheduler import GenerationJob, Scheduler, gpt_next_token_logits
from tinyllm.serving.serve import ServerLimits, make_server, parse_json, to_json

TEXT = "hello world, this is a small text to build a vocabulary from.\n"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve_hardening")
    tinyllm.manual_seed(0)
    tokenizer = CharTokenizer.from_text(TEXT)
    gpt_args = dict(block_size=32, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2,
                    n_embd=32)
    save_checkpoint(folder / "gpt.npz", GPT(GPTConfig(**gpt_args)), "gpt", gpt_args,
                    tokenizer=tokenizer, step=1)
    labelled = CharTokenizer.from_text(TEXT, special_tokens=["<pad>"])
    classifier_args = dict(vocab_size=labelled.vocab_size, embedding_dim=8, hidden_size=8,
                           num_classes=1, padding_idx=labelled.special_tokens["<pad>"])
    broken = LSTMClassifier(**classifier_args)        # its weights become NaN once served
    save_checkpoint(folder / "nan_classifier.npz", broken, "lstm_classifier", classifier_args,
                    tokenizer=labelled)
    return folder


class Running:
    """A server serving in a thread, closed by ``stop``."""

    def __init__(self, path, verbose=False, **limits):
        self.server = make_server(path, "127.0.0.1", 0, verbose=verbose,
                                  limits=ServerLimits(**limits))
        self.address = self.server.server_address[:2]
        self.service = self.server.service
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve(checkpoints):
    """serve(name, **limits) starts a server for checkpoint ``name``; all stop at the end."""
    running = []

    def start(name="gpt", verbose=False, **limits):
        running.append(Running(checkpoints / ("%s.npz" % name), verbose, **limits))
        return running[-1]

    yield start
    for server in running:
        server.stop()


def connect(server):
    return socket.create_connection(server.address, timeout=30)


def read_reply(sock):
    """(status, headers dict, body bytes) of one HTTP reply, read until the server closes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def request(server, method, path, body=b"", headers=""):
    """One whole request on a new connection; (status, headers, body bytes)."""
    with connect(server) as sock:
        sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
                      % (method, path, len(body), headers)).encode() + body)
        return read_reply(sock)


def post(server, body):
    status, headers, data = request(server, "POST", "/generate", json.dumps(body).encode())
    return status, json.loads(data)


def wait_until(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


# ----- deadlines -----------------------------------------------------------------------------
def test_a_client_trickling_its_headers_is_cut_off_at_the_whole_request_deadline(serve):
    server = serve(read_timeout=0.5)
    with connect(server) as sock:
        sock.sendall(b"POST /generate HTTP/1.1\r\n")
        sent = 0
        for _ in range(200):                # 200 bytes, one every 0.05 s: 10 s in all
            try:
                sock.sendall(b"X")
            except OSError:
                break
            sent += 1
            if client_side_readable(sock):
                break
            time.sleep(0.05)
        status, _, body = read_reply(sock)
    assert sent < 200                       # cut off while still sending
    assert status == 408 and "did not arrive within 0.5 s" in json.loads(body)["error"]


def client_side_readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


def test_a_body_that_never_arrives_is_408(serve):
    server = serve(read_timeout=0.3)
    with connect(server) as sock:
        sock.sendall(b'POST /generate HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"prompt": ')
        status, headers, body = read_reply(sock)
    assert status == 408 and headers["Content-Type"] == "application/json"
    assert "request body (100 bytes) did not arrive within 0.3 s" in json.loads(body)["error"]


def test_an_idle_connection_is_closed_without_a_reply(serve):
    server = serve(read_timeout=0.2)
    with connect(server) as sock:
        assert sock.recv(100) == b""        # closed, nothing sent


# ----- a full server -------------------------------------------------------------------------
def test_a_connection_beyond_the_queue_gets_503_with_retry_after(serve):
    server = serve(workers=1, queue_size=1, read_timeout=5.0)
    busy = connect(server)                  # the only worker waits for its headers
    busy.sendall(b"GET /health HTTP/1.1\r\n")
    assert wait_until(lambda: server.server.busy_workers == 1)
    waiting = connect(server)               # fills the queue
    assert wait_until(lambda: server.server.connections.qsize() == 1)
    try:
        status, headers, body = request(server, "GET", "/health")
        assert status == 503 and headers["Retry-After"] == "1"
        assert "busy" in json.loads(body)["error"]
    finally:
        busy.close()
        waiting.close()
    assert wait_until(lambda: request(server, "GET", "/health")[0] == 200)


# ----- JSON for every method and every failure -----------------------------------------------
@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PUT", "DELETE", "PATCH", "BREW"])
def test_other_methods_get_405_json_with_allow(serve, method):
    server = serve()
    status, headers, body = request(server, method, "/generate")
    assert status == 405 and headers["Allow"] == "POST"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "/generate accepts POST, not %s" % method


def test_head_gets_405_headers_and_no_body(serve):
    server = serve()
    status, headers, body = request(server, "HEAD", "/health")
    assert status == 405 and headers["Allow"] == "GET"
    assert headers["Content-Type"] == "application/json" and body == b""


def test_a_malformed_request_line_and_oversized_headers_are_answered_in_json(serve):
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/9.9\r\n\r\n")
        status, _, body = read_reply(sock)
    assert status == 505 and "error" in json.loads(body)
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
        status, _, body = read_reply(sock)
    assert status == 431 and "error" in json.loads(body)


@pytest.mark.parametrize("text, message", [
    ('{"prompt": "hi", "seed": %s}' % ("9" * 5000), "too large: integers in a request must "
                                                    "fit in 64 bits"),
    ('{"prompt": "hi", "seed": %d}' % 2 ** 63, "must fit in 64 bits"),
    ('{"prompt": "hi", "temperature": NaN}', "NaN is not a JSON number"),
    ('{"prompt": "hi", "top_p": -Infinity}', "-Infinity is not a JSON number"),
    ('{"prompt": "hi", "temperature": 1e999}', "too large for a 64-bit float"),
])
def test_oversize_and_non_finite_numbers_are_400(serve, text, message):
    server = serve()
    status, _, body = request(server, "POST", "/generate", text.encode())
    assert status == 400 and message in json.loads(body)["error"]


def test_the_largest_64_bit_integer_is_read():
    assert parse_json(b'{"seed": %d}' % (2 ** 63 - 1)) == {"seed": 2 ** 63 - 1}


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_reply_never_holds_nan(serve):
    assert to_json({"p": float("nan")})[0] == 500
    server = serve("nan_classifier")
    for parameter in server.service.model.parameters():    # the loader refuses NaN weights,
        parameter.data[...] = np.nan                       # so a model that answers NaN is made here
    status, _, body = request(server, "POST", "/predict", b'{"text": "hello"}')
    assert status == 500 and b"NaN" not in body.replace(b"(NaN or infinity)", b"")
    assert "not finite" in json.loads(body)["error"]


def test_a_request_past_its_time_limit_is_503(serve):
    server = serve(max_request_seconds=1.0)
    status, reply = post(server, {"prompt": "hello", "max_new_tokens": 2000})
    assert status == 503 and "limit of 1 s per request" in reply["error"]
    assert post(server, {"prompt": "hello", "max_new_tokens": 2})[0] == 200


# ----- clients that leave --------------------------------------------------------------------
def start_and_abandon(server, body):
    """Send a request, wait until the model works on it, and close the connection."""
    sock = connect(server)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /generate HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    assert wait_until(lambda: server.service.scheduler.active)
    sock.close()


def test_a_client_that_leaves_cancels_its_generation(serve):
    server = serve()
    scheduler = server.service.scheduler
    start_and_abandon(server, {"prompt": "hello", "max_new_tokens": 2000})
    assert wait_until(lambda: scheduler.stopped == 1 and not scheduler.active)
    assert scheduler.steps < 2000
    assert post(server, {"prompt": "hi", "max_new_tokens": 1})[0] == 200


def test_a_client_that_leaves_cancels_its_beam_search(serve):
    server = serve()
    scheduler = server.service.scheduler
    sock = connect(server)
    data = json.dumps({"prompt": "hello", "max_new_tokens": 2000, "beam": 16}).encode()
    sock.sendall(b"POST /generate HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    time.sleep(0.3)                         # the beam search is under way
    sock.close()
    assert wait_until(lambda: scheduler.stopped == 1)
    assert post(server, {"prompt": "hi", "max_new_tokens": 1})[0] == 200


def test_disconnects_print_no_traceback(serve, capfd):
    server = serve(verbose=True, read_timeout=0.3)
    start_and_abandon(server, {"prompt": "hello", "max_new_tokens": 2000})
    connect(server).close()                                     # connects, says nothing
    with connect(server) as sock:                               # half a body, then gone
        sock.sendall(b'POST /generate HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"pro')
    with connect(server) as sock:                               # a reply nobody reads
        sock.sendall(b'POST /generate HTTP/1.1\r\nContent-Length: 40\r\n\r\n'
                     b'{"prompt": "hi", "max_new_tokens": 30}  ')
    assert wait_until(lambda: server.service.scheduler.stopped >= 1 and
                      not server.service.scheduler.active)
    time.sleep(0.5)                                             # the read deadline passes
    assert request(server, "GET", "/health")[0] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and '"GET /health' in err


def test_quiet_logs_nothing_for_requests(serve, capfd):
    server = serve(verbose=False)
    assert request(server, "GET", "/health")[0] == 200
    assert request(server, "GET", "/nowhere")[0] == 404
    assert capfd.readouterr().err == ""


# ----- continuous batching -------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    tinyllm.manual_seed(1)
    return GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16))


def test_the_batched_forward_gives_each_context_its_own_logits():
    tinyllm.manual_seed(2)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)).double()
    rng = np.random.default_rng(0)
    contexts = [list(rng.integers(0, 11, size=n)) for n in (1, 8, 3, 5)]
    logits = gpt_next_token_logits(model, contexts)
    assert logits.shape == (4, 11)
    for context, row in zip(contexts, logits):
        alone = model(np.array([context]))[0].data[0, -1]
        np.testing.assert_allclose(row, alone, rtol=1e-12, atol=1e-14)   # float64


def test_batched_greedy_results_equal_one_at_a_time_token_for_token(model):
    rng = np.random.default_rng(1)
    prompts = [list(rng.integers(0, 11, size=n)) for n in (1, 3, 12, 5, 2, 8)]  # 12 > 8: cropped
    lengths = [30, 1, 17, 4, 0, 9]
    scheduler = Scheduler(model, max_batch_size=8)
    try:
        jobs = [GenerationJob(p, GenerationOptions(max_new_tokens=n, temperature=0))
                for p, n in zip(prompts, lengths)]
        for job in jobs:
            scheduler.submit(job)
        for job in jobs:
            assert job.done.wait(60) and job.error is None
    finally:
        scheduler.close()
    assert scheduler.largest_batch > 1
    for job, prompt, n in zip(jobs, prompts, lengths):
        assert job.result == sampling.greedy(model, prompt, n)


def test_batched_seeded_sampling_equals_the_library(model):
    tokenizer = CharTokenizer.from_text("abcdefghij\n")            # 11 characters
    bodies = [dict(max_new_tokens=12, temperature=1.3, top_k=5, top_p=0.9, seed=4,
                   repetition_penalty=1.2), dict(max_new_tokens=20, temperature=0.7, seed=9),
              dict(max_new_tokens=3, seed=0)]
    scheduler = Scheduler(model, max_batch_size=4)
    try:
        jobs = [scheduler.submit(GenerationJob(tokenizer.encode("abc"), GenerationOptions(**b)))
                for b in bodies]
        for job in jobs:
            assert job.done.wait(60) and job.error is None
    finally:
        scheduler.close()
    for job, body in zip(jobs, bodies):
        assert tokenizer.decode(job.result) == complete(model, "gpt", tokenizer, "abc",
                                                        GenerationOptions(**body))


def test_a_short_request_finishes_while_a_long_one_runs(serve):
    server = serve()
    scheduler = server.service.scheduler
    long_request = connect(server)
    data = json.dumps({"prompt": "hello", "max_new_tokens": 2000}).encode()
    long_request.sendall(b"POST /generate HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(data), data))
    try:
        assert wait_until(lambda: scheduler.active)
        status, reply = post(server, {"prompt": "hi", "max_new_tokens": 3, "temperature": 0})
        assert status == 200 and len(reply["completion"]) == 3
        assert scheduler.active                 # the long one still runs
        assert scheduler.largest_batch == 2     # and the short one ran beside it
    finally:
        long_request.close()
    assert wait_until(lambda: scheduler.stopped == 1 and not scheduler.active)


def test_concurrent_http_requests_get_their_one_at_a_time_results(serve):
    server = serve()
    service = server.service
    bodies = [{"prompt": "hello"[:1 + i % 5], "max_new_tokens": 5 + 7 * i, "temperature": 0}
              for i in range(6)]
    replies = [None] * len(bodies)

    def send(i):
        replies[i] = post(server, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for body, (status, reply) in zip(bodies, replies):
        options = GenerationOptions(max_new_tokens=body["max_new_tokens"], temperature=0)
        assert status == 200
        assert reply["completion"] == complete(service.model, "gpt", service.tokenizer,
                                               body["prompt"], options)


def test_server_limits_are_checked(checkpoints):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        make_server(checkpoints / "gpt.npz", port=0, limits=ServerLimits(workers=0))
    with pytest.raises(ValueError, match="read_timeout must be a number of seconds > 0"):
        make_server(checkpoints / "gpt.npz", port=0, limits=ServerLimits(read_timeout=0))


@pytest.mark.parametrize("beam", [None, 4])
def test_complete_stops_when_stop_gives_a_reason(model, beam):
    tokenizer = CharTokenizer.from_text("abcdefghij\n")
    asked = []

    def stop():
        asked.append(1)
        return "enough" if len(asked) > 3 else None

    with pytest.raises(GenerationStopped, match="enough"):
        complete(model, "gpt", tokenizer, "abc", GenerationOptions(max_new_tokens=50, beam=beam),
                 stop=stop)
    assert len(asked) == 4                  # asked before each model call, stopped at once


def test_the_serve_options_reach_the_server(checkpoints, monkeypatch):
    from tinyllm.cli import build_parser
    from tinyllm.serving import serve as serve_module
    seen = {}

    def serve_forever(self, poll_interval=0.5):
        seen["limits"] = self.limits
        raise KeyboardInterrupt

    monkeypatch.setattr(serve_module.ModelServer, "serve_forever", serve_forever)
    args = build_parser().parse_args(
        ["serve", "--checkpoint", str(checkpoints / "gpt.npz"), "--port", "0", "--quiet",
         "--workers", "3", "--queue-size", "5", "--read-timeout", "2.5",
         "--max-request-seconds", "7", "--no-batching"])
    assert args.handler(args) == 0
    assert seen["limits"] == ServerLimits(workers=3, queue_size=5, read_timeout=2.5,
                                          max_request_seconds=7.0, max_batch_size=1)
