"""Audit of linked and sequential tables (a :class:`~synthloop.records.relational.
RelationalSchema`): every table's fidelity, and what only the links carry — referential
integrity, the number of children per parent, the dependence of children on their parent, and
for sequential tables the time gaps, what happens at each position of a sequence and how one
event follows the previous one.

Each metric is measured on (real training tables, synthetic tables) and, the same way, on
(real training tables, real holdout tables), the holdout being whole root entities with
everything below them (:meth:`~synthloop.records.relational.RelationalSchema.split`). The
synthetic side is measured on samples of as many root entities as the holdout has (the mean
over up to 5 disjoint ones), so both sides carry the same sampling noise; referential
integrity and key uniqueness are counted on the whole synthetic set. Rows of one entity are
alike, so the noise of a holdout is set by its number of entities, not rows: each warning's
margin is three standard errors of the holdout's value, estimated from half-size samples of
its root entities.

Fidelity numbers are mostlyai-qa-style binned accuracies (1 − total-variation distance over
bins fitted on the real training rows and shared by both sides;
:mod:`synthloop.measures.accuracy`).

Memory: every table of the three sides is held in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from synthloop.audit.base import MetricResult, relative_score
from synthloop.audit.result import AuditResult
from synthloop.audit.warnings import warnings_for
from synthloop.configs import Config
from synthloop.errors import InputError
from synthloop.measures.accuracy import SharedBins, binned_accuracy
from synthloop.measures.columns import as_datetimes, infer_column_types
from synthloop.progress import NullProgress, Progress
from synthloop.records.relational import (
    RelationalSchema,
    TableSpec,
    event_gaps,
    event_times,
    read_schema,
)

Frames = Mapping[str, pd.DataFrame]
TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl")
MAX_PLOT_VALUES = 5000


class RelationalAuditConfig(Config):
    """Parameters of the relational audit.

    Attributes:
        seed: seeds the holdout split and the synthetic samples.
        holdout_fraction: share of each root table's rows (with everything below them)
            split off as holdout when none is given.
        n_bins: quantile bins per numeric column, categories kept per categorical one.
        max_exact_counts: child counts, positions and gaps with at most this many distinct
            real values are compared value by value, else in quantile bins.
        samples: synthetic samples (of the holdout's number of root entities) averaged.
        noise_samples: half-size samples of the holdout's root entities whose spread sets
            each warning's margin (3 standard errors): entities cluster their rows, so a
            holdout of few entities is noisy however many rows it has.
    """

    seed: int = 0
    holdout_fraction: float = Field(0.3, gt=0, lt=1)
    n_bins: int = Field(10, ge=2)
    max_exact_counts: int = Field(20, ge=2)
    samples: int = Field(5, ge=1)
    noise_samples: int = Field(10, ge=2)


# -- loading ---------------------------------------------------------------------------------

def read_tables(folder: str | Path, schema: RelationalSchema) -> dict[str, pd.DataFrame]:
    """The tables of ``schema`` from ``folder``: ``<table>.parquet`` (or ``.csv``,
    ``.jsonl``, or a folder ``<table>/`` of Parquet shards), provenance columns dropped."""
    from synthloop.records.io import read_table_file

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected one file per table: "
                         f"{', '.join(f'{n}.parquet' for n in schema.tables)})")
    out = {}
    for name in schema.tables:
        found = [folder / f"{name}{s}" for s in TABLE_SUFFIXES if (folder / f"{name}{s}").exists()]
        if not found and (folder / name).is_dir():
            found = [folder / name]
        if not found:
            raise InputError(f"{folder}: no file for table '{name}' (expected {name}.parquet, "
                             f"{name}.csv or {name}.jsonl)")
        out[name] = read_table_file(found[0]).to_pandas()
    return out


def _check_columns(schema: RelationalSchema, frames: Frames, real: Frames, side: str) -> None:
    for name in schema.tables:
        if name not in frames:
            raise InputError(f"{side}: no table '{name}'")
        missing = [c for c in real[name].columns if c not in frames[name].columns]
        if missing:
            raise InputError(f"{side}: table '{name}' has no column '{missing[0]}'")


# -- measurements ------------------------------------------------------------------------------

def _types(t: TableSpec, df: pd.DataFrame) -> dict[str, str]:
    return infer_column_types(df, dict(t.column_types) or None)


def _attrs(t: TableSpec, types: dict[str, str]) -> list[str]:
    return [c for c, k in types.items() if c not in t.link_columns and k != "id"]


def _counts(schema: RelationalSchema, frames: Frames, child: str) -> pd.Series:
    """Rows of ``child`` per row of its parent (zeros included), in parent-row order."""
    t = schema.tables[child]
    p = schema.tables[t.parent]
    n = frames[child][t.foreign_key].value_counts()
    return frames[t.parent][p.key].map(n).fillna(0).astype("int64").reset_index(drop=True)


def _exact_or_binned(train_values: pd.Series, max_exact: int) -> str:
    return "categorical" if train_values.nunique() <= max_exact else "numerical"


def _univariate(train: pd.Series, other: pd.Series, kind: str, n_bins: int) -> float:
    ref = pd.DataFrame({"v": train.astype(str) if kind == "categorical" else train})
    oth = pd.DataFrame({"v": other.astype(str) if kind == "categorical" else other})
    bins = SharedBins(ref, {"v": kind}, n_bins=max(n_bins, 2) if kind == "numerical"
                      else max(ref["v"].nunique(), 2))
    return binned_accuracy(ref, oth, {"v": kind}, bins=bins)["univariate"]


def _sorted_events(t: TableSpec, df: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    df = as_datetimes({t.name: df}, {t.order_by: types[t.order_by]})[t.name]
    return df.sort_values([t.foreign_key, t.order_by], kind="stable").reset_index(drop=True)


def _gaps(t: TableSpec, events: pd.DataFrame, is_date: bool) -> pd.Series:
    return event_gaps(event_times(events[t.order_by], is_date),
                      events[t.foreign_key].to_numpy()).dropna().reset_index(drop=True)


def _pair_accuracy(train: pd.DataFrame, other: pd.DataFrame, types: dict[str, str],
                   pairs: list[tuple[str, str]], n_bins: int) -> float:
    """Mean binned accuracy of the given column pairs (bins fitted on ``train``)."""
    if not pairs or not len(other) or not len(train):
        return float("nan")
    cols = sorted({c for p in pairs for c in p}, key=list(train.columns).index)
    sub = {c: types[c] for c in cols}
    res = binned_accuracy(train[cols], other[cols], sub, n_bins=n_bins, max_triples=0)
    want = {tuple(p) for p in pairs} | {tuple(reversed(p)) for p in pairs}
    vals = [acc for a, b, acc in res["pairs"] if (a, b) in want]
    return float(np.mean(vals)) if vals else float("nan")


class _Measures:
    """Every relational measurement of one side against the real training tables."""

    def __init__(self, schema: RelationalSchema, train: Frames, cfg: RelationalAuditConfig):
        self.schema, self.train, self.cfg = schema, train, cfg
        self.types = {n: _types(t, train[n]) for n, t in schema.tables.items()}
        self.attrs = {n: _attrs(t, self.types[n]) for n, t in schema.tables.items()}
        self.train_events = {n: _sorted_events(t, train[n], self.types[n])
                             for n, t in schema.tables.items() if t.sequential}

    def accuracy(self, name: str, other: Frames) -> float:
        cols = self.attrs[name]
        if not cols or not len(other[name]):
            return float("nan")
        sub = {c: self.types[name][c] for c in cols}
        return binned_accuracy(self.train[name][cols], other[name][cols], sub,
                               n_bins=self.cfg.n_bins, seed=self.cfg.seed)["overall"]

    def child_counts(self, name: str, other: Frames) -> float:
        real = _counts(self.schema, self.train, name)
        kind = _exact_or_binned(real, self.cfg.max_exact_counts)
        return _univariate(real, _counts(self.schema, other, name), kind, self.cfg.n_bins)

    def _joined(self, name: str, frames: Frames) -> pd.DataFrame:
        t = self.schema.tables[name]
        p = self.schema.tables[t.parent]
        parent = frames[t.parent][[p.key, *self.attrs[t.parent]]].rename(
            columns={c: f"{t.parent}.{c}" for c in self.attrs[t.parent]})
        child = frames[name][[t.foreign_key, *self.attrs[name]]]
        return child.merge(parent, left_on=t.foreign_key, right_on=p.key, how="inner")

    def parent_child(self, name: str, other: Frames) -> float:
        t = self.schema.tables[name]
        pa_cols = [f"{t.parent}.{c}" for c in self.attrs[t.parent]]
        pairs = [(a, b) for a in pa_cols for b in self.attrs[name]]
        types = {**{f"{t.parent}.{c}": self.types[t.parent][c] for c in self.attrs[t.parent]},
                 **{c: self.types[name][c] for c in self.attrs[name]}}
        return _pair_accuracy(self._joined(name, self.train), self._joined(name, other), types,
                              pairs, self.cfg.n_bins)

    def gaps(self, name: str, other: Frames) -> float:
        t = self.schema.tables[name]
        is_date = self.types[name][t.order_by] == "datetime"
        real = _gaps(t, self.train_events[name], is_date)
        syn = _gaps(t, _sorted_events(t, other[name], self.types[name]), is_date)
        if not len(real) or not len(syn):
            return float("nan")
        return _univariate(real, syn, _exact_or_binned(real, self.cfg.max_exact_counts),
                           self.cfg.n_bins)

    def _positions(self, name: str, events: pd.DataFrame) -> pd.DataFrame:
        t = self.schema.tables[name]
        g = events.groupby(t.foreign_key, sort=False)
        out = events[self.attrs[name]].copy()
        cap = int(_counts(self.schema, self.train, name).quantile(0.99))
        out["__pos"] = np.minimum(g.cumcount().to_numpy(), max(cap - 1, 0)).astype(str)
        for c in self.attrs[name]:
            out["prev." + c] = g[c].shift(1).to_numpy()
        return out

    def position(self, name: str, other: Frames) -> float:
        t = self.schema.tables[name]
        tr = self._positions(name, self.train_events[name])
        ot = self._positions(name, _sorted_events(t, other[name], self.types[name]))
        types = {"__pos": "categorical", **{c: self.types[name][c] for c in self.attrs[name]},
                 **{"prev." + c: self.types[name][c] for c in self.attrs[name]}}
        return _pair_accuracy(tr, ot, types, [("__pos", c) for c in self.attrs[name]],
                              self.cfg.n_bins)

    def lag(self, name: str, other: Frames) -> float:
        t = self.schema.tables[name]
        tr = self._positions(name, self.train_events[name])
        ot = self._positions(name, _sorted_events(t, other[name], self.types[name]))
        tr, ot = tr[tr["__pos"] != "0"], ot[ot["__pos"] != "0"]
        types = {c: self.types[name][c] for c in self.attrs[name]}
        types.update({"prev." + c: self.types[name][c] for c in self.attrs[name]})
        return _pair_accuracy(tr.drop(columns="__pos"), ot.drop(columns="__pos"), types,
                              [("prev." + c, c) for c in self.attrs[name]], self.cfg.n_bins)


def referential_integrity(schema: RelationalSchema, frames: Frames, name: str) -> float:
    """Share of ``name``'s rows whose foreign key is a key of a parent row (1 = no broken
    link)."""
    t = schema.tables[name]
    fk = frames[name][t.foreign_key]
    if not len(fk):
        return 1.0
    keys = frames[t.parent][schema.tables[t.parent].key]
    return float((fk.isin(keys) & fk.notna()).mean())


def key_uniqueness(schema: RelationalSchema, frames: Frames, name: str) -> float:
    """Share of ``name``'s rows whose key is present and held by no other row."""
    k = frames[name][schema.tables[name].key]
    if not len(k):
        return 1.0
    return float((k.notna() & ~k.duplicated(keep=False)).mean())


