"""The HTTP server (tinyllm.serving.serve), started on 127.0.0.1 with port 0 in a thread and
spoken to with urllib: its endpoints, and a clear JSON error for every bad request."""

import http.client
import json
import threading
import urllib.error
import urllib.request

import pytest

import tinyllm
from tinyllm.data import CharTokenizer
from tinyllm.models import GPT, GPTConfig, LSTMClassifier
from tinyllm.training import save_checkpoint
from tinyllm.serving.inference import GenerationOptions, complete, predict
from tinyllm.serving.serve import MAX_BODY_BYTES, ModelService, make_server

TEXT = "hello world, this is a small text to build a vocabulary from.\n"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    tinyllm.manual_seed(0)
    tokenizer = CharTokenizer.from_text(TEXT)
    gpt_args = dict(block_size=16, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2,
                    n_embd=16)
    save_checkpoint(folder / "gpt.npz", GPT(GPTConfig(**gpt_args)), "gpt", gpt_args,
                    tokenizer=tokenizer, step=3)
    labelled = CharTokenizer.from_text(TEXT, special_tokens=["<pad>"])
    classifier_args = dict(vocab_size=labelled.vocab_size, embedding_dim=8, hidden_size=8,
                           num_classes=1, padding_idx=labelled.special_tokens["<pad>"])
    save_checkpoint(folder / "classifier.npz", LSTMClassifier(**classifier_args),
                    "lstm_classifier", classifier_args, tokenizer=labelled)
    return folder


def start(path):
    server = make_server(path, "127.0.0.1", 0, verbose=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def gpt_server(checkpoints):
    server, thread = start(checkpoints / "gpt.npz")
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def classifier_server(checkpoints):
    server, thread = start(checkpoints / "classifier.npz")
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def call(server, path, method="GET", body=None, data=None):
    """(status, JSON reply, headers) of one request to ``server``."""
    host, port = server.server_address[:2]
    if body is not None:
        data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request("http://%s:%d%s" % (host, port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read()), reply.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


# ----- what works -----------------------------------------------------------------------------
def test_the_server_binds_to_localhost_by_default(checkpoints):
    server = make_server(checkpoints / "gpt.npz", port=0, verbose=False)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_health(gpt_server):
    status, reply, headers = call(gpt_server, "/health")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert reply["status"] == "ok" and reply["model_type"] == "gpt" and reply["step"] == 3


def test_generate_continues_the_prompt(gpt_server):
    status, reply, _ = call(gpt_server, "/generate", "POST",
                            {"prompt": "hello", "max_new_tokens": 12, "seed": 1})
    assert status == 200
    assert isinstance(reply["completion"], str) and len(reply["completion"]) == 12


def test_generate_with_a_seed_is_repeatable_and_matches_the_library(gpt_server):
    body = {"prompt": "hello", "max_new_tokens": 10, "temperature": 1.3, "top_k": 5,
            "top_p": 0.9, "seed": 4, "repetition_penalty": 1.2}
    first = call(gpt_server, "/generate", "POST", body)[1]["completion"]
    assert call(gpt_server, "/generate", "POST", body)[1]["completion"] == first
    service = gpt_server.service
    options = GenerationOptions(**{k: v for k, v in body.items() if k != "prompt"})
    assert complete(service.model, "gpt", service.tokenizer, "hello", options) == first


def test_a_prompt_longer_than_the_context_comes_back_with_a_notice(gpt_server):
    status, reply, _ = call(gpt_server, "/generate", "POST",
                            {"prompt": "hello world " * 3, "max_new_tokens": 2})
    assert status == 200 and "longer than the model's context of 16" in reply["notice"]


def test_predict_gives_a_probability(classifier_server):
    status, reply, _ = call(classifier_server, "/predict", "POST", {"text": "hello world"})
    assert status == 200 and 0.0 < reply["probability"] < 1.0
    service = classifier_server.service
    assert reply["probability"] == pytest.approx(
        predict(service.model, service.tokenizer, "hello world")["probability"])


# ----- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("data, message", [
    (b'{"prompt": "hi",', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'["a", "list"]', "must be a JSON object"),
    (b"[" * 60000, "nested too deeply"),
])
def test_malformed_bodies_are_400(gpt_server, data, message):
    status, reply, _ = call(gpt_server, "/generate", "POST", data=data)
    assert status == 400 and message in reply["error"]


