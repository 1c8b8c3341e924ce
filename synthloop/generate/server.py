"""An OpenAI-compatible HTTP server over a local model (``synthloop serve``).

It implements the part of the protocol generators use — ``GET /v1/models``,
``POST /v1/completions`` and ``POST /v1/chat/completions`` (non-streaming) — so a team can put
one model behind a port and point any number of pipelines, or other OpenAI clients, at it. It
is also the real server the HTTP backend is tested against.

Built on FastAPI (request validation: a wrong field type or an out-of-range value is a 422
with the field named) and uvicorn. Concurrent requests are batched: a worker thread takes
every request waiting (up to ``max_batch``), groups those with the same decoding parameters,
and decodes each group in one call of the generation engine (continuous refill), each prompt
with its own seed — so a reply is exactly what the same request alone would get. Limits: the
request body (``max_body_bytes``, 413 beyond), ``max_tokens`` within the model's context
(400), an optional bearer token (``api_key``: 401 without it), keep-alive timeout. Bound to
127.0.0.1 unless told otherwise.
"""


import asyncio
import hmac
import queue
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from synthloop.generate.backends import PIPELINE_SAMPLING, Completion, LocalBackend
from synthloop.models.params import GenParams

MAX_BODY_BYTES = 1 << 20


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | None = None


