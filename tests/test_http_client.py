"""The OpenAI-compatible HTTP client against misbehaving servers on loopback: every wait and
every response is bounded, whatever the server sends."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synthloop.generate.backends import PIPELINE_SAMPLING, OpenAIBackend, parse_retry_after

SAMPLING = PIPELINE_SAMPLING.replace(max_new_tokens=4, temperature=1.0, top_p=1.0)
OK = json.dumps({"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}]})


class Script(BaseHTTPRequestHandler):
    """Answers POSTs from the server's ``plan``: a list of callables, one per request."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        plan = self.server.plan
        step = plan.pop(0) if len(plan) > 1 else plan[0]
        self.server.hits += 1
        step(self)


def reply(status: int, body: str = OK, headers: dict | None = None):
    def run(h: BaseHTTPRequestHandler) -> None:
        data = body.encode()
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        with contextlib.suppress(OSError):  # the client hung up (oversized body)
            h.wfile.write(data)
    return run


def drip(h: BaseHTTPRequestHandler) -> None:
    """Headers, then one byte every 0.2 s for 20 s: each read is quick, the whole is not."""
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    try:
        for _ in range(100):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def huge(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.end_headers()  # no length: read until close
    try:
        for _ in range(64):
            h.wfile.write(b"x" * (1 << 20))
    except OSError:
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    srv.plan, srv.hits = [reply(200)], 0
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-5", "soon", "1e400"])
def test_nonsense_retry_after_is_ignored(server, value):
    server.plan = [reply(503, "busy", {"Retry-After": value}), reply(200)]
    client = OpenAIBackend(server.url, "m", concurrency=1, max_retries=2, backoff_s=0.01)
    t = time.monotonic()
    [c] = client.complete(["hi"], SAMPLING, seed=0)
    assert c.error is None and c.text == "fine" and time.monotonic() - t < 5


def test_a_huge_retry_after_is_capped(server):
    server.plan = [reply(503, "busy", {"Retry-After": "100000"})]
    client = OpenAIBackend(server.url, "m", concurrency=1, max_retries=2, backoff_s=0.01,
                           max_retry_wait_s=0.2)
    t = time.monotonic()
    [c] = client.complete(["hi"], SAMPLING, seed=0)
    assert c.error.endswith("HTTP 503 after 2 retries") and time.monotonic() - t < 3
    assert server.hits == 3
    assert OpenAIBackend("http://x", "m").max_retry_wait_s == 60.0


def test_retry_after_as_an_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert 5 < parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                               time.gmtime(time.time() + 30))) <= 31
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) == 0.0


def test_the_timeout_is_a_total_per_request_not_per_read(server):
    server.plan = [drip]
    client = OpenAIBackend(server.url, "m", concurrency=1, max_retries=1, backoff_s=0.01,
                           timeout_s=1.0)
    t = time.monotonic()
    [c] = client.complete(["hi"], SAMPLING, seed=0)
    took = time.monotonic() - t
    assert c.error and "timed out after 1 s" in c.error
    assert took < 4, took  # two attempts of ~1 s, not 2 × 20 s


def test_response_size_is_capped(server):
    server.plan = [huge]
    client = OpenAIBackend(server.url, "m", concurrency=1, max_retries=0,
                           max_response_bytes=1 << 20)
    [c] = client.complete(["hi"], SAMPLING, seed=0)
    assert c.error and "larger than 1,048,576 bytes" in c.error
    server.plan = [reply(200, OK + " " * (2 << 20))]
    [c] = client.complete(["hi"], SAMPLING, seed=0)
    assert c.error and "larger than" in c.error


def test_a_malformed_body_is_an_error_not_a_crash(server):
    for body in ("not json", "[" * 100_000, json.dumps({"choices": []}),
                 json.dumps({"choices": [{"message": None}]})):
        server.plan = [reply(200, body)]
        client = OpenAIBackend(server.url, "m", concurrency=1, max_retries=0)
        [c] = client.complete(["hi"], SAMPLING, seed=0)
        assert c.error and "malformed response body" in c.error
