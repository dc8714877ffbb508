"""``tinyllm serve``: a trained model behind a small JSON-over-HTTP endpoint (standard library
only: ``http.server``, ``socketserver``, ``threading``).

    GET  /health     -> {"status": "ok", "model_type": "gpt", "step": 2000, ...}
    POST /generate   {"prompt": "def ", "max_new_tokens": 50, "temperature": 0.8,
                      "top_k": null, "top_p": null, "seed": 0, ...}   (all but prompt optional)
                     -> {"completion": "..."}       (+ "notice" when the prompt was cropped)
    POST /predict    {"text": "..."} -> {"probability": 0.93}          (classifier checkpoints:
                     the probability of class 1; for ``tinyllm train --model classifier``,
                     that the text is a line of Python code rather than documentation)

Every reply is JSON, errors too, ``{"error": "..."}``, with the status that says what went
wrong: 400 malformed JSON, a missing or unknown field, a field of the wrong type, an integer
that does not fit in 64 bits, NaN or Infinity, or an endpoint this model does not offer;
404 an unknown path; 405 a method the path does not accept (with an ``Allow`` header; a HEAD
request gets the status and headers only, as HTTP wants); 408 a request that did not arrive
within ``read_timeout``; 411 no Content-Length; 413 a body over ``MAX_BODY_BYTES`` (64 KiB);
422 a value of the right type out of its range, or a prompt the model cannot read (characters
its tokenizer never saw); 503 the server is full (with ``Retry-After``) or a request ran past
``max_request_seconds``; 500 a bug (its traceback goes to stderr). A reply never holds NaN or
infinity (``allow_nan=False``): a non-finite number becomes a 500 that says so.

How the server stays fair under load (``ServerLimits`` holds the numbers):

- the listening socket queues up to 128 connections (a burst waits there, not for a SYN
  retransmission); the accepting thread hands each connection to a queue of ``queue_size``
  read by ``workers`` threads; a connection that finds the queue full is answered 503 at once;
- a whole request (request line, headers, body) must arrive within ``read_timeout`` seconds,
  however it trickles in (a client sending a byte every few seconds is cut off with 408);
- a request's thread hands generation to the ``Scheduler`` (``scheduler.py``), the one thread
  that runs the model: GPT requests share one forward pass per token (continuous batching),
  each with its own rows of a key-value cache;
  while it waits, the request's thread checks its socket every 50 ms and cancels the work when
  the client has gone; no request may use more than ``max_request_seconds``;
- a client that goes away is not an error: nothing is printed for it; ``verbose=False``
  (``--quiet``) turns off the access log.

The server binds to 127.0.0.1 (this machine only) unless told otherwise: it has no
authentication, and generation costs CPU.
"""

import io
import json
import queue
import select
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer

from tinyllm.serving.inference import (GenerationOptions, GenerationStopped, PromptError,
                                       complete, encode_prompt, load_for_inference,
                                       long_prompt_notice, predict)
from tinyllm.serving.scheduler import GenerationJob, Scheduler, SoloJob

MAX_BODY_BYTES = 64 * 1024
DISCARD_LIMIT = 1024 * 1024     # a refused body up to this size is read and dropped
MAX_NEW_TOKENS = 2000           # the most tokens one request may ask for
MAX_BEAM = 16
MAX_INT_DIGITS = 19             # a JSON integer must fit in 64 bits: |n| < 2**63
CLIENT_CHECK_SECONDS = 0.05     # how often a waiting request looks whether its client left

# The fields of POST /generate, with the JSON types each accepts (None: null allowed).
GENERATE_FIELDS = {
    "prompt": (str,),
    "max_new_tokens": (int,),
    "temperature": (int, float),
    "top_k": (int, type(None)),
    "top_p": (int, float, type(None)),
    "beam": (int, type(None)),
    "repetition_penalty": (int, float),
    "seed": (int, type(None)),
}