class _Request(BaseModel):
    """Fields shared by both completion routes (others are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=100.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, ge=1.0, le=100.0)
    seed: int = Field(0, ge=0, lt=1 << 63)


class ChatRequest(_Request):
    messages: list[_Message] = Field(min_length=1)


class CompletionRequest(_Request):
    prompt: str | list[str]


@dataclass
class _Job:
    prompt: str
    sampling: GenParams
    seed: int
    chat: bool
    future: Future = field(default_factory=Future)

    def key(self) -> tuple:
        return (self.sampling, self.chat)


class Batcher:
    """One worker thread owns the model; requests wait in a queue and are decoded together.

    ``max_batch``: most prompts in one engine call. ``window_s``: how long the worker waits
    for more requests after the first one arrives (a small latency for much throughput).
    """

    def __init__(self, backend: LocalBackend, *, max_batch: int = 64,
                 window_s: float = 0.005) -> None:
        self.backend, self.max_batch, self.window_s = backend, max_batch, window_s
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.batches: list[int] = []  # sizes of the engine calls made (for tests and logs)
        self._thread = threading.Thread(target=self._work, daemon=True, name="synthloop-batch")
        self._thread.start()

    def submit(self, prompt: str, sampling: GenParams, seed: int, chat: bool) -> Future:
        job = _Job(prompt, sampling, seed, chat)
        self.jobs.put(job)
        return job.future

    def close(self) -> None:
        self.jobs.put(None)
        self._thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            groups: dict[tuple, list[_Job]] = {}
            for job in batch:
                groups.setdefault(job.key(), []).append(job)
            for jobs in groups.values():
                self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        s = jobs[0].sampling
        sampling = s.replace(batch_size=min(len(jobs), self.max_batch))
        try:
            done = self.backend.complete([j.prompt for j in jobs], sampling, seed=0,
                                         chat=jobs[0].chat, seeds=[j.seed for j in jobs])
        except Exception as e:  # noqa: BLE001 — every waiting request gets the reason
            for j in jobs:
                j.future.set_exception(e)
            return
        self.batches.append(len(jobs))
        for j, c in zip(jobs, done, strict=True):
            j.future.set_result(c)


def create_app(backend: LocalBackend, *, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, max_batch: int = 64,
               faults: list[int] | None = None):
    """The ASGI application (FastAPI). ``faults``: HTTP statuses to answer the next POSTs
    with, in order, to rehearse a flaky server (429 comes with ``Retry-After: 0``)."""
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = FastAPI(title="synthloop", docs_url=None, redoc_url=None, openapi_url=None)
    batcher = Batcher(backend, max_batch=max_batch)
    app.state.batcher = batcher
    app.state.faults = list(faults or [])
    lock = threading.Lock()
    name, sha = backend.identity()
    max_positions = backend.lm.max_positions

    def error(status: int, message: str, kind: str = "invalid_request_error",
              headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status,
                            headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid body"}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        return error(422, f"{loc}: {first.get('msg')}")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return error(413, f"request body over {max_body_bytes:,} bytes")
        if request.method == "POST" and length is None:
            body, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body_bytes:
                    return error(413, f"request body over {max_body_bytes:,} bytes")
                body.append(chunk)
            request._body = b"".join(body)
        return await call_next(request)

    def authorised(request: Request) -> None:
        if api_key is None:
            return
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {api_key}".encode()):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    def fault() -> int | None:
        with lock:
            return app.state.faults.pop(0) if app.state.faults else None

    async def answer(req: _Request, prompt: str, chat: bool) -> dict:
        if req.max_tokens >= max_positions:
            raise HTTPException(400, f"max_tokens is {req.max_tokens}: the model holds at most "
                                     f"{max_positions} positions, prompt included")
        # temperature 0 is greedy decoding, as in the OpenAI API
        sampling = PIPELINE_SAMPLING.replace(
            max_new_tokens=req.max_tokens, temperature=req.temperature or 1.0,
            greedy=not req.temperature, top_p=req.top_p, top_k=req.top_k,
            repetition_penalty=req.repetition_penalty, batch_size=1)
        c: Completion = await asyncio.wrap_future(
            batcher.submit(prompt, sampling, req.seed, chat))
        if c.error:
            raise HTTPException(400, c.error)
        choice: dict = {"index": 0, "finish_reason": c.finish_reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": c.text}
        else:
            choice["text"] = c.text
        return {"id": f"cmpl-{req.seed}", "object": "chat.completion" if chat else
                "text_completion", "created": int(time.time()), "model": name,
                "choices": [choice]}

    @app.get("/v1/models", dependencies=[Depends(authorised)])
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model",
                                            "owned_by": "synthloop", "weights_sha256": sha}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(authorised)])
    async def chat_completions(req: ChatRequest):
        if (f := fault()) is not None:
            return error(f, "injected fault", headers={"Retry-After": "0"} if f == 429 else None)
        prompt = "\n\n".join(m.content or "" for m in req.messages if m.role == "user")
        return await answer(req, prompt, True)

    @app.post("/v1/completions", dependencies=[Depends(authorised)])
    async def completions(req: CompletionRequest):
        if (f := fault()) is not None:
            return error(f, "injected fault", headers={"Retry-After": "0"} if f == 429 else None)
        if isinstance(req.prompt, list) and len(req.prompt) != 1:
            raise HTTPException(400, "prompt: one prompt per request")
        prompt = req.prompt[0] if isinstance(req.prompt, list) else req.prompt
        return await answer(req, prompt, False)

    return app


class OpenAIServer:
    """Serves one :class:`LocalBackend` with uvicorn: :meth:`serve_forever` in the
    foreground, or :meth:`start` in a background thread (tests, notebooks) and
    :meth:`shutdown`. ``port=0`` picks a free port (see :attr:`url`)."""

    def __init__(self, backend: LocalBackend, host: str = "127.0.0.1", port: int = 8000, *,
                 api_key: str | None = None, faults: list[int] | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES, max_batch: int = 64,
                 verbose: bool = False) -> None:
        import uvicorn

        self.app = create_app(backend, api_key=api_key, max_body_bytes=max_body_bytes,
                              max_batch=max_batch, faults=faults)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.config = uvicorn.Config(self.app, log_level="info" if verbose else "warning",
                                     access_log=verbose, timeout_keep_alive=5,
                                     backlog=2048, lifespan="on")
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    @property
    def server_address(self) -> tuple:
        return self.sock.getsockname()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/v1"

    @property
    def batcher(self) -> Batcher:
        return self.app.state.batcher

    @property
    def _faults(self) -> list[int]:
        return self.app.state.faults

    @_faults.setter
    def _faults(self, value: list[int]) -> None:
        self.app.state.faults = list(value)

    def serve_forever(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.batcher.close()

    def start(self) -> "OpenAIServer":
        """Serve in a background thread; returns once it accepts connections."""
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("synthloop serve: the server did not start")
            time.sleep(0.01)
        return self

    def shutdown(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.batcher.close()

    def server_close(self) -> None:
        self.sock.close()
