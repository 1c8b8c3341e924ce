"""A small OpenAI-compatible HTTP server over a local model (``synthloop serve``).

It implements the part of the protocol generators use — ``GET /v1/models``,
``POST /v1/completions`` and ``POST /v1/chat/completions`` (non-streaming) — so a team can put
one model behind a port and point any number of pipelines, or other OpenAI clients, at it. It
is also the real server the HTTP backend is tested against. Requests are answered one at a
time per model (the model is not thread-safe); use vLLM or llama.cpp's server for throughput.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from synthloop.generate.backends import LocalBackend, Sampling


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 — stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:  # noqa: N802 — stdlib naming
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"no route {self.path}")
        name, sha = self.server.backend.identity()
        self._send(200, {"object": "list", "data": [
            {"id": name, "object": "model", "owned_by": "synthloop", "weights_sha256": sha}]})

    def do_POST(self) -> None:  # noqa: N802
        route = self.path.rstrip("/")
        if route not in ("/v1/completions", "/v1/chat/completions"):
            return self._error(404, f"no route {self.path}")
        fault = self.server.next_fault()
        if fault:
            return self._send(fault, {"error": {"message": "injected fault"}},
                              {"Retry-After": "0"} if fault == 429 else None)
        try:
            length = int(self.headers.get("Content-Length", 0))
            req = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError):
            return self._error(400, "body is not JSON")
        chat = route.endswith("chat/completions")
        try:
            if chat:
                msgs = req["messages"]
                prompt = "\n\n".join(str(m["content"]) for m in msgs if m.get("role") == "user")
            else:
                prompt = req["prompt"]
                if isinstance(prompt, list):
                    prompt = prompt[0]
            sampling = Sampling(max_new_tokens=int(req.get("max_tokens", 128)),
                                temperature=float(req.get("temperature", 1.0)) or 1e-4,
                                top_p=float(req.get("top_p", 1.0)),
                                top_k=int(req.get("top_k", 0)),
                                repetition_penalty=float(req.get("repetition_penalty", 1.0)),
                                batch_size=1)
            seed = int(req.get("seed", 0))
        except (KeyError, TypeError, ValueError) as e:
            return self._error(400, f"bad request: {e}")
        with self.server.lock:
            c = self.server.backend.complete([prompt], sampling, seed=seed, chat=chat)[0]
        if c.error:
            return self._error(400, c.error)
        name, _ = self.server.backend.identity()
        choice = {"index": 0, "finish_reason": c.finish_reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": c.text}
        else:
            choice["text"] = c.text
        self._send(200, {"id": f"cmpl-{seed}", "object": "chat.completion" if chat else
                         "text_completion", "created": int(time.time()), "model": name,
                         "choices": [choice]})


class OpenAIServer(ThreadingHTTPServer):
    """Serves one :class:`LocalBackend`. ``faults`` is a list of HTTP statuses to answer the
    next POSTs with, in order (to rehearse a flaky server: 429, 503…)."""

    daemon_threads = True

    def __init__(self, backend: LocalBackend, host: str = "127.0.0.1", port: int = 8000, *,
                 faults: list[int] | None = None, verbose: bool = False) -> None:
        super().__init__((host, port), _Handler)
        self.backend = backend
        self.lock = threading.Lock()
        self.verbose = verbose
        self._faults = list(faults or [])
        self._faults_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_fault(self) -> int | None:
        with self._faults_lock:
            return self._faults.pop(0) if self._faults else None

    def start(self) -> OpenAIServer:
        """Serve in a background thread; returns self (call ``shutdown()`` to stop)."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self
