"""``tinyllm serve``: a trained model behind a small JSON-over-HTTP endpoint (standard library
only: ``http.server``).

    GET  /health     -> {"status": "ok", "model_type": "gpt", "step": 2000, ...}
    POST /generate   {"prompt": "def ", "max_new_tokens": 50, "temperature": 0.8,
                      "top_k": null, "top_p": null, "seed": 0, ...}   (all but prompt optional)
                     -> {"completion": "..."}       (+ "notice" when the prompt was cropped)
    POST /predict    {"text": "..."} -> {"probability": 0.93}          (classifier checkpoints:
                     the probability of class 1; for ``tinyllm train --model classifier``,
                     that the text is a line of Python code rather than documentation)

Errors are JSON too, ``{"error": "..."}``, with the status that says what went wrong:
400 malformed JSON, a missing or unknown field, a field of the wrong type, or an endpoint this
model does not offer; 411 no Content-Length; 413 a body over ``MAX_BODY_BYTES`` (64 KiB);
422 a value of the right type out of its range, or a prompt the model cannot read (characters
its tokenizer never saw); 404 an unknown path; 405 a method the path does not accept.

The server binds to 127.0.0.1 (this machine only) unless told otherwise: it has no
authentication, and generation costs CPU. Requests are handled in threads, but the model runs
one request at a time (a lock), as one NumPy model uses the cores well already.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tinyllm.serving.inference import (GenerationOptions, PromptError, complete,
                                       load_for_inference, predict)

MAX_BODY_BYTES = 64 * 1024
DISCARD_LIMIT = 1024 * 1024     # a refused body up to this size is read and dropped
MAX_NEW_TOKENS = 2000           # the most tokens one request may ask for
MAX_BEAM = 16

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


class RequestError(Exception):
    """An HTTP error to send back: a status and a message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class ModelService:
    """A loaded model and what the endpoints do with it (no HTTP here: easy to test)."""

    def __init__(self, model, checkpoint):
        self.model, self.checkpoint = model, checkpoint
        self.model_type, self.tokenizer = checkpoint.model_type, checkpoint.tokenizer
        self.lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path):
        model, checkpoint = load_for_inference(path)      # a tinyllm or Hugging Face checkpoint
        if checkpoint.tokenizer is None:
            raise ValueError("checkpoint %s holds no tokenizer, so its model cannot read text"
                             % checkpoint.path)
        return cls(model, checkpoint)

    def health(self):
        return {"status": "ok", "model_type": self.model_type, "step": self.checkpoint.step,
                "vocab_size": self.tokenizer.vocab_size,
                "endpoints": ["/generate"] if self.model_type != "lstm_classifier"
                else ["/predict"]}

    def generate(self, body):
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
            with self.lock:
                completion = complete(self.model, self.model_type, self.tokenizer, prompt,
                                      options, notice=notices.append)
        except (PromptError, ValueError) as error:
            raise RequestError(422, str(error)) from None
        reply = {"completion": completion}
        if notices:
            reply["notice"] = " ".join(notices)
        return reply

    def predict(self, body):
        if self.model_type != "lstm_classifier":
            raise RequestError(400, "this server holds a %r model, which does not classify; "
                                    "POST /generate with {\"prompt\": ...} instead"
                               % self.model_type)
        fields = _check_fields(body, {"text": (str,)}, required=("text",))
        try:
            with self.lock:
                return predict(self.model, self.tokenizer, fields["text"])
        except (PromptError, ValueError) as error:
            raise RequestError(422, str(error)) from None


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


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's ``ModelService`` and writes JSON replies."""

    server_version = "tinyllm"
    timeout = 30                # seconds a client may stall mid-request
    routes = {"/health": ("GET", "health"), "/generate": ("POST", "generate"),
              "/predict": ("POST", "predict")}

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def _handle(self, method):
        try:
            path = self.path.split("?", 1)[0]
            if path not in self.routes:
                raise RequestError(404, "no such endpoint %s; the endpoints are %s"
                                        % (path, ", ".join(self.routes)))
            allowed_method, action = self.routes[path]
            if method != allowed_method:
                raise RequestError(405, "%s accepts %s, not %s" % (path, allowed_method,
                                                                   method))
            service = self.server.service
            if method == "GET":
                reply = getattr(service, action)()
            else:
                reply = getattr(service, action)(self._read_json())
            self._send(200, reply)
        except RequestError as error:
            extra = {"Allow": self.routes[self.path.split("?", 1)[0]][0]} \
                if error.status == 405 else {}
            self._send(error.status, {"error": error.message}, extra)
        except Exception as error:          # a bug must still answer in JSON, not drop the line
            self._send(500, {"error": "internal error: %s: %s" % (type(error).__name__, error)})

    def _read_json(self):
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
        data = self.rfile.read(length)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, "the request body is not valid JSON: %s" % error) from None
        except RecursionError:
            raise RequestError(400, "the request body is JSON nested too deeply") from None

    def _discard(self, length):
        """Read and drop a refused body (up to DISCARD_LIMIT bytes), so that the client, still
        sending it, receives the error reply instead of a reset connection; the connection
        is closed after the reply."""
        self.close_connection = True
        remaining = min(length, DISCARD_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)

    def _send(self, status, payload, headers=None):
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


class ModelServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that holds a ``ModelService``."""

    daemon_threads = True

    def __init__(self, service, host="127.0.0.1", port=8000, verbose=True):
        self.service, self.verbose = service, verbose
        super().__init__((host, port), Handler)


def make_server(checkpoint_or_service, host="127.0.0.1", port=8000, verbose=True):
    """A server for a checkpoint path (or a ``ModelService``), bound but not yet serving:
    call ``serve_forever()`` (port 0 picks a free port: see ``server.server_address``)."""
    service = checkpoint_or_service if isinstance(checkpoint_or_service, ModelService) \
        else ModelService.from_checkpoint(checkpoint_or_service)
    return ModelServer(service, host, port, verbose)
