"""Green-list text watermarking (Kirchenbauer et al. 2023) with self-hash seeding.

At each decoding step a keyed pseudo-random function splits the vocabulary into a green list
(a share γ) and a red list, and δ is added to the green tokens' logits. Seeding is
"self-hash" (Kirchenbauer et al. 2023b): whether candidate ``v`` is green depends on the
``context_width`` previous tokens *and* on ``v`` itself, through the minimum of their keyed
hashes — which makes the watermark harder to scrub by editing single context tokens.

Detection needs only the text, the tokenizer and the key: every scored token is green with
probability γ in text written without the key, so the green count of ``T`` scored tokens is
Binomial(T, γ); we report the z-score and the exact binomial p-value. Repeated
(context, token) n-grams are scored once (repetitive text would otherwise inflate z), and the
first ``context_width`` tokens are not scored (their context was the prompt, which is never
scored with the output).

The key comes from ``SYNTHLOOP_WATERMARK_KEY`` or a key file and never leaves memory: outputs
carry only its key id (a hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from synthloop.compliance.secrets import read_secret
from synthloop.configs import Config
from synthloop.errors import ConfigError, ModelNotFoundError

KEY_ENV = "SYNTHLOOP_WATERMARK_KEY"
SCHEME = "kgw-selfhash"

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (a bijection on 64-bit integers)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def load_key(key_file: str | Path | None = None) -> bytes:
    """The watermark key: the file's bytes (surrounding whitespace removed) or the
    ``SYNTHLOOP_WATERMARK_KEY`` environment variable. At least 16 bytes."""
    key, where = read_secret(key_file, KEY_ENV, "watermark key")
    key = key.strip()
    if len(key) < 16:
        raise ConfigError(f"{where}: the watermark key must be at least 16 bytes")
    return key


def key_id(key: bytes) -> str:
    """A public identifier of a key (a hash; the key cannot be recovered from it)."""
    return "wm-" + hashlib.sha256(b"synthloop-watermark-key-id\x00" + key).hexdigest()[:16]


class WatermarkSpec(Config):
    """Scheme parameters (recommended settings of Kirchenbauer et al.).

    Attributes:
        gamma: share of the vocabulary that is green after each context, in (0, 1).
        delta: logit bias added to green tokens (> 0; 2.0 ≈ +46% perplexity on SmolLM2).
        context_width: previous tokens that seed the green list, 1–16.
    """

    gamma: float = Field(0.25, gt=0, lt=1)
    delta: float = Field(2.0, gt=0)
    context_width: int = Field(4, ge=1, le=16)

    def to_dict(self) -> dict:
        return {"scheme": SCHEME, **self.model_dump()}


class GreenList:
    """The keyed green-list function over a vocabulary of ``vocab_size`` token ids."""

    def __init__(self, key: bytes, vocab_size: int, spec: WatermarkSpec = WatermarkSpec()):
        self.spec = spec
        self.key_id = key_id(key)
        seed = np.uint64(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        self.salt = _mix(np.array([seed ^ np.uint64(0x5EED)], dtype=np.uint64))[0]
        self.token_hash = _mix(np.arange(vocab_size, dtype=np.uint64) ^ seed)
        self.cut = np.uint64(int(spec.gamma * 2**64) - 1)

    def _green(self, context_min: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        h = self.token_hash[tokens]
        anchor = np.minimum(context_min, h)
        with np.errstate(over="ignore"):
            return _mix(anchor ^ (h * np.uint64(0x9E3779B97F4A7C15)) ^ self.salt) <= self.cut

    def green_mask(self, context: Sequence[int]) -> np.ndarray:
        """Boolean over the whole vocabulary: green candidates after ``context``."""
        ctx = np.asarray(list(context)[-self.spec.context_width:], dtype=np.int64)
        cmin = self.token_hash[ctx].min() if len(ctx) else np.uint64(2**64 - 1)
        return self._green(np.full(len(self.token_hash), cmin, dtype=np.uint64),
                           np.arange(len(self.token_hash)))

    def score_ids(self, ids: Sequence[int]) -> dict:
        """Detection statistics of one token sequence (the generated text only)."""
        return self.score_many([ids])

    def score_many(self, sequences: Sequence[Sequence[int]]) -> dict:
        """Detection statistics of many token sequences pooled: every distinct (context,
        token) window across all of them is scored once (a corpus-level test, as a check of
        whether a model's outputs carry a key's watermark needs)."""
        from scipy.stats import binom

        w = self.spec.context_width
        seen: set[tuple[int, ...]] = set()
        n = green = 0
        for seq in sequences:
            ids = np.asarray(seq, dtype=np.int64)
            ids = ids[(ids >= 0) & (ids < len(self.token_hash))]
            keep = []
            for t in range(w, len(ids)):
                gram = tuple(ids[t - w:t + 1].tolist())
                if gram not in seen:
                    seen.add(gram)
                    keep.append(t)
            if not keep:
                continue
            at = np.asarray(keep)
            windows = np.stack([ids[at - j] for j in range(1, w + 1)], axis=1)
            cmin = self.token_hash[windows].min(axis=1)
            green += int(self._green(cmin, ids[at]).sum())
            n += len(keep)
        if n == 0:
            return {"tokens_scored": 0, "green": 0, "z": 0.0, "p_value": 1.0}
        g = self.spec.gamma
        z = (green - g * n) / np.sqrt(n * g * (1 - g))
        return {"tokens_scored": n, "green": green, "z": round(float(z), 4),
                "p_value": float(binom.sf(green - 1, n, g))}


class WatermarkProcessor:
    """A transformers ``LogitsProcessor``: adds δ to the green tokens' logits at every step."""

    def __init__(self, green: GreenList) -> None:
        self.green = green

    def __call__(self, input_ids, scores):
        import torch

        v = scores.shape[-1]
        if v > len(self.green.token_hash):
            raise ValueError(f"vocabulary {v} larger than the green list's "
                             f"{len(self.green.token_hash)}")
        rows = input_ids.detach().cpu().numpy()
        mask = np.stack([self.green.green_mask(r)[:v] for r in rows])
        bias = torch.from_numpy(mask).to(scores.device, scores.dtype) * self.green.spec.delta
        return scores + bias


def watermark_marker(green: GreenList, model: str) -> str:
    """The per-record watermark field: scheme, parameters, key id, tokenizer (no key)."""
    return json.dumps({**green.spec.to_dict(), "key_id": green.key_id, "tokenizer": model},
                      sort_keys=True)


def load_tokenizer(model: str):
    """The tokenizer of a model spec (``smollm2-135m`` or a local HF folder), no weights."""
    from transformers import AutoTokenizer


    if model == "smollm2-135m":
        from synthloop.models.hf import smollm2_dir

        path = smollm2_dir()
    else:
        path = Path(model)
        if not path.is_dir():
            raise ModelNotFoundError(f"model '{model}': watermark detection needs "
                                     f"smollm2-135m or a local transformers model folder")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def detect(texts: Sequence[str], key: bytes, *, model: str = "smollm2-135m",
           spec: WatermarkSpec = WatermarkSpec(), z_threshold: float = 4.0,
           tokenizer=None) -> list[dict]:
    """Per text: tokens scored, green count, z, exact p-value and the verdict at
    ``z_threshold``."""
    tok = tokenizer or load_tokenizer(model)
    green = GreenList(key, max(len(tok), tok.vocab_size), spec)
    out = []
    for ids in tok(list(texts), add_special_tokens=False)["input_ids"]:
        s = green.score_ids(ids)
        s["watermarked"] = bool(s["z"] >= z_threshold)
        out.append(s)
    return out
