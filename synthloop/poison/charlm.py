"""A character n-gram language model fitted on the dataset being scanned.

Poisoned records are a tiny share of a dataset (250 in 100k), so the dataset itself is a good
reference for what its text looks like: gibberish continuations (random tokens) are made of
character sequences that are rare everywhere else. The model is an interpolation of add-k
smoothed character 1..``order``-gram estimates over hashed contexts, counted for the whole
corpus at once with numpy (tens of millions of characters per minute on one core).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)


def _encode(texts: Sequence[str], max_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """Code points of all texts (each prefixed by a boundary 0), and document offsets."""
    pieces = [np.frombuffer(("\x00" + t[:max_chars]).encode("utf-32-le"), dtype=np.uint32)
              for t in texts]
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return (np.concatenate(pieces).astype(np.uint64) if pieces else np.zeros(0, np.uint64),
            offsets)


def _context_hashes(codes: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
    """Hash of the ``k`` characters before each position (within its document)."""
    h = np.zeros(len(codes), dtype=np.uint64)
    starts = np.repeat(offsets[:-1], np.diff(offsets))
    pos = np.arange(len(codes))
    with np.errstate(over="ignore"):
        for j in range(1, k + 1):
            prev = np.where(pos - j >= starts, codes[np.maximum(pos - j, 0)], np.uint64(0))
            h = (h ^ (prev + np.uint64(j))) * _MULT
    return h


class CharNgramLM:
    """Interpolated character n-gram model.

    Args:
        order: longest n-gram (context of ``order − 1`` characters).
        add_k: add-k smoothing of each order's estimate.
        max_chars: characters per document used (longer documents are cut).
    """

    def __init__(self, order: int = 4, add_k: float = 0.1, max_chars: int = 4000) -> None:
        self.order = order
        self.add_k = add_k
        self.max_chars = max_chars
        self.weights = np.array([0.05, 0.15, 0.3, 0.5][-order:], dtype=float)
        self.weights /= self.weights.sum()

    def fit(self, texts: Sequence[str]) -> CharNgramLM:
        codes, offsets = _encode(texts, self.max_chars)
        self.vocab = max(256, len(np.unique(codes)))
        self._tables = []
        for k in range(self.order):
            ctx = _context_hashes(codes, offsets, k)
            with np.errstate(over="ignore"):
                joint = (ctx ^ codes) * _MULT + np.uint64(k)
            ctx_keys, ctx_counts = np.unique(ctx, return_counts=True)
            joint_keys, joint_counts = np.unique(joint, return_counts=True)
            self._tables.append((ctx_keys, ctx_counts, joint_keys, joint_counts))
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
        i = np.searchsorted(keys, q)
        i = np.minimum(i, len(keys) - 1)
        return np.where(keys[i] == q, counts[i], 0).astype(float)

    def char_losses(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-character loss in nats (boundary characters excluded) and document offsets
        into that array."""
        codes, offsets = _encode(texts, self.max_chars)
        p = np.zeros(len(codes))
        for k, (ck, cc, jk, jc) in enumerate(self._tables):
            ctx = _context_hashes(codes, offsets, k)
            with np.errstate(over="ignore"):
                joint = (ctx ^ codes) * _MULT + np.uint64(k)
            num = self._lookup(jk, jc, joint) + self.add_k
            den = self._lookup(ck, cc, ctx) + self.add_k * self.vocab
            p += self.weights[k] * num / den
        loss = -np.log(p)
        keep = np.ones(len(codes), dtype=bool)
        keep[offsets[:-1]] = False  # the boundary marker is not text
        new_offsets = offsets - np.arange(len(offsets))
        return loss[keep], new_offsets


def max_window_loss(losses: np.ndarray, offsets: np.ndarray, window: int = 48) -> np.ndarray:
    """Per document: the highest mean loss over any ``window`` consecutive characters (the
    whole document when shorter) — high where any stretch of it is gibberish."""
    out = np.zeros(len(offsets) - 1)
    csum = np.concatenate([[0.0], np.cumsum(losses)])
    for d in range(len(offsets) - 1):
        a, b = offsets[d], offsets[d + 1]
        n = b - a
        if n == 0:
            continue
        w = min(window, n)
        sums = csum[a + w:b + 1] - csum[a:b - w + 1]
        out[d] = sums.max() / w
    return out