@dataclass
class ServerLimits:
    """The numbers that keep one server fair to all its clients (see the module docstring)."""
    workers: int = 32                   # threads that read requests and write replies
    queue_size: int = 256               # accepted connections waiting for a worker
    read_timeout: float = 10.0          # seconds for a whole request to arrive (and a reply
                                        # to be taken)
    max_request_seconds: float = 300.0  # seconds one request may wait for and use the model
    max_batch_size: int = 16            # GPT requests in one forward pass; 1: one at a time

    def validate(self):
        for name in ("workers", "queue_size", "max_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError("serve: %s must be an integer >= 1, got %r" % (name, value))
        for name in ("read_timeout", "max_request_seconds"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError("serve: %s must be a number of seconds > 0, got %r"
                                 % (name, value))
        return self


class RequestError(Exception):
    """An HTTP error to send back: a status and a message."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ClientGone(Exception):
    """The client closed its connection before its reply was ready."""


class ModelService:
    """A loaded model and what the endpoints do with it (no HTTP here: easy to test).

    The model runs only in the thread of ``self.scheduler``; ``generate`` and ``predict`` hand
    it a job and wait. ``client_gone()``, when given, is asked while waiting: True cancels the
    job and raises ClientGone.
    """

    def __init__(self, model, checkpoint, max_batch_size=16, max_request_seconds=300.0):
        self.model, self.checkpoint = model, checkpoint
        self.model_type, self.tokenizer = checkpoint.model_type, checkpoint.tokenizer
        self.max_request_seconds = max_request_seconds
        self.scheduler = Scheduler(model, max_batch_size)

    @classmethod
    def from_checkpoint(cls, path, max_batch_size=16, max_request_seconds=300.0):
        model, checkpoint = load_for_inference(path)      # a tinyllm or Hugging Face checkpoint
        if checkpoint.tokenizer is None:
            raise ValueError("checkpoint %s holds no tokenizer, so its model cannot read text"
                             % checkpoint.path)
        return cls(model, checkpoint, max_batch_size, max_request_seconds)

    def close(self):
        self.scheduler.close()

    def health(self):
        return {"status": "ok", "model_type": self.model_type, "step": self.checkpoint.step,
                "vocab_size": self.tokenizer.vocab_size,
                "endpoints": ["/generate"] if self.model_type != "lstm_classifier"
                else ["/predict"]}

    def generate(self, body, client_gone=None):
        if self.model_type == "lstm_classifier":
            raise RequestError(400, "this server holds a classifier; POST /predict with "
                                    "{\"text\": ...} instead")
        fields = _check_fields(body, GENERATE_FIELDS, required=("prompt",))
        prompt = fields.pop("prompt")
        options = GenerationOptions(**fields)
        if options.max_new_tokens > MAX_NEW_TOKENS:
            raise RequestError(422, "max_new_tokens must be at most %d, got %d"
                                    % (MAX_NEW_TOKENS, options.max_new_tokens))
        if options.beam is not None and options.beam > MAX_BEAM:
            raise RequestError(422, "beam must be at most %d, got %d" % (MAX_BEAM, options.beam))
        notices = []
        try:
            options.validate()
            if self.model_type == "gpt" and options.beam is None:      # joins the batch
                ids = encode_prompt(self.tokenizer, prompt)
                block_size = self.model.config.block_size
                if len(ids) > block_size:
                    notices.append(long_prompt_notice(len(ids), block_size))
                new_ids = self._run(GenerationJob(ids, options, self.max_request_seconds),
                                    client_gone)
                completion = self.tokenizer.decode(new_ids)
            else:                                                       # runs alone
                completion = self._run(SoloJob(
                    lambda stop: complete(self.model, self.model_type, self.tokenizer, prompt,
                                          options, notice=notices.append, stop=stop),
                    self.max_request_seconds), client_gone)
        except (PromptError, ValueError) as error:
            raise RequestError(422, str(error)) from None
        reply = {"completion": completion}
        if notices:
            reply["notice"] = " ".join(notices)
        return reply

    def predict(self, body, client_gone=None):
        if self.model_type != "lstm_classifier":
            raise RequestError(400, "this server holds a %r model, which does not classify; "
                                    "POST /generate with {\"prompt\": ...} instead"
                               % self.model_type)
        fields = _check_fields(body, {"text": (str,)}, required=("text",))
        try:
            return self._run(SoloJob(lambda stop: predict(self.model, self.tokenizer,
                                                          fields["text"]),
                                     self.max_request_seconds), client_gone)
        except (PromptError, ValueError) as error:
            raise RequestError(422, str(error)) from None

    def _run(self, job, client_gone):
        """Hand ``job`` to the scheduler and wait for it; the job's result, or its error."""
        self.scheduler.submit(job)
        while not job.done.wait(CLIENT_CHECK_SECONDS):
            if client_gone is not None and client_gone():
                job.cancel()
                raise ClientGone()
        if isinstance(job.error, GenerationStopped):
            if job.cancelled:
                raise ClientGone()
            raise RequestError(503, str(job.error))
        if job.error is not None:
            raise job.error
        return job.result


def _check_fields(body, allowed, required):
    """The body's fields, checked: a JSON object, no unknown or missing fields, right types."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(400, "unknown field(s) %s; the fields are %s"
                                % (", ".join(unknown), ", ".join(allowed)))
    missing = [name for name in required if name not in body]
    if missing:
        raise RequestError(400, "missing field(s): %s" % ", ".join(missing))
    for name, value in body.items():
        types = allowed[name]
        # JSON true/false are Python bools, which are ints too: never accept them as numbers
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join("null" if t is type(None) else
                                   {"str": "a string", "int": "an integer",
                                    "float": "a number"}[t.__name__] for t in types)
            raise RequestError(400, "field %r must be %s, got %s"
                                    % (name, expected, json.dumps(value)))
    return dict(body)


# ----- reading JSON numbers safely -----------------------------------------------------------
def _parse_int(text):
    """A JSON integer, refused (400) when it does not fit in 64 bits: checked on its digits
    first, so a 5000-digit number costs nothing to refuse."""
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS or not -2 ** 63 <= int(text) < 2 ** 63:
        shown = text if len(text) <= 30 else text[:20] + "... (%d digits)" % len(digits)
        raise RequestError(400, "the integer %s is too large: integers in a request must fit "
                                "in 64 bits" % shown)
    return int(text)


def _parse_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise RequestError(400, "the number %s is too large for a 64-bit float" % text[:30])
    return value


def _refuse_constant(name):
    raise RequestError(400, "%s is not a JSON number: numbers in a request must be finite"
                            % name)


def parse_json(data):
    """The JSON value of ``data`` (bytes); RequestError(400) for anything that is not plain,
    finite JSON."""
    try:
        return json.loads(data.decode("utf-8"), parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, "the request body is not valid JSON: %s" % error) from None
    except RecursionError:
        raise RequestError(400, "the request body is JSON nested too deeply") from None


def to_json(payload):
    """(status, bytes) of a reply: ``payload`` as JSON, or a 500 when it holds NaN or
    infinity, which JSON cannot carry."""
    try:
        return 200, json.dumps(payload, allow_nan=False).encode("utf-8")
    except ValueError:
        return 500, json.dumps({"error": "the model produced a number that is not finite (NaN "
                                         "or infinity); its weights may be broken"}).encode()


# ----- HTTP ----------------------------------------------------------------------------------
class DeadlineReader(io.RawIOBase):
    """The bytes of a socket, read under one deadline for a whole request: before each recv
    the socket's timeout is set to the time left, so a client that trickles bytes in cannot
    stay longer than the deadline (a per-read timeout would let it). ``received`` counts the
    bytes read since the deadline was set."""

    def __init__(self, sock):
        self.sock = sock
        self.deadline = float("inf")
        self.received = 0

    def set_deadline(self, seconds):
        self.deadline, self.received = time.monotonic() + seconds, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        n = self.sock.recv_into(buffer)
        self.received += n
        return n


def client_has_left(sock):
    """True when the peer of ``sock`` has closed its side: the socket is readable and a peek
    reads b"" (end of stream), or the connection was reset. Reads nothing away."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except (OSError, ValueError):
        return True


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's ``ModelService`` and writes JSON replies."""

    server_version = "tinyllm"
    timeout = None              # the DeadlineReader sets the socket's timeouts
    routes = {"/health": ("GET", "health"), "/generate": ("POST", "generate"),
              "/predict": ("POST", "predict")}

    def setup(self):
        super().setup()
        self.rfile.close()
        self.reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self):
        """Read one request under the server's read deadline and answer it (http.server's
        loop, with JSON for its errors and 408 for a request that does not arrive)."""
        self.command, self.path, self.requestline = None, "", ""
        self.request_version = "HTTP/1.0"      # until the request line says otherwise
        self.body_read = False
        self.reader.set_deadline(self.server.limits.read_timeout)
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "the request line is longer "
                                                                 "than 65536 bytes")
                return
            if not self.parse_request():        # it has answered with send_error
                return
            self._handle(self.command)
        except TimeoutError:
            self.close_connection = True
            if self.reader.received:            # an idle connection just closes
                self._send(408, {"error": "the request did not arrive within %g s"
                                          % self.server.limits.read_timeout})
        except ConnectionError:
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line, headers too long), in JSON."""
        self.close_connection = True
        self._send(int(code), {"error": message or HTTPStatus(code).phrase})

    def _handle(self, method):
        path = self.path.split("?", 1)[0]
        try:
            if path not in self.routes:
                raise RequestError(404, "no such endpoint %s; the endpoints are %s"
                                        % (path, ", ".join(self.routes)))
            allowed_method, action = self.routes[path]
            if method != allowed_method:
                raise RequestError(405, "%s accepts %s, not %s" % (path, allowed_method,
                                                                   method),
                                   {"Allow": allowed_method})
            service = self.server.service
            if method == "GET":
                reply = getattr(service, action)()
            else:
                body = self._read_json()
                reply = getattr(service, action)(body, self._client_gone)
            self._send(200, reply)
        except RequestError as error:
            if not self.body_read:
                self._discard_body()
            self._send(error.status, {"error": error.message}, error.headers)
        except ClientGone:
            self.close_connection = True
        except Exception as error:          # a bug must still answer in JSON, not drop the line
            sys.stderr.write("tinyllm serve: error in %s %s\n%s"
                             % (method, path, traceback.format_exc()))
            self.close_connection = True
            self._send(500, {"error": "internal error: %s: %s" % (type(error).__name__, error)})

    def _client_gone(self):
        return client_has_left(self.connection)

    def _read_json(self):
        self.body_read = True
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "the request needs a Content-Length header")
        try:
            length = int(length)
        except ValueError:
            raise RequestError(400, "Content-Length %r is not a number" % length) from None
        if length < 0:
            raise RequestError(400, "Content-Length must not be negative")
        if length > MAX_BODY_BYTES:
            self._discard(length)
            raise RequestError(413, "the request body is %d bytes; the limit is %d"
                                    % (length, MAX_BODY_BYTES))
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise RequestError(408, "the request body (%d bytes) did not arrive within %g s"
                                    % (length, self.server.limits.read_timeout)) from None
        if len(data) < length:
            raise ClientGone()
        return parse_json(data)

    def _discard_body(self):
        """Drop the body of a request refused before its body was read, so that it is not
        taken for the next request, and close the connection after the reply."""
        self.close_connection = True
        try:
            length = int(self.headers.get("Content-Length", 0)) if self.headers else 0
        except ValueError:
            return
        if 0 < length <= DISCARD_LIMIT:
            self._discard(length)

    def _discard(self, length):
        """Read and drop a refused body (up to DISCARD_LIMIT bytes), so that the client, still
        sending it, receives the error reply instead of a reset connection; the connection
        is closed after the reply."""
        self.close_connection = True
        remaining = min(length, DISCARD_LIMIT)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except TimeoutError:
            pass

    def _send(self, status, payload, headers=None):
        """Write one JSON reply; a client that has gone (or does not read it within the read
        timeout) just closes the connection."""
        json_status, body = to_json(payload)
        if json_status == 500:
            status, self.close_connection = 500, True
        if self.request_version == "HTTP/0.9":     # that version has no headers: always send
            self.request_version = "HTTP/1.0"     # the status line and headers
        try:
            self.connection.settimeout(self.server.limits.read_timeout)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":          # a reply to HEAD has no body (HTTP)
                self.wfile.write(body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


BUSY_REPLY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
              b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")


class ModelServer(HTTPServer):
    """An ``HTTPServer`` that holds a ``ModelService`` and serves with a bounded pool of
    worker threads (see the module docstring)."""

    request_queue_size = 128    # the listen backlog: connections the kernel holds for accept
    LINGER_SECONDS = 2.0        # how long a refused connection may take to read its 503

    def __init__(self, service, host="127.0.0.1", port=8000, verbose=True, limits=None):
        self.service, self.verbose = service, verbose
        self.limits = (limits or ServerLimits()).validate()
        self.connections = queue.Queue(maxsize=self.limits.queue_size)
        self.refused = []                   # (socket, time to close it) of 503 replies
        self.stopping = threading.Event()
        self.busy_workers = 0               # workers serving a connection now
        self._busy_lock = threading.Lock()
        super().__init__((host, port), Handler)
        self.workers = [threading.Thread(target=self._work, name="tinyllm-worker-%d" % i,
                                         daemon=True) for i in range(self.limits.workers)]
        for worker in self.workers:
            worker.start()

    def process_request(self, request, client_address):
        """Called by ``serve_forever`` for each accepted connection: queue it for a worker,
        or answer 503 at once when the queue is full."""
        try:
            self.connections.put_nowait((request, client_address))
        except queue.Full:
            self._refuse(request, client_address)

    def _work(self):
        while not self.stopping.is_set():
            try:
                request, client_address = self.connections.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._busy_lock:
                self.busy_workers += 1
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._busy_lock:
                    self.busy_workers -= 1

    def _refuse(self, sock, client_address):
        """503 with Retry-After, written without blocking the accepting thread. The socket is
        closed later (``service_actions``), after the client has read the reply: closing it
        with the request unread would send a reset that may destroy the reply."""
        body = json.dumps({"error": "the server is busy (%d requests wait for a worker); "
                                    "retry after 1 s" % self.limits.queue_size}).encode()
        try:
            sock.setblocking(False)
            _drain(sock)
            sock.send(BUSY_REPLY % (len(body), body))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self.refused.append((sock, time.monotonic() + self.LINGER_SECONDS))
        if self.verbose:
            sys.stderr.write("%s - - 503 (the server is busy)\n" % client_address[0])

    def service_actions(self):
        """Between two accepts: close the refused sockets whose client has finished or whose
        time is up."""
        still_open = []
        for sock, close_at in self.refused:
            try:
                finished = _drain(sock)
            except OSError:
                finished = True
            if finished or time.monotonic() > close_at:
                sock.close()
            else:
                still_open.append((sock, close_at))
        self.refused = still_open

    def handle_error(self, request, client_address):
        """A client that went away is no error of the server's: print nothing for it."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def server_close(self):
        """Close the socket, stop the workers (after their current request) and the
        scheduler."""
        super().server_close()
        self.stopping.set()
        while True:                         # connections still waiting are closed unanswered
            try:
                self.shutdown_request(self.connections.get_nowait()[0])
            except queue.Empty:
                break
        for sock, _ in self.refused:
            sock.close()
        self.refused = []
        self.service.close()


def _drain(sock):
    """Read and drop what a non-blocking socket holds; True when its peer has closed."""
    while True:
        try:
            if not sock.recv(65536):
                return True
        except BlockingIOError:
            return False


def make_server(checkpoint_or_service, host="127.0.0.1", port=8000, verbose=True, limits=None):
    """A server for a checkpoint path (or a ``ModelService``), bound but not yet serving:
    call ``serve_forever()`` (port 0 picks a free port: see ``server.server_address``).
    ``limits``: a ``ServerLimits`` (its max_batch_size and max_request_seconds apply to a
    service made here from a checkpoint)."""
    limits = (limits or ServerLimits()).validate()
    service = checkpoint_or_service if isinstance(checkpoint_or_service, ModelService) \
        else ModelService.from_checkpoint(checkpoint_or_service, limits.max_batch_size,
                                          limits.max_request_seconds)
    try:
        return ModelServer(service, host, port, verbose, limits)
    except BaseException:
        if service is not checkpoint_or_service:
            service.close()
        raise
