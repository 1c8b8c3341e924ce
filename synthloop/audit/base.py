"""The audit's shared nouns: a metric's result beside its real-data baseline, and warnings.

Every metric is computed twice, the same way: on (real, synthetic) and on (real, holdout),
where the holdout is real data the synthetic generator never saw. The holdout's value is the
baseline: what real data itself scores. A metric's ``score`` in [0, 1] says how close the
synthetic value comes to that baseline (1 = as good as real data), so scores of different
metrics can be averaged into a property score and an overall grade.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthloop.progress import Progress

Direction = Literal["higher", "lower", "target"]

# Score bands for the letter grade shown on the report.
GRADES = ((0.9, "A"), (0.8, "B"), (0.7, "C"), (0.6, "D"), (0.0, "F"))


@dataclass
class MetricResult:
    """One metric's value for the synthetic data and the same metric on the real holdout.

    Attributes:
        name: metric id (``distinct_2``, ``column_shapes``...).
        prop: the property it belongs to (``fidelity``, ``tails``, ``diversity``...).
        value: the synthetic data's value.
        baseline: the holdout's value, measured the same way (None where not applicable).
        direction: ``higher``/``lower`` is better, or ``target`` (best when equal to baseline).
        range: (low, high) of the value; ``math.inf`` where unbounded.
        score: agreement with the baseline in [0, 1]; None for informational metrics.
        description: one line for the report.
        breakdown: per-column / per-rule details (JSON-serialisable).
    """

    name: str
    prop: str
    value: float | None
    baseline: float | None
    direction: Direction
    range: tuple[float, float]
    score: float | None
    description: str
    breakdown: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricResult:
        """The inverse of :meth:`to_dict` (``"inf"`` strings back to floats)."""
        def num(x: Any) -> float | None:
            return None if x is None else float(x)

        return cls(name=d["name"], prop=d["prop"], value=num(d["value"]),
                   baseline=num(d["baseline"]), direction=d["direction"],
                   range=(float(d["range"][0]), float(d["range"][1])), score=num(d["score"]),
                   description=d["description"], breakdown=d.get("breakdown", {}))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["range"] = [_json_float(x) for x in self.range]
        d["value"] = _json_float(self.value)
        d["baseline"] = _json_float(self.baseline)
        d["score"] = _json_float(self.score)
        return d


@dataclass
class AuditWarning:
    """A plain-language finding; ``level`` is ``warning`` or ``critical``."""

    prop: str
    metric: str
    level: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _json_float(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def relative_score(value: float, baseline: float | None, direction: Direction,
                   scale: float | None = None) -> float:
    """How close ``value`` comes to ``baseline`` in [0, 1]; 1 when at least as good.

    ``higher``: value / baseline (capped at 1). ``lower``: baseline / value (capped at 1).
    ``target``: 1 - |value - baseline| / scale, where ``scale`` defaults to |baseline|.
    Values of 0 on both sides score 1.
    """
    if value is None or not math.isfinite(value):
        return 0.0
    if baseline is None or not math.isfinite(baseline):
        return float("nan")
    eps = 1e-12
    if direction == "higher":
        if baseline <= eps:
            return 1.0
        return float(min(1.0, max(0.0, value / baseline)))
    if direction == "lower":
        if value <= baseline or value <= eps:
            return 1.0
        return float(min(1.0, max(0.0, (baseline + eps) / value)))
    s = abs(baseline) if scale is None else scale
    if s <= eps:
        return 1.0 if abs(value - baseline) <= eps else 0.0
    return float(min(1.0, max(0.0, 1.0 - abs(value - baseline) / s)))


def worse_than(value: float, baseline: float | None, direction: Direction, *,
               rel: float, abs_: float = 0.0) -> bool:
    """True when ``value`` is worse than ``baseline`` by more than ``rel`` (relative) and
    ``abs_`` (absolute) together: the rule behind every collapse warning."""
    if value is None or baseline is None or not math.isfinite(baseline):
        return False
    if not math.isfinite(value):
        return True
    margin = max(abs(baseline) * rel, abs_)
    if direction == "higher":
        return value < baseline - margin
    if direction == "lower":
        return value > baseline + margin
    return abs(value - baseline) > margin


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (the sup of the ECDF difference over all observed
    values, as scipy's ``ks_2samp`` computes it) from one sort of both samples, without the
    p-value; 1.0 if a side is empty. NaNs must be removed by the caller."""
    if not len(a) or not len(b):
        return 1.0
    both = np.concatenate([a, b])
    order = np.argsort(both)  # ties: only the last index of each value is read
    diff = np.cumsum(np.where(order < len(a), 1.0 / len(a), -1.0 / len(b)))
    sorted_vals = both[order]
    last_of_value = np.r_[sorted_vals[1:] != sorted_vals[:-1], True]  # ECDFs jump at ties
    return float(np.abs(diff[last_of_value]).max())


