"""Text generation backends: a local model, or any OpenAI-compatible HTTP server.

Both take rendered prompts and return one :class:`Completion` per prompt; a prompt the backend
could not answer (HTTP errors after every retry, timeouts) comes back with ``error`` set instead
of raising, so a long run drops that one record with its reason and goes on.

The HTTP client speaks the OpenAI completions / chat-completions protocol that vLLM, llama.cpp's
server, Ollama and ``synthloop serve`` all implement: concurrent requests (threads), a timeout
per request, retries with exponential backoff and jitter on connection errors, timeouts, 429
and 5xx (honouring ``Retry-After``), and a client-side rate limit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from synthloop.compliance.watermark import WatermarkProcessor
from synthloop.configs import Config
from synthloop.errors import ConfigError
from synthloop.models.params import GenParams
from synthloop.progress import Advance

#: What a local model may decode in (``auto``: its own dtype on CPU, bfloat16 on CUDA).
DecodeDtype = Literal["auto", "float32", "bfloat16"]


@dataclass(frozen=True)
class Completion:
    """One generated text, or why there is none."""

    text: str = ""
    finish_reason: str = ""
    error: str | None = None


#: Decoding defaults of the pipeline's generation steps, ``synthloop generate`` and
#: ``synthloop serve`` (:class:`~synthloop.models.params.GenParams`; a ``sampling:`` block in
#: YAML overrides only the fields it names). Recorded in every record's provenance.
PIPELINE_SAMPLING = GenParams(max_new_tokens=128, temperature=0.8, top_p=0.95,
                              batch_size=16, stop_at_eos=True)


class TextBackend(ABC):
    """Turns prompts into completions; ``identity()`` says which model did it."""

    @abstractmethod
    def complete(self, prompts: Sequence[str], sampling: GenParams, *, seed: int,
                 chat: bool = True,
                 progress: Advance | None = None) -> list[Completion]:
        """One completion per prompt, in order. ``chat`` wraps each prompt as a user turn."""

    @abstractmethod
    def identity(self) -> tuple[str, str]:
        """``(model name, weights sha256)``; a remote model's hash is the server's word or
        ``"remote:<url>"`` when the server does not say."""


class LocalBackend(TextBackend):
    """A local :class:`~synthloop.models.lm.LanguageModel` (embedded SmolLM2, an HF folder,
    a synthloop model)."""

    def __init__(self, lm, dtype: str = "auto") -> None:
        self.lm = lm
        self.dtype = dtype
        self._sha: str | None = None

    def identity(self) -> tuple[str, str]:
        if self._sha is None:
            self._sha = self.lm.weights_sha256()
        return self.lm.name, self._sha

    def vocab_size(self) -> int:
        tok = getattr(self.lm, "tokenizer", None)
        return max(len(tok), getattr(tok, "vocab_size", 0)) if tok is not None else 0

    def complete(self, prompts, sampling, *, seed, chat=True, progress=None, watermark=None,
                 seeds=None):
        """``watermark``: a :class:`~synthloop.compliance.watermark.GreenList` to mark the
        output with (transformers models only). ``seeds``: one per prompt, each answered as
        if alone with that seed (what a server batching requests needs)."""
        extra = {}
        if watermark is not None:
            from synthloop.models.hf import HFLM

            if not isinstance(self.lm, HFLM):
                raise ConfigError(f"watermarking needs a transformers model; "
                                  f"'{self.lm.name}' is a synthloop from-scratch model")
            extra["logits_processors"] = [WatermarkProcessor(watermark)]
        templated = chat and self.lm.format_chat("x") != "x"
        texts = [self.lm.format_chat(p) if templated else p for p in prompts]
        # a chat template brings its own start tokens; raw text starts at BOS
        ids = [t if templated else [self.lm.bos_id] + t for t in self.lm.encode(texts)]
        limit = self.lm.max_positions - sampling.max_new_tokens
        if limit < 1:
            raise ConfigError(f"max_new_tokens is {sampling.max_new_tokens}: model "
                              f"'{self.lm.name}' holds at most {self.lm.max_positions} "
                              f"positions, prompt included")
        out: list[Completion | None] = [None] * len(prompts)
        ok = [i for i, t in enumerate(ids) if 0 < len(t) <= limit]
        for i, t in enumerate(ids):
            if not 0 < len(t) <= limit:
                out[i] = Completion(error=f"prompt is {len(t)} tokens; the model takes at "
                                          f"most {limit} before {sampling.max_new_tokens} new")
        if self.dtype != "auto":
            import torch

            extra["dtype"] = getattr(torch, self.dtype)
        if not ok:
            return out  # type: ignore[return-value]
        if seeds is not None:
            extra["seeds"] = [seeds[i] for i in ok]
        new = self.lm.generate([ids[i] for i in ok], sampling, seed=seed, progress=progress,
                               **extra)
        for i, toks, text in zip(ok, new, self.lm.decode(new), strict=True):
            reason = "length" if len(toks) >= sampling.max_new_tokens else "stop"
            out[i] = Completion(text=text.strip(), finish_reason=reason)
        return out  # type: ignore[return-value]


class RateLimiter:
    """At most ``rate`` acquisitions per second across threads (evenly spaced)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            time.sleep(wait)


