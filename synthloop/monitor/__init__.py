"""Collapse monitor: the audit of every generation of a team's own data against one real
reference, as trends, with early warnings that fire on trends and not only on levels.

``synthloop.monitor.monitor(real, generations)`` audits each generation (text or table, the
same metrics and holdout baselines as :func:`synthloop.audit`), caches each audit under a key
of (real, holdout, generation content, audit config, version) so that a new generation costs
one audit, and reads the trend rules of :mod:`synthloop.monitor.trends` over the series.

Memory: each generation is loaded whole for its audit, one at a time (as ``synthloop audit``
does); the result keeps only metrics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthloop import __version__
from synthloop.audit import (
    AuditResult,
    FeatureMemo,
    TableAuditConfig,
    TextAuditConfig,
    audit,
    load_table,
    load_texts,
    resolve_kind,
)
from synthloop.errors import ConfigError, InputError, SynthloopError
from synthloop.monitor.inputs import (
    Generation,
    check_generations,
    collapse_lab_reference,
    content_sha256,
    load_generation,
    load_generations,
)
from synthloop.monitor.trends import TrendRules, TrendWarning, deep_shares, trend_warnings
from synthloop.progress import NullProgress, Progress
from synthloop.records.io import json_text, jsonable, write_text_atomic

__all__ = ["Generation", "MonitorResult", "TrendRules", "TrendWarning",
           "collapse_lab_reference", "load_generations", "monitor"]

RealData = str | Path | Sequence[str] | pd.DataFrame


@dataclass
class MonitorResult:
    """What :func:`monitor` returns.

    Attributes:
        kind: ``text`` or ``table``.
        generations: the generations in order (their data dropped once audited).
        audits: one audit per generation.
        warnings: level and trend warnings (:class:`TrendWarning`), critical first.
        depth_shares: share of records at depth ≥ ``rules.depth`` per generation, or None
            without lineage columns.
        rules: the trend rules applied.
        audit_config: the audit configuration every generation was audited with.
        inputs: where the real reference and holdout came from.
        cache: ``{"dir", "hits", "misses"}``.
    """

    kind: str
    generations: list[Generation]
    audits: list[AuditResult]
    warnings: list[TrendWarning]
    depth_shares: list[float] | None
    rules: TrendRules
    audit_config: TextAuditConfig | TableAuditConfig
    inputs: dict[str, str] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [g.label for g in self.generations]

    def metric_names(self) -> list[str]:
        """Every metric any generation's audit measured, in the audit's order."""
        names: dict[str, None] = {}
        for a in self.audits:
            names.update({m.name: None for m in a.metrics})
        return list(names)

    def series(self, name: str) -> dict[str, list]:
        """``{"values", "baselines", "scores"}`` of metric ``name`` per generation (None where
        a generation's audit lacks it)."""
        out: dict[str, list] = {"values": [], "baselines": [], "scores": []}
        for a in self.audits:
            try:
                m = a.metric(name)
            except KeyError:
                m = None
            out["values"].append(None if m is None else m.value)
            out["baselines"].append(None if m is None else m.baseline)
            out["scores"].append(None if m is None else m.score)
        return out

    def to_dict(self) -> dict[str, Any]:
        metrics = {}
        for name in self.metric_names():
            first = next(a.metric(name) for a in self.audits
                         if any(m.name == name for m in a.metrics))
            metrics[name] = {"prop": first.prop, "direction": first.direction,
                             **self.series(name)}
        gens = []
        for g, a in zip(self.generations, self.audits, strict=True):
            gens.append({"label": g.label, "source": g.source, "records": g.records,
                         "depths": None if g.depths is None else
                         {str(k): v for k, v in g.depths.items()},
                         "score": a.score, "grade": a.grade, "properties": a.properties,
                         "warnings": [w.to_dict() for w in a.warnings]})
        return jsonable({
            "kind": self.kind, "generations": gens, "metrics": metrics,
            "depth": None if self.depth_shares is None else
            {"depth": self.rules.depth, "share": self.depth_shares},
            "warnings": [w.to_dict() for w in self.warnings],
            "rules": self.rules.to_dict(), "audit_config": _config_dict(self.audit_config),
            "inputs": self.inputs, "cache": self.cache, "synthloop_version": __version__,
        })

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON of every number (written atomically to ``path`` when given)."""
        text = json_text(self.to_dict(), indent=1)
        if path is not None:
            write_text_atomic(text, path)
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """Self-contained HTML report: warnings, then one trend panel per property."""
        from synthloop.monitor.report import render

        html = render(self)
        if path is not None:
            write_text_atomic(html, path)
        return html


def _config_dict(config: TextAuditConfig | TableAuditConfig) -> dict[str, Any]:
    d = config.to_dict()
    if d.get("benchmark") is not None:  # texts, not settings: their hash stands for them
        d["benchmark"] = {"documents": len(d["benchmark"]),
                          "sha256": content_sha256(list(d["benchmark"]))}
    return d


def _load_reference(x: RealData, kind: str, text_field: str, name: str
                    ) -> tuple[list[str] | pd.DataFrame, str]:
    if isinstance(x, str | Path):
        data: list[str] | pd.DataFrame = load_texts(x, text_field=text_field) \
            if kind == "text" else load_table(x)
        return data, str(x)
    if isinstance(x, pd.DataFrame):
        if kind == "text":
            if text_field not in x.columns:
                raise InputError(f"{name}: no '{text_field}' column", fields=("text_field",))
            return x[text_field].astype(str).tolist(), "<DataFrame>"
        return x, "<DataFrame>"
    return list(x), "<list>"


def _as_generations(items: Sequence[Any], kind: str, text_field: str) -> list[Generation]:
    if items and all(isinstance(g, str | Path) for g in items):
        return load_generations(list(items), kind=kind, text_field=text_field)
    gens = []
    for i, g in enumerate(items):
        if isinstance(g, Generation):
            gens.append(g)
        elif isinstance(g, str | Path):
            gens.append(load_generation(g, f"gen{i}", kind=kind, text_field=text_field))
        elif isinstance(g, pd.DataFrame):
            if kind == "text" and text_field not in g.columns:
                raise InputError(f"gen{i}: no '{text_field}' column", fields=("text_field",))
            gens.append(Generation(f"gen{i}", "<DataFrame>", g if kind == "table"
                                   else g[text_field].astype(str).tolist()))
        else:
            gens.append(Generation(f"gen{i}", "<list>", list(g)))
    check_generations(gens, kind)
    return gens


def _cache_key(kind: str, config: TextAuditConfig | TableAuditConfig, real_sha: str,
               holdout_sha: str | None, gen_sha: str) -> str:
    import hashlib

    blob = json.dumps({"version": __version__, "kind": kind, "config": _config_dict(config),
                       "real": real_sha, "holdout": holdout_sha, "generation": gen_sha},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _cached(path: Path | None, margin_scale: float) -> AuditResult | None:
    if path is None or not path.is_file():
        return None
    try:
        return AuditResult.from_dict(json.loads(path.read_text(encoding="utf-8")),
                                     margin_scale=margin_scale)
    except (ValueError, KeyError, TypeError, OSError):
        return None  # a damaged entry is recomputed and rewritten


def monitor(real: RealData, generations: Sequence[Any], holdout: RealData | None = None, *,
            kind: str | None = None, text_field: str = "text",
            config: TextAuditConfig | TableAuditConfig | None = None,
            rules: TrendRules | None = None, cache: str | Path | None = None,
            progress: Progress | None = None) -> MonitorResult:
    """Audit every generation against the same real reference and read the trend rules.

    Args:
        real: real reference data (path, list of texts, or DataFrame).
        generations: in order: paths (one dataset each, or a single mixed dataset with
            lineage columns, split by depth), :class:`Generation` objects, lists of texts or
            DataFrames; at least two generations.
        holdout: real data no generator saw [split off ``real`` with the audit's seed — the
            same split for every generation].
        kind: ``text`` or ``table`` [inferred from ``real``].
        config: the audit configuration (:class:`~synthloop.audit.TextAuditConfig` /
            :class:`~synthloop.audit.TableAuditConfig`), the same for every generation.
        rules: :class:`TrendRules` [defaults].
        cache: folder of cached per-generation audits (None: no cache).
        progress: a stage per generation (and the audit's own stages).

    Returns:
        :class:`MonitorResult` (``warnings``, ``series(metric)``, ``to_json()``,
        ``to_html()``).
    """
    progress = progress or NullProgress()
    rules = rules or TrendRules()
    kind = resolve_kind(real, kind, text_field)
    cfg_cls = TextAuditConfig if kind == "text" else TableAuditConfig
    config = config if config is not None else cfg_cls()
    if not isinstance(config, cfg_cls):
        raise ConfigError(f"a {kind} monitor needs a {cfg_cls.__name__}")
    gens = _as_generations(list(generations), kind, text_field)
    r, r_src = _load_reference(real, kind, text_field, "real")
    h, h_src = _load_reference(holdout, kind, text_field, "holdout") if holdout is not None \
        else (None, "split from real")
    real_sha, hold_sha = content_sha256(r), (None if h is None else content_sha256(h))
    cache_dir = Path(cache) if cache is not None else None
    hits = misses = 0
    # the real side's features, computed once for every generation (and, with a cache,
    # once for every later call on the same real data)
    memo = FeatureMemo(None if cache_dir is None else cache_dir / "features")
    audits = []
    for i, g in enumerate(gens):
        path = None if cache_dir is None else cache_dir / (
            f"audit-{_cache_key(kind, config, real_sha, hold_sha, g.content_sha256())}.json")
        result = _cached(path, rules.margin_scale)
        if result is not None:
            hits += 1
            progress.log(f"{g.label} ({i + 1}/{len(gens)}): cached audit")
        else:
            misses += 1
            progress.log(f"{g.label} ({i + 1}/{len(gens)}): auditing {g.records} records")
            try:
                result = audit(r, g.data, h, kind=kind, text_field=text_field, config=config,
                               margin_scale=rules.margin_scale, progress=progress,
                               memo=memo)
            except SynthloopError as e:
                raise type(e)(f"{g.label} ({g.source}): {e}", fields=e.fields) from None
            if path is not None:
                write_text_atomic(result.to_json(), path)
        result.inputs = {"real": r_src, "synthetic": g.source, "holdout": h_src}
        result.data = {}
        audits.append(result)
        if i + 1 < len(gens):
            g.data = []  # audited: keep only its summary
    gens[-1].data = []
    shares = deep_shares([g.depths for g in gens], rules.depth)
    warnings = trend_warnings(audits, [g.label for g in gens], shares, rules)
    return MonitorResult(kind=kind, generations=gens, audits=audits, warnings=warnings,
                         depth_shares=shares, rules=rules, audit_config=config,
                         inputs={"real": r_src, "holdout": h_src},
                         cache={"dir": None if cache_dir is None else str(cache_dir),
                                "hits": hits, "misses": misses})
