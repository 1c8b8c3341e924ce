"""``synthloop serve`` under load and abuse, on loopback: batching gives each request what it
would get alone, bad requests are 4xx with the field named, limits and the token hold."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from synthloop.generate.backends import PIPELINE_SAMPLING, LocalBackend
from synthloop.generate.server import OpenAIServer
from synthloop.models.registry import load_lm


@pytest.fixture(scope="module")
def backend(tiny_model) -> LocalBackend:
    return LocalBackend(load_lm(str(tiny_model)))


@pytest.fixture()
def server(backend):
    srv = OpenAIServer(backend, port=0, max_body_bytes=64 << 10).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _body(prompt: str, seed: int, **over) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 8, "temperature": 0.9, "top_p": 1.0, "seed": seed, **over}


def test_64_concurrent_clients_no_resets_and_batched_answers_equal_alone(server, backend):
    prompts = [f"Request number {i} says" for i in range(128)]
    barrier = threading.Barrier(64)

    def client(i: int) -> list[tuple[int, int, str]]:
        barrier.wait(timeout=30)
        out = []
        for k in (i, i + 64):
            with requests.Session() as s:  # a new connection per request
                r = s.post(f"{server.url}/chat/completions", json=_body(prompts[k], 1000 + k),
                           timeout=60)
                out.append((k, r.status_code, r.json()["choices"][0]["message"]["content"]))
        return out

    with ThreadPoolExecutor(64) as pool:
        results = [x for chunk in pool.map(client, range(64)) for x in chunk]
    assert len(results) == 128 and all(status == 200 for _, status, _ in results)
    assert max(server.batcher.batches) > 1  # concurrent requests shared engine calls
    sampling = PIPELINE_SAMPLING.replace(max_new_tokens=8, temperature=0.9, top_p=1.0, batch_size=1)
    for k, _, text in results[:24]:
        alone = backend.complete([prompts[k]], sampling, seed=1000 + k)[0].text
        assert text == alone, k


@pytest.mark.parametrize("body, status, needle", [
    (_body("hi", 1, max_tokens="lots"), 422, "max_tokens"),
    (_body("hi", 1, temperature=-1), 422, "temperature"),
    ({**_body("hi", 1), "seed": "x"}, 422, "seed"),
    ({"model": "tiny"}, 422, "messages"),
    (_body("hi", 1, messages=[{"content": "no role"}]), 422, "role"),
    (_body("hi", 1, max_tokens=10**6), 400, "at most 512 positions"),
])
def test_bad_requests_are_4xx_naming_the_field(server, body, status, needle):
    r = requests.post(f"{server.url}/chat/completions", json=body, timeout=30)
    assert r.status_code == status and needle in r.json()["error"]["message"], r.text


def test_non_json_unknown_routes_and_oversized_bodies(server):
    r = requests.post(f"{server.url}/chat/completions", data=b"{not json", timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert requests.get(f"{server.url}/nothing", timeout=30).status_code == 404
    big = _body("x" * (100 << 10), 1)
    r = requests.post(f"{server.url}/chat/completions", json=big, timeout=30)
    assert r.status_code == 413 and "over 65,536 bytes" in r.json()["error"]["message"]

    def chunks():
        for _ in range(100):
            yield b" " * 1024

    r = requests.post(f"{server.url}/chat/completions", data=chunks(), timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # still serving
    r = requests.post(f"{server.url}/chat/completions", json=_body("hi", 1), timeout=30)
    assert r.status_code == 200


def test_bearer_token(backend):
    srv = OpenAIServer(backend, port=0, api_key="s3cret-token").start()
    try:
        url = f"{srv.url}/chat/completions"
        assert requests.post(url, json=_body("hi", 1), timeout=30).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert requests.post(url, json=_body("hi", 1), headers=bad, timeout=30).status_code \
            == 401
        assert requests.get(f"{srv.url}/models", timeout=30).status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        r = requests.post(url, json=_body("hi", 1), headers=good, timeout=30)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_binds_loopback_by_default(backend):
    srv = OpenAIServer(backend, port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.batcher.close()
        srv.server_close()


def test_fuzzed_request_bodies_are_answered_never_500(backend):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    srv = OpenAIServer(backend, port=0).start()
    values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                          | st.text(max_size=10),
                          lambda c: st.lists(c, max_size=3)
                          | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8)
    fields = st.fixed_dictionaries({}, optional={
        "model": values, "messages": values | st.just([{"role": "user", "content": "hi"}]),
        "prompt": values, "max_tokens": values | st.integers(1, 8), "temperature": values,
        "top_p": values, "top_k": values, "seed": values, "repetition_penalty": values})

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=fields, route=st.sampled_from(["chat/completions", "completions"]))
    def check(body, route):
        # json.dumps writes NaN / Infinity as bare tokens (not JSON): the server must refuse
        r = requests.post(f"{srv.url}/{route}", data=json.dumps(body), timeout=60,
                          headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (body, r.text)
        assert "error" in r.json() or r.status_code == 200

    try:
        check()
    finally:
        srv.shutdown()
        srv.server_close()