class _TooLarge(Exception):
    pass


def _read_body(r, deadline: float, max_bytes: int) -> bytes:
    """The response body: :class:`TimeoutError` past ``deadline``, :class:`_TooLarge` past
    ``max_bytes``."""
    declared = r.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge
    chunks, size, raw = [], 0, r.raw
    while True:
        # read1: whatever one socket read brings (a dripping server cannot make one call last
        # past the deadline; each read waits at most the socket timeout)
        chunk = raw.read1(65536, decode_content=True)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError
    return b"".join(chunks)


def parse_retry_after(value: str | None) -> float:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date); 0 for
    a missing, malformed, negative or non-finite value. Callers cap it."""
    if not value:
        return 0.0
    try:
        secs = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when is None:
            return 0.0
        import datetime as dt

        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        secs = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return secs if math.isfinite(secs) and secs > 0 else 0.0


class OpenAIBackend(TextBackend):
    """A model behind an OpenAI-compatible HTTP server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server knows.
        api_key: sent as a bearer token when given.
        concurrency: requests in flight at once.
        timeout_s: total seconds one attempt may take (connect, send and the whole body).
        max_retries: retries after the first attempt, for connection errors, timeouts, 429
            and 5xx; other 4xx errors are not retried.
        backoff_s: first retry delay; doubles each retry (full jitter, seeded).
        max_retry_wait_s: the longest wait before a retry, whatever ``Retry-After`` asks.
        max_response_bytes: a larger response body is an error (default 8 MiB).
        requests_per_second: client-side rate limit (``None``: none).

    One prompt thus takes at most about ``(max_retries + 1) * timeout_s + max_retries *
    max_retry_wait_s`` seconds.
    """

    RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 concurrency: int = 8, timeout_s: float = 60.0, max_retries: int = 5,
                 backoff_s: float = 0.5, requests_per_second: float | None = None,
                 max_retry_wait_s: float = 60.0,
                 max_response_bytes: int = 8 << 20) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_retry_wait_s = max_retry_wait_s
        self.max_response_bytes = max_response_bytes
        self.limiter = RateLimiter(requests_per_second)
        self._session = requests.Session()
        self._identity: tuple[str, str] | None = None

    def identity(self) -> tuple[str, str]:
        if self._identity is None:
            sha = f"remote:{self.base_url}"
            try:
                r = self._session.get(f"{self.base_url}/models", headers=self._headers(),
                                      timeout=self.timeout_s)
                for m in r.json().get("data", []) if r.ok else []:
                    if m.get("id") == self.model and m.get("weights_sha256"):
                        sha = str(m["weights_sha256"])
            except Exception:  # noqa: BLE001 — the hash is informative, never required
                pass
            self._identity = (self.model, sha)
        return self._identity

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _body(self, prompt: str, sampling: GenParams, seed: int, chat: bool) -> dict:
        body = {"model": self.model, "max_tokens": sampling.max_new_tokens,
                "temperature": 0.0 if sampling.greedy else sampling.temperature,
                "top_p": 1.0 if sampling.greedy else sampling.top_p, "seed": seed}
        if sampling.top_k and not sampling.greedy:
            body["top_k"] = sampling.top_k
        if sampling.repetition_penalty != 1.0:
            body["repetition_penalty"] = sampling.repetition_penalty
        if chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body

    def _one(self, prompt: str, sampling: GenParams, seed: int, chat: bool) -> Completion:
        import requests

        url = f"{self.base_url}/{'chat/completions' if chat else 'completions'}"
        body = self._body(prompt, sampling, seed, chat)
        jitter = random.Random(seed)
        last = "no attempt"
        retry_after = 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = jitter.uniform(0, self.backoff_s * 2 ** (attempt - 1))
                time.sleep(min(max(delay, retry_after), self.max_retry_wait_s))
            retry_after = 0.0
            self.limiter.acquire()
            deadline = time.monotonic() + self.timeout_s
            try:
                r = self._session.post(url, json=body, headers=self._headers(), stream=True,
                                       timeout=(self.timeout_s, self.timeout_s))
                try:
                    content = _read_body(r, deadline, self.max_response_bytes)
                finally:
                    r.close()
            except (requests.Timeout, TimeoutError):
                last = f"timed out after {self.timeout_s:g} s"
                continue
            except requests.ConnectionError as e:
                last = f"connection error ({type(e).__name__})"
                continue
            except requests.RequestException as e:  # e.g. a broken chunked body
                last = f"bad response ({type(e).__name__})"
                continue
            except _TooLarge:
                return Completion(error=f"{url}: response larger than "
                                        f"{self.max_response_bytes:,} bytes")
            if r.status_code == 200:
                try:
                    choice = json.loads(content)["choices"][0]
                    text = choice["message"]["content"] if chat else choice["text"]
                    return Completion(text=(text or "").strip(),
                                      finish_reason=choice.get("finish_reason") or "")
                except (ValueError, KeyError, IndexError, TypeError, RecursionError):
                    return Completion(error=f"{url}: malformed response body")
            last = f"HTTP {r.status_code}"
            if r.status_code not in self.RETRY_STATUS:
                snippet = content[:200].decode("utf-8", "replace").strip()
                return Completion(error=f"{url}: {last} ({snippet})")
            retry_after = parse_retry_after(r.headers.get("Retry-After"))
        return Completion(error=f"{url}: {last} after {self.max_retries} retries")

    def complete(self, prompts, sampling, *, seed, chat=True, progress=None):
        if sampling.num_beams > 1:
            raise ConfigError("num_beams: an OpenAI-compatible server does not beam search; "
                              "use num_beams: 1", fields=("num_beams",))
        if not sampling.stop_at_eos:
            raise ConfigError("stop_at_eos: an OpenAI-compatible server always stops at the "
                              "end-of-sequence token; use stop_at_eos: true",
                              fields=("stop_at_eos",))

        def run(i: int) -> Completion:
            c = self._one(prompts[i], sampling, seed + i, chat)
            if progress:
                progress(1)
            return c

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(run, range(len(prompts))))


class BackendSpec(Config):
    """Which model generates: a local one by name/folder, or a server by ``base_url``.

    ``model`` is ``smollm2-135m`` (embedded), a local model folder, or, with ``base_url``, the
    model name the server knows. The API key is read from the environment variable named by
    ``api_key_env`` (never from the configuration file).
    """


    model: str = "smollm2-135m"
    base_url: str | None = None
    api_key_env: str | None = None
    device: str = "cpu"
    #: dtype a local model decodes in: ``auto`` (the model's own on CPU, bfloat16 on CUDA),
    #: ``float32`` or ``bfloat16`` (on a CPU with native bf16, ~1.35× faster for SmolLM2).
    dtype: DecodeDtype = "auto"
    concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    max_retry_wait_s: float = Field(60.0, ge=0, le=3600)
    requests_per_second: float | None = Field(None, gt=0)

    def cache_key(self) -> tuple:
        return ("backend", self.model, self.base_url, self.device, self.dtype)

    def check(self) -> None:
        """What can fail before a model is loaded: a named API-key variable that is unset."""
        if self.base_url and self.api_key_env and not os.environ.get(self.api_key_env):
            raise ConfigError(f"environment variable {self.api_key_env} (api_key_env) is not "
                              f"set")

    def build(self) -> TextBackend:
        if self.base_url:
            key = None
            if self.api_key_env:
                key = os.environ.get(self.api_key_env)
                if not key:
                    raise ConfigError(f"environment variable {self.api_key_env} (api_key_env) "
                                      f"is not set")
            return OpenAIBackend(self.base_url, self.model, api_key=key,
                                 concurrency=self.concurrency, timeout_s=self.timeout_s,
                                 max_retries=self.max_retries,
                                 max_retry_wait_s=self.max_retry_wait_s,
                                 requests_per_second=self.requests_per_second)
        from synthloop.models.registry import load_lm

        return LocalBackend(load_lm(self.model, device=self.device), dtype=self.dtype)


def template_sha256(template: str) -> str:
    """sha256 of a prompt template (recorded in provenance)."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()