def root_samples(schema: RelationalSchema, frames: Frames, n_roots: Mapping[str, int],
                 k: int, seed: int) -> list[dict[str, pd.DataFrame]]:
    """Up to ``k`` disjoint samples of ``n_roots[root]`` rows of each root table, each with
    every row below them (rows whose chain of parents is broken belong to none)."""
    rng = np.random.default_rng(seed)
    perms = {r: rng.permutation(len(frames[r])) for r in n_roots}
    k = max(1, min([k] + [len(frames[r]) // max(n, 1) for r, n in n_roots.items()]))
    out = []
    for i in range(k):
        sample: dict[str, pd.DataFrame] = {}
        for name in schema.order:
            t, df = schema.tables[name], frames[name]
            if t.parent is None:
                n = n_roots[name]
                pick = np.sort(perms[name][i * n:(i + 1) * n])
                sample[name] = df.iloc[pick].reset_index(drop=True)
            else:
                keys = sample[t.parent][schema.tables[t.parent].key]
                sample[name] = df[df[t.foreign_key].isin(keys)].reset_index(drop=True)
        out.append(sample)
    return out


# -- the audit ---------------------------------------------------------------------------------

_WHAT = {
    "accuracy": ("fidelity", "1 − total-variation distance of the binned columns, pairs and "
                             "triples of the table (mostlyai-qa's accuracy; shared bins)"),
    "referential_integrity": ("structure", "share of rows whose foreign key points at an "
                                           "existing parent row"),
    "key_uniqueness": ("structure", "share of rows whose key is present and unique"),
    "child_counts": ("structure", "1 − TVD of the number of rows per parent row (for a "
                                  "sequential table: the sequence lengths)"),
    "parent_child_accuracy": ("structure", "binned accuracy of (parent column, child column) "
                                           "pairs over the joined tables"),
    "gaps": ("sequences", "1 − TVD of the time between consecutive events of an entity"),
    "position_accuracy": ("sequences", "binned accuracy of (position in the sequence, column) "
                                       "pairs: what happens first, second, ..."),
    "lag_accuracy": ("sequences", "binned accuracy of (previous event's value, value) pairs: "
                                  "how one event follows the last (within-entity coherence)"),
}


def _metric(table: str, kind: str, value: float, baseline: float, **breakdown) -> MetricResult:
    prop, what = _WHAT[kind]
    score = relative_score(value, baseline, "higher")
    return MetricResult(name=f"{table}.{kind}", prop=prop, value=value, baseline=baseline,
                        direction="higher", range=(0.0, 1.0),
                        score=None if math.isnan(score) else score, description=what,
                        breakdown={"table": table, "rule": kind, **breakdown})


def _clip(values) -> list[float]:
    v = np.asarray(values, dtype=float)
    return v[:MAX_PLOT_VALUES].tolist()


def audit_relational(schema: RelationalSchema, real: Frames, synthetic: Frames,
                     holdout: Frames | None = None, *,
                     config: RelationalAuditConfig | None = None,
                     progress: Progress | None = None,
                     inputs: Mapping[str, str] | None = None) -> AuditResult:
    """Audit synthetic linked tables against real ones (see the module docstring).

    Args:
        schema: the tables and their links.
        real, synthetic, holdout: ``{table: DataFrame}``; the holdout (whole real entities
            the generator never saw) is split off ``real`` by root entity when None.
        config: :class:`RelationalAuditConfig`.

    Returns:
        :class:`~synthloop.audit.result.AuditResult` of kind ``relational``: metrics named
        ``<table>.<metric>`` (properties ``fidelity``, ``structure``, ``sequences``).
    """
    cfg = config or RelationalAuditConfig()
    progress = progress or NullProgress()
    schema.check(real)
    if holdout is None:
        train, holdout = schema.split(real, cfg.holdout_fraction, cfg.seed)
        source = "split from real"
    else:
        schema.check(holdout)
        train, source = dict(real), "given"
    _check_columns(schema, holdout, train, "holdout")
    _check_columns(schema, synthetic, train, "synthetic")
    for name in schema.tables:
        if not len(synthetic[name]) and schema.tables[name].parent is None:
            raise InputError(f"synthetic: table '{name}' has no rows")
    progress.stage("relational audit", len(schema.tables))
    measures = _Measures(schema, train, cfg)
    n_roots = {n: len(holdout[n]) for n, t in schema.tables.items() if t.parent is None}
    samples = root_samples(schema, synthetic, n_roots, cfg.samples, cfg.seed + 1)

    halves = [root_samples(schema, holdout, {r: max(1, n // 2) for r, n in n_roots.items()},
                           1, cfg.seed + 10 + i)[0] for i in range(cfg.noise_samples)]

    def both(fn: Callable[[Frames], float]) -> tuple[float, float, dict]:
        vals = [v for v in (fn(s) for s in samples) if not math.isnan(v)]
        half = [v for v in (fn(h) for h in halves) if not math.isnan(v)]
        # the holdout's sampling noise, from half-size samples of its root entities: a
        # holdout of n entities varies about 1/√2 as much as one of n/2
        noise = float(np.std(half, ddof=1) / math.sqrt(2)) if len(half) > 1 else 0.0
        return ((float(np.mean(vals)) if vals else float("nan")), fn(holdout),
                {"warn_margin": round(3 * noise, 6), "holdout_noise_sd": round(noise, 6)})

    metrics: list[MetricResult] = []
    plots: dict[str, dict] = {"child_counts": {}, "gaps": {}}
    for name in schema.order:
        t = schema.tables[name]
        v, b, nb = both(lambda f, n=name: measures.accuracy(n, f))
        if not math.isnan(b):
            metrics.append(_metric(name, "accuracy", v, b, **nb))
        if t.key is not None:
            metrics.append(_metric(name, "key_uniqueness",
                                   key_uniqueness(schema, synthetic, name),
                                   key_uniqueness(schema, holdout, name)))
        if t.parent is not None:
            metrics.append(_metric(name, "referential_integrity",
                                   referential_integrity(schema, synthetic, name),
                                   referential_integrity(schema, holdout, name),
                                   broken=int(len(synthetic[name]) * (1 - referential_integrity(
                                       schema, synthetic, name)) + 0.5)))
            v, b, nb = both(lambda f, n=name: measures.child_counts(n, f))
            metrics.append(_metric(name, "child_counts", v, b, parent=t.parent, **nb))
            plots["child_counts"][name] = {
                "real": _clip(_counts(schema, train, name)),
                "holdout": _clip(_counts(schema, holdout, name)),
                "synthetic": _clip(_counts(schema, synthetic, name))}
            if measures.attrs[name] and measures.attrs[t.parent]:
                v, b, nb = both(lambda f, n=name: measures.parent_child(n, f))
                metrics.append(_metric(name, "parent_child_accuracy", v, b, parent=t.parent,
                                       **nb))
        if t.sequential:
            for kind, fn in (("gaps", measures.gaps), ("position_accuracy", measures.position),
                             ("lag_accuracy", measures.lag)):
                if kind != "gaps" and not measures.attrs[name]:
                    continue
                v, b, nb = both(lambda f, n=name, fn=fn: fn(n, f))
                if not math.isnan(b):
                    metrics.append(_metric(name, kind, v, b, order_by=t.order_by, **nb))
            is_date = measures.types[name][t.order_by] == "datetime"
            plots["gaps"][name] = {
                side: _clip(_gaps(t, _sorted_events(t, f[name], measures.types[name]), is_date))
                for side, f in (("real", train), ("holdout", holdout), ("synthetic", synthetic))}
        progress.advance()
    sampling = {"holdout": source, "holdout_fraction": cfg.holdout_fraction, "seed": cfg.seed,
                "synthetic_samples": len(samples), "roots_per_sample": n_roots,
                "rows": {side: {n: len(f[n]) for n in schema.order}
                         for side, f in (("train", train), ("holdout", holdout),
                                         ("synthetic", synthetic))}}
    return AuditResult(kind="relational", metrics=metrics, warnings=warnings_for(metrics),
                       sampling=sampling, data={"schema": schema.to_dict(), **plots},
                       inputs=dict(inputs or {}))


def audit_schema(schema_path: str | Path, synthetic: str | Path,
                 holdout: str | Path | None = None, *,
                 config: RelationalAuditConfig | None = None,
                 progress: Progress | None = None) -> AuditResult:
    """:func:`audit_relational` from files: the real tables a schema YAML names, the
    synthetic tables in a folder (``<table>.parquet``...), and optionally a holdout schema
    YAML (same tables, other paths)."""
    schema, real = read_schema(schema_path)
    hold = None
    if holdout is not None:
        hschema, hold = read_schema(holdout)
        if set(hschema.tables) != set(schema.tables):
            raise InputError(f"{holdout}: holdout schema has tables "
                             f"{sorted(hschema.tables)}, the real one {sorted(schema.tables)}")
    syn = read_tables(synthetic, schema)
    return audit_relational(schema, real, syn, hold, config=config, progress=progress,
                            inputs={"real": str(schema_path), "synthetic": str(synthetic),
                                    "holdout": str(holdout) if holdout else "split from real"})
