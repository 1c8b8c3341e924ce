"""Seeds derived from a base seed and a position, stable across machines and Python versions.

Two derivations exist because results recorded with each must reproduce byte for byte; they
have two names:

- :func:`derive_seed` — 63 bits from the SHA-256 of the JSON list ``[base, *parts]``: the
  pipeline's per-step, per-shard seeds;
- :func:`derive_seed31` — 31 bits from the SHA-256 of ``repr(parts)``: the collapse lab's
  per-seed, per-generation seeds (a 31-bit value suits every RNG it seeds).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def derive_seed(base: int, *parts: object) -> int:
    """A 63-bit seed from ``base`` and JSON-serialisable ``parts`` (e.g. stage, step, shard)."""
    h = hashlib.sha256(json.dumps([base, *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def derive_seed31(*parts: Any) -> int:
    """A 31-bit seed from ``parts`` (their ``repr``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big") >> 1