def holdout_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into sorted (train, holdout) indices; the holdout gets
    ``round(n * fraction)`` items (at least 1). Text and table audits split the same way."""
    perm = np.random.default_rng(seed).permutation(n)
    n_hold = max(1, int(round(n * fraction)))
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


class FeatureMemo:
    """Features an audit computed, keyed by what they were computed from (a model, settings
    and the sha256 of the texts), for reuse by later audits of the same real data: pass one
    memo to several :func:`synthloop.audit` calls (as ``synthloop monitor`` does for its
    generations) and the real side's embeddings and reference-LM statistics are computed
    once. Owned by the caller; holds what it computed until dropped (for a text audit: the
    real data's embeddings, 1.5 kB per document, and per-token statistics of at most
    ``ppl_docs`` documents per side).

    With ``folder``, arrays are also written there (``.npz``, no pickle, atomic) and read
    back by a later memo on the same folder — another process, another day. Values without
    an array form (a loaded model) stay in memory only.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self._items: dict[tuple, Any] = {}
        self.folder = None if folder is None else Path(folder)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def texts_key(texts: Sequence[str]) -> str:
        """sha256 of a list of texts (order and boundaries included)."""
        import hashlib

        h = hashlib.sha256()
        for t in texts:
            b = t.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
        return h.hexdigest()

    def _file(self, key: tuple) -> Path | None:
        if self.folder is None:
            return None
        import hashlib

        from synthloop import __version__

        name = hashlib.sha256(repr((__version__, key)).encode()).hexdigest()
        return self.folder / f"{name}.npz"

    def get(self, key: tuple, compute: Callable[[], Any], *,
            save: Callable[[Any], dict[str, np.ndarray]] | None = None,
            load: Callable[[dict[str, np.ndarray]], Any] | None = None) -> Any:
        """The value stored under ``key``, computed (and stored) on first use. ``save`` /
        ``load`` turn it into named arrays and back, for the folder."""
        if key in self._items:
            self.hits += 1
            return self._items[key]
        f = self._file(key) if save is not None and load is not None else None
        if f is not None and f.is_file():
            try:
                with np.load(f, allow_pickle=False) as z:
                    value = load({k: z[k] for k in z.files})
                self.hits += 1
                self._items[key] = value
                return value
            except (OSError, ValueError, KeyError):
                pass  # a damaged file is recomputed and rewritten
        self.misses += 1
        value = self._items[key] = compute()
        if f is not None:
            from synthloop.records.io import atomic_path

            f.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(f) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **save(value))
        return value


def remembered(memo: FeatureMemo | None, key: tuple, compute: Callable[[], Any], *,
               save: Callable[[Any], dict[str, np.ndarray]] | None = None,
               load: Callable[[dict[str, np.ndarray]], Any] | None = None) -> Any:
    """``compute()``, through ``memo`` when there is one."""
    return compute() if memo is None else memo.get(key, compute, save=save, load=load)


def stage_reporter(progress: Progress | None):
    """``say(name)``: opens a stage of unknown length called ``name`` on ``progress``."""
    if progress is None:
        return lambda name: None
    return lambda name: progress.stage(name, None)


def grade(score: float | None) -> str:
    """Letter grade for an overall score in [0, 1]."""
    if score is None or not math.isfinite(score):
        return "?"
    return next(g for lo, g in GRADES if score >= lo)
