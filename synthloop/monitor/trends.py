"""Early warnings read from trends across generations, not only from the latest level.

Every audit metric with a warning rule has a *warning line*: the value past which
``synthloop audit`` warns (the real-holdout baseline moved by the rule's margin, see
:func:`synthloop.audit.warning_threshold`). For each generation the monitor measures how far
the metric stands on the bad side of its baseline, its *shortfall* (``baseline - value`` for
higher-is-better metrics, ``value - baseline`` for lower-is-better ones, ``|value - baseline|``
for targets), in units of the margin: 0 = as good as real held-out data, 1 = on the warning
line. Rules:

``level``
    the latest generation's own audit warnings (and since when they have held).
``worsening``
    the shortfall grew in each of the last ``consecutive`` generations, by at least
    ``min_change`` margins in all, and the metric is now worse than its baseline.
``projected``
    not past the line yet, but a least-squares line through the last ``window`` shortfalls
    reaches it within ``horizon`` generations (and has grown by at least ``min_change``
    margins over the window).
``deep_share``
    the share of records at depth ≥ ``depth`` (lineage column ``generation``) is above
    ``max_deep_share`` in the latest generation, or rose in each of the last
    ``consecutive`` generations.

Tuned so that a series of fresh real holdouts raises nothing while the collapse lab's
``replace`` generations do (tests/test_monitor.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from pydantic import Field

from synthloop.audit import AuditResult, MetricResult, warning_margin, warning_threshold
from synthloop.configs import Config


class TrendRules(Config):
    """When a trend warns.

    Attributes:
        consecutive: generations in a row a metric must worsen (≥ 2).
        min_change: total worsening, in warning margins, a trend must show (> 0).
        min_level: shortfall, in warning margins, a worsening metric must have reached
            (0 = at its real-holdout baseline, 1 = on its warning line).
        min_r2: least fit (R², in [0, 1]) of a projection's line: noise has none.
        window: generations a projection is fitted on (≥ 3).
        horizon: generations ahead a projection looks (≥ 1).
        depth: the depth counted as deep (records written by a model trained on
            model-written data have depth ≥ 2).
        max_deep_share: share of deep records, in [0, 1], above which the latest generation
            warns.
        margin_scale: multiplies every warning margin, as ``synthloop audit
            --margin-scale`` does (> 0).
    """

    consecutive: int = Field(3, ge=2)
    min_change: float = Field(1.0, gt=0)
    min_level: float = Field(0.5)
    min_r2: float = Field(0.6, ge=0, le=1)
    window: int = Field(4, ge=3)
    horizon: int = Field(3, ge=1)
    depth: int = Field(2, ge=1)
    max_deep_share: float = Field(0.5, ge=0, le=1)
    margin_scale: float = Field(1.0, gt=0)


@dataclass(frozen=True)
class TrendWarning:
    """A monitor finding: ``rule`` (level, worsening, projected, deep_share), the
    ``metric`` it is about, ``level`` (warning/critical), a plain-language ``message`` and
    the ``generations`` (labels) it was read from."""

    rule: str
    metric: str
    level: str
    message: str
    generations: tuple[str, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["generations"] = list(self.generations)
        return d


def shortfall(m: MetricResult, *, margin_scale: float = 1.0) -> float | None:
    """How far ``m`` stands on the bad side of its reference, in warning margins (0 = equal to
    the real holdout, 1 = on the warning line, negative = better); None without a rule."""
    margin = warning_margin(m, margin_scale=margin_scale)
    if margin is None or m.value is None or not np.isfinite(m.value):
        return None
    ref, rel, abs_ = margin
    width = max(abs(ref) * rel, abs_)
    if width <= 0:
        return None
    gap = {"higher": ref - m.value, "lower": m.value - ref}.get(m.direction,
                                                                abs(m.value - ref))
    return float(gap / width)


def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if abs(x) >= 100 or (x != 0 and abs(x) < 0.01) else f"{x:.3f}"


def _metric_series(audits: Sequence[AuditResult], name: str) -> list[MetricResult | None]:
    out = []
    for a in audits:
        try:
            out.append(a.metric(name))
        except KeyError:
            out.append(None)
    return out


def _word(m: MetricResult) -> str:
    return {"higher": "fell", "lower": "rose"}.get(m.direction, "moved away from real")


def trend_warnings(audits: Sequence[AuditResult], labels: Sequence[str],
                   depth_shares: Sequence[float] | None, rules: TrendRules) -> list[TrendWarning]:
    """Every warning the rules raise over ``audits`` (one per generation, in order);
    ``depth_shares``: share of records at depth ≥ ``rules.depth`` per generation, or None
    without lineage. Critical first, then by rule."""
    out: list[TrendWarning] = []
    last = audits[-1]
    lab = tuple(labels)
    k = rules.consecutive
    for w in last.warnings:
        series = _metric_series(audits, w.metric)
        since = len(audits) - 1
        while since > 0 and series[since - 1] is not None and any(
                x.metric == w.metric for x in audits[since - 1].warnings):
            since -= 1
        when = f" (since {labels[since]})" if since < len(audits) - 1 else ""
        out.append(TrendWarning("level", w.metric, w.level,
                                f"{labels[-1]}: {w.message}{when}", lab[since:]))
    warned = {w.metric for w in last.warnings}
    for m in last.metrics:
        series = _metric_series(audits, m.name)
        falls = [None if s is None else shortfall(s, margin_scale=rules.margin_scale)
                 for s in series]
        if falls[-1] is None:
            continue
        tail = falls[-(k + 1):]
        if len(tail) == k + 1 and None not in tail and falls[-1] >= rules.min_level and \
                all(b > a for a, b in zip(tail[:-1], tail[1:], strict=True)) and \
                tail[-1] - tail[0] >= rules.min_change:
            vals = " → ".join(_fmt(s.value) for s in series[-(k + 1):])
            out.append(TrendWarning(
                "worsening", m.name, "warning",
                f"{m.prop.capitalize()}: {m.name} {_word(m)} for {k} consecutive generations "
                f"({vals}; real holdout {_fmt(m.baseline)}).", lab[-(k + 1):]))
        if m.name in warned:
            continue
        n = min(rules.window, len(falls))
        win = falls[-n:]
        if n < 3 or None in win or falls[-1] >= 1:
            continue
        x, y = np.arange(n, dtype=float), np.asarray(win, float)
        slope, icept = (float(c) for c in np.polyfit(x, y, 1))
        ss_tot = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float(((y - (slope * x + icept)) ** 2).sum()) / ss_tot if ss_tot > 0 \
            else 0.0
        if slope <= 0 or slope * (n - 1) < rules.min_change or r2 < rules.min_r2:
            continue
        ahead = (1.0 - falls[-1]) / slope
        if ahead <= rules.horizon:
            gens = max(1, int(np.ceil(ahead)))
            line = warning_threshold(m, margin_scale=rules.margin_scale)
            out.append(TrendWarning(
                "projected", m.name, "warning",
                f"{m.prop.capitalize()}: {m.name} is projected to cross its warning line "
                f"({_fmt(line)}) within {gens} generation{'s' * (gens != 1)} (now "
                f"{_fmt(m.value)}, real holdout {_fmt(m.baseline)}; a line fitted on the last "
                f"{n} generations, R² {r2:.2f}).", lab[-n:]))
    if depth_shares is not None and len(depth_shares) == len(audits):
        d, s = rules.depth, list(depth_shares)
        if s[-1] > rules.max_deep_share:
            out.append(TrendWarning(
                "deep_share", f"depth>={d}", "warning",
                f"Depth: {s[-1]:.0%} of the records of {labels[-1]} are at depth ≥ {d} "
                f"(written by a model trained on model-written data), above the "
                f"{rules.max_deep_share:.0%} limit.", lab[-1:]))
        tail = s[-(k + 1):]
        if len(tail) == k + 1 and all(b > a for a, b in zip(tail[:-1], tail[1:],
                                                            strict=True)):
            shares = " → ".join(f"{x:.0%}" for x in tail)
            out.append(TrendWarning(
                "deep_share", f"depth>={d}", "warning",
                f"Depth: the share of records at depth ≥ {d} rose for {k} consecutive "
                f"generations ({shares}).", lab[-(k + 1):]))
    order = {"level": 0, "worsening": 1, "projected": 2, "deep_share": 3}
    out.sort(key=lambda w: (w.level != "critical", order[w.rule]))
    return out


def deep_shares(depths: Sequence[dict[int, int] | None], depth: int) -> list[float] | None:
    """Share of records at depth ≥ ``depth`` per generation (None when any generation has no
    lineage columns)."""
    if not depths or any(d is None for d in depths):
        return None
    out = []
    for d in depths:
        assert d is not None
        total = sum(d.values())
        out.append(sum(v for g, v in d.items() if g >= depth) / total if total else 0.0)
    return out
