"""Data policies: what the next generation trains on, given real data and synthetic data so far.

Policies are pure functions of tables and a seeded RNG, so the mix of every generation is
reproducible and its provenance (origin, generation) is carried row by row. The collapse lab
(:func:`mix`: a training set per generation) and the curation pipeline (:func:`mix_dataset`:
one real set and one synthetic set of any depths) use these same policies, and a name means
the same data in both: ``keep-real`` and ``real-share`` are one implementation each
(:func:`keep_real`, :func:`real_share`).

================================  ===========================================================
``replace``                       only the newest synthetic data (Shumailov et al. 2024)
``keep-real:p``                   a fraction ``p`` of real records, the rest newest synthetic;
                                  total size equals the real set's (smaller only when too few
                                  synthetic records exist: then all of them, and real records
                                  for the share ``p``)
``real-share:p``                  every (newest) synthetic record, plus real records so that
                                  the real share is ``p`` (capped by the real records there
                                  are): the set grows with the synthetic data
``accumulate``                    real data plus every synthetic set so far (Gerstgrasser et
                                  al. 2024); grows each generation
``accumulate-subsample``          a uniform sample, of the real set's size, from the
                                  accumulated pool: the compute-matched control
``max-depth:k``                   real data plus every synthetic set at most ``k`` model hops
                                  from real data (records deeper than ``k`` are dropped)
``filter:NAME:q``                 newest synthetic data after a filter dropped the worst
                                  fraction ``q``; oversampled so the kept size equals the real
                                  set's. ``NAME`` is a registered filter (``ppl-top``: drop the
                                  highest generation-0 perplexity; ``ppl-bottom``: drop the
                                  lowest; ``self-confidence``: drop the answers the generating
                                  model was least sure of; ``verified``: keep only what an
                                  independent verifier accepts — see below)
================================  ===========================================================

``filter:verified:q`` draws ``n/(1 − q)`` candidates and keeps the first ``n`` whose
``verified`` column (a program's verdict: is the answer correct?) is true; when fewer pass, the
set is smaller (Feng et al. 2024: the verifier decides what is kept, not a quota).
``filter:verified@f:q`` is an imperfect verifier: it also accepts a share ``f`` of the wrong
answers (which ones is fixed by a hash of the record id, so the same record always gets the
same verdict).

================================  ===========================================================
================================  ===========================================================
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthloop.errors import ConfigError
from synthloop.records.schema import concat_records


@dataclass(frozen=True)
class FilterResult:
    """Which rows a filter keeps, and for each dropped row, why."""

    keep: np.ndarray  # bool per row
    reasons: list[str | None]


#: A filter maps (candidates, how many to keep) to a FilterResult. Candidates carry score
#: columns (``gen0_ppl`` at least); a verifier or judge adds its own column and filter.
FilterFn = Callable[[pa.Table, int], FilterResult]
_FILTERS: dict[str, Callable[[float], FilterFn]] = {}
#: Filters that take a parameter, ``filter:NAME@x:q``: ``factory(q, x)``.
_PARAM_FILTERS: dict[str, Callable[[float, float], FilterFn]] = {}


def register_filter(name: str, factory: Callable[[float], FilterFn]) -> None:
    """Make ``filter:NAME:q`` available; ``factory(q)`` returns the filter function."""
    _FILTERS[name] = factory


def register_param_filter(name: str, factory: Callable[[float, float], FilterFn]) -> None:
    """Make ``filter:NAME@x:q`` available (``x`` a number in [0, 1]); ``factory(q, x)``
    returns the filter function. ``filter:NAME:q`` (no ``@``) is ``factory(q, 0.0)``."""
    _PARAM_FILTERS[name] = factory


def _column(cands: pa.Table, name: str, filter_name: str) -> np.ndarray:
    if name not in cands.column_names:
        raise ConfigError(f"filter '{filter_name}' needs a '{name}' column in the candidates "
                          f"(this run's task does not write one)")
    return np.asarray(cands.column(name).to_numpy(zero_copy_only=False))


def _by_score(column: str, drop_high: bool) -> Callable[[float], FilterFn]:
    def factory(q: float) -> FilterFn:
        def run(cands: pa.Table, n_keep: int) -> FilterResult:
            scores = _column(cands, column, column).astype(float)
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
# ``confidence``: the generating model's own mean log-probability of its answer tokens.
register_filter("self-confidence", _by_score("confidence", drop_high=False))


def hash_uniform(record_id: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``record_id`` and ``salt`` (sha256; no RNG state)."""
    digest = hashlib.sha256(f"{salt}|{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _verified(q: float, false_accept: float) -> FilterFn:
    def run(cands: pa.Table, n_keep: int) -> FilterResult:
        ok = _column(cands, "verified", "verified").astype(bool)
        ids = cands.column("id").to_pylist()
        accept = ok | np.array([not v and hash_uniform(i, "verifier") < false_accept
                                for v, i in zip(ok, ids, strict=True)], dtype=bool)
        keep = accept & (np.cumsum(accept) <= n_keep)
        reasons = [None if k else "verifier: answer rejected" if not a
                   else f"verifier: accepted beyond the {n_keep} needed"
                   for k, a in zip(keep, accept, strict=True)]
        return FilterResult(keep, reasons)
    return run


register_param_filter("verified", _verified)

KINDS = ("replace", "keep-real", "accumulate", "accumulate-subsample", "max-depth", "filter")


@dataclass(frozen=True)
class DataPolicy:
    """A parsed policy spec (see the module docstring for the grammar)."""

    spec: str
    kind: str
    real_fraction: float = 0.0
    filter_name: str | None = None
    filter_fraction: float = 0.0
    max_depth: int = 0

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
        name, _, param = self.filter_name.partition("@")
        if name in _PARAM_FILTERS:
            return _PARAM_FILTERS[name](self.filter_fraction, float(param or 0.0))
        return _FILTERS[name](self.filter_fraction)


def _fraction(text: str, spec: str, *, closed_one: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"policy '{spec}': '{text}' is not a number") from None
    if not (0 <= v <= 1 if closed_one else 0 < v < 1):
        raise ConfigError(f"policy '{spec}': fraction {v} out of range "
                          f"{'[0, 1]' if closed_one else '(0, 1)'}")
    return v


def parse_policy(spec: str) -> DataPolicy:
    """Parse one policy spec, e.g. ``keep-real:0.1`` or ``filter:ppl-top:0.2``."""
    spec = spec.strip()
    parts = spec.split(":")
    kind = parts[0]
    if kind in ("replace", "accumulate", "accumulate-subsample") and len(parts) == 1:
        return DataPolicy(spec, kind)
    if kind == "keep-real" and len(parts) == 2:
        return DataPolicy(spec, kind, real_fraction=_fraction(parts[1], spec, closed_one=True))
    if kind == "real-share" and len(parts) == 2:
        return DataPolicy(spec, kind, real_fraction=_fraction(parts[1], spec, closed_one=True))
    if kind == "max-depth" and len(parts) == 2:
        try:
            k = int(parts[1])
        except ValueError:
            raise ConfigError(f"policy '{spec}': '{parts[1]}' is not an integer") from None
        if k < 0:
            raise ConfigError(f"policy '{spec}': depth must be ≥ 0")
        return DataPolicy(spec, kind, max_depth=k)
    if kind == "filter" and len(parts) == 3:
        name, at, param = parts[1].partition("@")
        if name not in _FILTERS and name not in _PARAM_FILTERS:
            known = sorted(_FILTERS) + [f"{k}[@X]" for k in sorted(_PARAM_FILTERS)]
            raise ConfigError(f"policy '{spec}': unknown filter '{name}' "
                              f"(known: {', '.join(known)})")
        if at and name not in _PARAM_FILTERS:
            raise ConfigError(f"policy '{spec}': filter '{name}' takes no '@' parameter")
        if at:
            _fraction(param, spec, closed_one=True)
        return DataPolicy(spec, kind, filter_name=parts[1],
                      filter_fraction=_fraction(parts[2], spec, closed_one=False))
    raise ConfigError(f"unknown policy '{spec}' (use replace, keep-real:P, real-share:P, "
                      f"accumulate, accumulate-subsample, max-depth:K or filter:NAME:Q)")


def parse_policies(text: str) -> list[DataPolicy]:
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


def mix(policy: DataPolicy, real: pa.Table, synthetic: Mapping[int, pa.Table], generation: int,
        rng: np.random.Generator) -> pa.Table:
    """The training set of ``generation`` (≥ 1) under ``policy``.

    Args:
        real: the real training records (their count ``n`` is the target size).
        synthetic: synthetic sets by generation (1..generation), already filtered for a
            ``filter`` policy; each must hold at least ``n`` records.
        rng: seeded generator for every sampling decision.

    Returns a table with the common columns of its parts, provenance included.

    A ``filter`` policy's set may be smaller than ``n`` (a verifier that accepted fewer):
    then the generation trains on all of it.
    """
    if generation < 1:
        raise ValueError("generation 0 trains on real data only")
    n = real.num_rows
    newest = synthetic[generation]
    if policy.kind == "filter":
        return _take(newest, rng.choice(newest.num_rows, min(n, newest.num_rows),
                                        replace=False))
    if newest.num_rows < n:
        raise ValueError(f"synthetic set of generation {generation} has {newest.num_rows} "
                         f"records, fewer than the {n} needed")
    if policy.kind == "replace":
        return _take(newest, rng.choice(newest.num_rows, n, replace=False))
    if policy.kind == "keep-real":
        real_rows, syn_rows = keep_real(n, newest.num_rows, policy.real_fraction, rng)
        return _concat([_take(real, real_rows), _take(newest, syn_rows)])
    if policy.kind == "real-share":
        real_rows = real_share(n, n, policy.real_fraction, rng)
        syn_rows = rng.choice(newest.num_rows, n, replace=False)
        return _concat([_take(real, real_rows), _take(newest, syn_rows)])
    if policy.kind == "max-depth":
        return within_depth(_concat([real] + [synthetic[g] for g in range(1, generation + 1)]),
                            policy.max_depth)
    pool = _concat([real] + [synthetic[g] for g in range(1, generation + 1)])
    if policy.kind == "accumulate":
        return pool
    if policy.kind == "accumulate-subsample":
        return _take(pool, rng.choice(pool.num_rows, n, replace=False))
    raise ValueError(f"unknown policy kind {policy.kind}")


def select(policy: DataPolicy, cands: pa.Table, n: int) -> tuple[pa.Table, pa.Table | None]:
    """A policy's synthetic set from its candidates: the first ``n``, or a filter's choice
    among the first ``policy.n_candidates(n)`` (then also the rejected records, each with its
    ``drop_reason``)."""
    if policy.kind != "filter":
        return cands.slice(0, n), None
    pool = cands.slice(0, policy.n_candidates(n))
    res = policy.filter_fn()(pool, n)
    keep = pa.array(res.keep)
    rejected = pool.filter(pc.invert(keep))
    reasons = [f"{policy.spec}: {r}" for r, k in zip(res.reasons, res.keep, strict=True)
               if not k]
    rejected = rejected.append_column("drop_reason", pa.array(reasons, pa.string()))
    return pool.filter(keep), rejected


def keep_real(n_real: int, n_synthetic: int, p: float, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """``keep-real:p``: row indices (real, synthetic) of a set of ``n_real`` records, a share
    ``p`` of them real; when fewer than ``n_real - round(p·n_real)`` synthetic records exist,
    the set shrinks to all of them plus real records for the share ``p``."""
    total = n_real
    if n_synthetic < total - round(p * total):
        total = n_real if p >= 1 else min(n_real, math.floor(n_synthetic / (1 - p) + 1e-9))
    k = min(round(p * total), n_real)
    real_rows = rng.choice(n_real, k, replace=False)
    syn_rows = rng.choice(n_synthetic, min(total - k, n_synthetic), replace=False)
    return real_rows, syn_rows


def real_share(n_real: int, n_synthetic: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """``real-share:p``: row indices of the real records to add to ``n_synthetic`` synthetic
    ones for a real share of ``p`` (every real record when there are too few)."""
    want = n_real if p >= 1 else round(p * n_synthetic / (1 - p))
    return rng.choice(n_real, min(want, n_real), replace=False)


def depth_mask(table: pa.Table, max_depth: int) -> np.ndarray:
    """Boolean per row: is its generation (model hops from real data) at most ``max_depth``?"""
    return np.asarray(table.column("generation").to_numpy(zero_copy_only=False)) <= max_depth


def within_depth(table: pa.Table, max_depth: int) -> pa.Table:
    """The rows at most ``max_depth`` model hops from real data."""
    return table.filter(pa.array(depth_mask(table, max_depth)))


def mix_dataset(policy: DataPolicy, real: pa.Table | None, synthetic: pa.Table,
                rng: np.random.Generator) -> tuple[pa.Table, pa.Table, list[str]]:
    """Mix one synthetic set (records of any depth) with real data: the pipeline's ``mix``.

    Every synthetic record that passes the policy is kept; real records are added as the policy
    says. Returns ``(mixed, dropped, reasons)``: the dropped rows (synthetic or real records the
    policy leaves out) each with the reason.

    ==================  ======================================================================
    ``replace``         synthetic only; real records are left out
    ``accumulate``      all real + all synthetic
    ``keep-real:p``     a set of the real set's size, a share ``p`` real (seeded samples of
                        both; smaller when synthetic records are too few)
    ``real-share:p``    all synthetic plus a seeded sample of real records so that the real
                        share is ``p`` (capped by the real records available)
    ``max-depth:k``     all real + synthetic records at most ``k`` hops from real data
    ==================  ======================================================================
    """
    real = real if real is not None else synthetic.slice(0, 0)
    if policy.kind == "replace":
        return synthetic, real, ["policy replace: real records are not kept"] * real.num_rows
    if policy.kind == "accumulate":
        return concat_records([real, synthetic]), real.slice(0, 0), []
    if policy.kind == "max-depth":
        both = concat_records([real, synthetic])
        keep = depth_mask(both, policy.max_depth)
        gens = both.column("generation").to_pylist()
        reasons = [f"generation {g} > max depth {policy.max_depth}"
                   for g, k in zip(gens, keep, strict=True) if not k]
        return both.filter(pa.array(keep)), both.filter(pa.array(~keep)), reasons
    if policy.kind in ("keep-real", "real-share"):
        p = policy.real_fraction
        chosen = np.zeros(real.num_rows, dtype=bool)
        kept_syn = np.ones(synthetic.num_rows, dtype=bool)
        if policy.kind == "keep-real":
            real_rows, syn_rows = keep_real(real.num_rows, synthetic.num_rows, p, rng)
            kept_syn[:] = False
            kept_syn[syn_rows] = True
        else:
            real_rows = real_share(real.num_rows, synthetic.num_rows, p, rng)
        chosen[real_rows] = True
        dropped = concat_records([real.filter(pa.array(~chosen)),
                                  synthetic.filter(pa.array(~kept_syn))])
        reasons = ([f"policy {policy.spec}: real record not sampled"] * int((~chosen).sum())
                   + [f"policy {policy.spec}: synthetic record not sampled"]
                   * int((~kept_syn).sum()))
        return (concat_records([real.filter(pa.array(chosen)),
                                synthetic.filter(pa.array(kept_syn))]), dropped, reasons)
    raise ConfigError(f"policy '{policy.spec}' mixes collapse-lab generations; the pipeline's "
                      f"mix step takes replace, accumulate, keep-real:P, real-share:P or "
                      f"max-depth:K")


def _concat(parts: list[pa.Table]) -> pa.Table:
    common = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
    return pa.concat_tables([p.select(common) for p in parts])