@pytest.mark.parametrize("body, message", [
    ({"max_new_tokens": 5}, "missing field(s): prompt"),
    ({"prompt": "hi", "temprature": 1.0}, "unknown field(s) temprature"),
    ({"prompt": 42}, "field 'prompt' must be a string"),
    ({"prompt": "hi", "max_new_tokens": "10"}, "field 'max_new_tokens' must be an integer"),
    ({"prompt": "hi", "max_new_tokens": 2.5}, "must be an integer"),
    ({"prompt": "hi", "temperature": True}, "field 'temperature' must be an integer or a "
                                            "number"),
])
def test_wrong_fields_and_types_are_400(gpt_server, body, message):
    status, reply, _ = call(gpt_server, "/generate", "POST", body)
    assert status == 400 and message in reply["error"]


@pytest.mark.parametrize("body, message", [
    ({"prompt": "hi", "temperature": -1}, "temperature must be a number >= 0"),
    ({"prompt": "hi", "top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"prompt": "hi", "top_k": 0}, "top_k must be an integer >= 1"),
    ({"prompt": "hi", "max_new_tokens": 10 ** 6}, "max_new_tokens must be at most"),
    ({"prompt": "hi", "seed": -3}, "seed must be an integer >= 0"),
    ({"prompt": ""}, "the prompt is empty"),
    ({"prompt": "héllo ☃"}, "'é' (U+00E9), '☃' (U+2603)"),
])
def test_values_out_of_range_and_unreadable_prompts_are_422(gpt_server, body, message):
    status, reply, _ = call(gpt_server, "/generate", "POST", body)
    assert status == 422 and message in reply["error"]


def test_a_body_over_the_limit_is_413(gpt_server):
    data = json.dumps({"prompt": "h" * (MAX_BODY_BYTES + 10)}).encode()
    status, reply, headers = call(gpt_server, "/generate", "POST", data=data)
    assert status == 413 and "limit is 65536" in reply["error"]
    assert headers["Connection"] == "close"
    assert call(gpt_server, "/health")[0] == 200                 # and it keeps serving


def test_a_body_without_content_length_is_411_and_an_empty_one_400(gpt_server):
    host, port = gpt_server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.putrequest("POST", "/generate")          # no Content-Length header
        connection.endheaders()
        reply = connection.getresponse()
        assert reply.status == 411 and "Content-Length" in json.loads(reply.read())["error"]
    finally:
        connection.close()
    status, reply, _ = call(gpt_server, "/generate", "POST", data=b"")
    assert status == 400 and "not valid JSON" in reply["error"]


def test_unknown_paths_are_404_and_wrong_methods_405(gpt_server):
    status, reply, _ = call(gpt_server, "/nowhere")
    assert status == 404 and "/generate" in reply["error"]
    status, reply, headers = call(gpt_server, "/generate")
    assert status == 405 and headers["Allow"] == "POST"
    status, _, headers = call(gpt_server, "/health", "POST", {})
    assert status == 405 and headers["Allow"] == "GET"
    assert call(gpt_server, "/health", "DELETE")[0] == 405


def test_endpoints_the_model_does_not_offer_are_400(gpt_server, classifier_server):
    status, reply, _ = call(gpt_server, "/predict", "POST", {"text": "hi"})
    assert status == 400 and "does not classify" in reply["error"]
    status, reply, _ = call(classifier_server, "/generate", "POST", {"prompt": "hi"})
    assert status == 400 and "POST /predict" in reply["error"]
    status, reply, _ = call(classifier_server, "/predict", "POST", {"txt": "hi"})
    assert status == 400 and "unknown field(s) txt" in reply["error"]


def test_the_service_needs_a_tokenizer(tmp_path):
    tinyllm.manual_seed(0)
    args = dict(block_size=4, vocab_size=5, n_layer=1, n_head=1, n_embd=4)
    save_checkpoint(tmp_path / "bare.npz", GPT(GPTConfig(**args)), "gpt", args)
    with pytest.raises(ValueError, match="holds no tokenizer"):
        ModelService.from_checkpoint(tmp_path / "bare.npz")
