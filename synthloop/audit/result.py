"""The audit's result: metrics beside baselines, property scores, warnings, grade; JSON/HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthloop.audit.base import AuditWarning, MetricResult, grade
from synthloop.audit.warnings import warnings_for
from synthloop.records.io import json_text, jsonable, write_text_atomic

PROPERTY_ORDER = ("fidelity", "structure", "sequences", "tails", "diversity", "quality",
                  "detection", "utility", "privacy", "contamination", "provenance")


@dataclass
class AuditResult:
    """What :func:`synthloop.audit` returns.

    Attributes:
        kind: ``text``, ``table`` or ``relational`` (linked tables).
        metrics: every metric with its baseline.
        warnings: plain-language findings, critical first.
        sampling: what was split or sampled, with sizes and seed.
        data: series for the report's plots.
        inputs: where the data came from (paths or ``<memory>``).
    """

    kind: str
    metrics: list[MetricResult]
    warnings: list[AuditWarning]
    sampling: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def properties(self) -> dict[str, float | None]:
        """Mean metric score per property (None where no metric of it has a score)."""
        out: dict[str, float | None] = {}
        props = sorted({m.prop for m in self.metrics},
                       key=lambda p: PROPERTY_ORDER.index(p) if p in PROPERTY_ORDER else 99)
        for p in props:
            s = [m.score for m in self.metrics if m.prop == p and m.score is not None
                 and math.isfinite(m.score)]
            out[p] = float(np.mean(s)) if s else None
        return out

    @property
    def score(self) -> float | None:
        """Overall score in [0, 1]: the mean of the property scores (1 = scores like real
        held-out data on every property)."""
        s = [v for v in self.properties.values() if v is not None]
        return float(np.mean(s)) if s else None

    @property
    def grade(self) -> str:
        return grade(self.score)

    def metric(self, name: str) -> MetricResult:
        """The metric called ``name`` (KeyError if it was not computed)."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "kind": self.kind, "score": self.score, "grade": self.grade,
            "properties": self.properties,
            "warnings": [w.to_dict() for w in self.warnings],
            "metrics": [m.to_dict() for m in self.metrics],
            "sampling": self.sampling, "inputs": self.inputs,
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, margin_scale: float = 1.0) -> AuditResult:
        """An audit read back from :meth:`to_dict` (or its JSON): metrics, sampling and
        inputs; warnings recomputed at ``margin_scale``; no plot series."""
        if d.get("kind") not in ("text", "table", "relational") or \
                not isinstance(d.get("metrics"), list):
            raise ValueError("not an audit result (needs 'kind' and 'metrics')")
        metrics = [MetricResult.from_dict(m) for m in d["metrics"]]
        return cls(kind=d["kind"], metrics=metrics,
                   warnings=warnings_for(metrics, margin_scale=margin_scale),
                   sampling=d.get("sampling", {}), inputs=d.get("inputs", {}))

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON with every number of the report (plot series excluded); written atomically
        to ``path`` when given."""
        text = json_text(self.to_dict(), indent=2)
        if path is not None:
            write_text_atomic(text, path)
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """Self-contained HTML report (plotly inlined; opens offline)."""
        from synthloop.audit.report import render

        html = render(self)
        if path is not None:
            write_text_atomic(html, path)
        return html
