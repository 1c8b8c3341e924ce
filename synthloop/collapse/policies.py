"""Data policies: what the next generation trains on, given real data and synthetic data so far.

Policies are pure functions of tables and a seeded RNG, so the mix of every generation is
reproducible and its provenance (origin, generation) is carried row by row.

================================  ===========================================================
``replace``                       only the newest synthetic data (Shumailov et al. 2024)
``keep-real:p``                   a fraction ``p`` of real records, the rest newest synthetic;
                                  total size equals the real set's
``accumulate``                    real data plus every synthetic set so far (Gerstgrasser et
                                  al. 2024); grows each generation
``accumulate-subsample``          a uniform sample, of the real set's size, from the
                                  accumulated pool: the compute-matched control
``filter:NAME:q``                  newest synthetic data after a filter dropped the worst
                                  fraction ``q``; oversampled so the kept size equals the real
                                  set's. ``NAME`` is a registered filter (``ppl-top``: drop the
                                  highest generation-0 perplexity; ``ppl-bottom``: drop the
                                  lowest)
================================  ===========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthloop.errors import ConfigError


@dataclass(frozen=True)
class FilterResult:
    """Which rows a filter keeps, and for each dropped row, why."""

    keep: np.ndarray  # bool per row
    reasons: list[str | None]


#: A filter maps (candidates, how many to keep) to a FilterResult. Candidates carry score
#: columns (``gen0_ppl`` at least); a verifier or judge adds its own column and filter.
FilterFn = Callable[[pa.Table, int], FilterResult]
_FILTERS: dict[str, Callable[[float], FilterFn]] = {}


def register_filter(name: str, factory: Callable[[float], FilterFn]) -> None:
    """Make ``filter:NAME:q`` available; ``factory(q)`` returns the filter function."""
    _FILTERS[name] = factory


def _by_score(column: str, drop_high: bool) -> Callable[[float], FilterFn]:
    def factory(q: float) -> FilterFn:
        def run(cands: pa.Table, n_keep: int) -> FilterResult:
            scores = np.asarray(cands.column(column).to_numpy(zero_copy_only=False), float)
            order = np.argsort(scores if drop_high else -scores, kind="stable")
            keep = np.zeros(len(scores), dtype=bool)
            keep[order[:n_keep]] = True
            kept_scores = scores[keep]
            cut = kept_scores.max() if drop_high else kept_scores.min()
            rel = ">" if drop_high else "<"
            reasons = [None if k else f"{column} {s:.2f} {rel} cutoff {cut:.2f}"
                       for k, s in zip(keep, scores, strict=True)]
            return FilterResult(keep, reasons)
        return run
    return factory


register_filter("ppl-top", _by_score("gen0_ppl", drop_high=True))
register_filter("ppl-bottom", _by_score("gen0_ppl", drop_high=False))

KINDS = ("replace", "keep-real", "accumulate", "accumulate-subsample", "filter")


@dataclass(frozen=True)
class Policy:
    """A parsed policy spec (see the module docstring for the grammar)."""

    spec: str
    kind: str
    real_fraction: float = 0.0
    filter_name: str | None = None
    filter_fraction: float = 0.0

    @property
    def slug(self) -> str:
        """A file-system-safe name."""
        return self.spec.replace(":", "_").replace("+", "-")

    @property
    def oversample(self) -> float:
        """How many candidates to generate per record kept (≥ 1)."""
        return 1.0 / (1.0 - self.filter_fraction) if self.kind == "filter" else 1.0

    def n_candidates(self, n: int) -> int:
        return math.ceil(n * self.oversample - 1e-9)

    def filter_fn(self) -> FilterFn:
        assert self.filter_name is not None
        return _FILTERS[self.filter_name](self.filter_fraction)


def _fraction(text: str, spec: str, *, closed_one: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"policy '{spec}': '{text}' is not a number") from None
    if not (0 <= v <= 1 if closed_one else 0 < v < 1):
        raise ConfigError(f"policy '{spec}': fraction {v} out of range "
                          f"{'[0, 1]' if closed_one else '(0, 1)'}")
    return v


def parse_policy(spec: str) -> Policy:
    """Parse one policy spec, e.g. ``keep-real:0.1`` or ``filter:ppl-top:0.2``."""
    spec = spec.strip()
    parts = spec.split(":")
    kind = parts[0]
    if kind in ("replace", "accumulate", "accumulate-subsample") and len(parts) == 1:
        return Policy(spec, kind)
    if kind == "keep-real" and len(parts) == 2:
        return Policy(spec, kind, real_fraction=_fraction(parts[1], spec, closed_one=True))
    if kind == "filter" and len(parts) == 3:
        if parts[1] not in _FILTERS:
            raise ConfigError(f"policy '{spec}': unknown filter '{parts[1]}' "
                              f"(known: {', '.join(sorted(_FILTERS))})")
        return Policy(spec, kind, filter_name=parts[1],
                      filter_fraction=_fraction(parts[2], spec, closed_one=False))
    raise ConfigError(f"unknown policy '{spec}' (use replace, keep-real:P, accumulate, "
                      f"accumulate-subsample or filter:NAME:Q)")


def parse_policies(text: str) -> list[Policy]:
    """Parse a comma-separated list of policy specs (duplicates are an error)."""
    policies = [parse_policy(s) for s in text.split(",") if s.strip()]
    if not policies:
        raise ConfigError("no policy given")
    seen = set()
    for p in policies:
        if p.spec in seen:
            raise ConfigError(f"policy '{p.spec}' given twice")
        seen.add(p.spec)
    return policies


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    return table.take(pa.array(np.sort(rows), pa.int64()))


def mix(policy: Policy, real: pa.Table, synthetic: Mapping[int, pa.Table], generation: int,
        rng: np.random.Generator) -> pa.Table:
    """The training set of ``generation`` (≥ 1) under ``policy``.

    Args:
        real: the real training records (their count ``n`` is the target size).
        synthetic: synthetic sets by generation (1..generation), already filtered for a
            ``filter`` policy; each must hold at least ``n`` records.
        rng: seeded generator for every sampling decision.

    Returns a table with the common columns of its parts, provenance included.
    """
    if generation < 1:
        raise ValueError("generation 0 trains on real data only")
    n = real.num_rows
    newest = synthetic[generation]
    if newest.num_rows < n:
        raise ValueError(f"synthetic set of generation {generation} has {newest.num_rows} "
                         f"records, fewer than the {n} needed")
    if policy.kind in ("replace", "filter"):
        return _take(newest, rng.choice(newest.num_rows, n, replace=False))
    if policy.kind == "keep-real":
        k = round(policy.real_fraction * n)
        parts = [_take(real, rng.choice(n, k, replace=False)),
                 _take(newest, rng.choice(newest.num_rows, n - k, replace=False))]
        return _concat(parts)
    pool = _concat([real] + [synthetic[g] for g in range(1, generation + 1)])
    if policy.kind == "accumulate":
        return pool
    if policy.kind == "accumulate-subsample":
        return _take(pool, rng.choice(pool.num_rows, n, replace=False))
    raise ValueError(f"unknown policy kind {policy.kind}")


def _concat(parts: list[pa.Table]) -> pa.Table:
    common = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
    return pa.concat_tables([p.select(common) for p in parts])


def mix_summary(table: pa.Table) -> dict:
    """Counts of a training mix by origin and generation: the traceable share of each."""
    gens = pc.value_counts(table.column("generation")).to_pylist()
    by_gen = {str(d["values"]): int(d["counts"]) for d in gens}
    real = int(pc.sum(pc.equal(table.column("origin"), "real")).as_py() or 0)
    return {"records": table.num_rows, "real": real,
            "synthetic": table.num_rows - real,
            "real_share": real / table.num_rows if table.num_rows else 0.0,
            "by_generation": dict(sorted(by_gen.items(), key=lambda kv: int(kv[0])))}
