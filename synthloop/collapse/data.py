"""Corpus preparation for the collapse lab: fixed-length token blocks and a seeded split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from synthloop.errors import InputError
from synthloop.records.schema import text_records


@dataclass
class CorpusSplit:
    """Real train and held-out test records (text + provenance, plus a ``source`` column)."""

    train: pa.Table
    test: pa.Table
    total_blocks: int


def make_blocks(docs: Sequence[tuple[str, str]], encode, decode, block_tokens: int
                ) -> tuple[list[str], list[str]]:
    """Cut each document into consecutive blocks of ``block_tokens`` tokens (the remainder of
    a document is dropped) and decode them back to text. Returns ``(texts, sources)``."""
    texts: list[str] = []
    sources: list[str] = []
    encoded = encode([t for _, t in docs])
    for (name, _), ids in zip(docs, encoded, strict=True):
        n = len(ids) // block_tokens
        blocks = [ids[i * block_tokens:(i + 1) * block_tokens] for i in range(n)]
        texts.extend(decode(blocks))
        sources.extend([name] * n)
    return texts, sources


def split_corpus(texts: Sequence[str], sources: Sequence[str], *, test_fraction: float,
                 max_train: int | None, max_test: int | None, seed: int,
                 segment: int = 16, created_at: str | None = None) -> CorpusSplit:
    """Seeded train/test split by contiguous segments of ``segment`` blocks.

    Splitting by segments rather than single blocks keeps neighbouring blocks (which share
    context) on the same side. Caps take a seeded random subset of each side.
    """
    n = len(texts)
    if n < 4:
        raise InputError(f"corpus too small: {n} blocks (need at least 4)")
    if not 0 < test_fraction < 1:
        raise InputError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    seg_ids = np.arange(n) // segment
    n_seg = int(seg_ids[-1]) + 1
    order = rng.permutation(n_seg)
    n_test_seg = max(1, round(test_fraction * n_seg))
    if n_test_seg >= n_seg:
        n_test_seg = n_seg - 1 if n_seg > 1 else 0
    test_segs = set(order[:n_test_seg].tolist())
    is_test = np.array([s in test_segs for s in seg_ids])
    if n_seg == 1:  # one segment: fall back to a block-level split
        is_test = np.zeros(n, dtype=bool)
        is_test[rng.permutation(n)[:max(1, round(test_fraction * n))]] = True
    train_idx = np.flatnonzero(~is_test)
    test_idx = np.flatnonzero(is_test)
    if max_train is not None and len(train_idx) > max_train:
        train_idx = np.sort(rng.choice(train_idx, max_train, replace=False))
    if max_test is not None and len(test_idx) > max_test:
        test_idx = np.sort(rng.choice(test_idx, max_test, replace=False))

    def table(idx: np.ndarray) -> pa.Table:
        return text_records([texts[i] for i in idx], origin="real", created_at=created_at,
                            extra={"source": [sources[i] for i in idx]})

    return CorpusSplit(table(train_idx), table(test_idx), n)
