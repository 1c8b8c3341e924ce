"""The monitor's HTML report: warnings first, the score per generation, then one trend panel
per property (each metric's shortfall from its real-holdout baseline, in warning margins, with
the baseline at 0 and the warning line at 1), the depth share, and every value in a table."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

import plotly.colors as px_colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from synthloop.htmlpage import fmt, html_table, page, warning_boxes
from synthloop.monitor.trends import shortfall

if TYPE_CHECKING:
    from synthloop.monitor import MonitorResult

#: Shortfalls drawn (in warning margins); values outside are drawn at the edge.
Y_RANGE = (-3.0, 6.0)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")


def _scores_figure(result: MonitorResult) -> go.Figure:
    x = result.labels
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[a.score for a in result.audits], name="overall",
                             mode="lines+markers", line={"width": 4, "color": "#101828"}))
    props = list(dict.fromkeys(p for a in result.audits for p in a.properties))
    for i, p in enumerate(props):
        fig.add_trace(go.Scatter(x=x, y=[a.properties.get(p) for a in result.audits], name=p,
                                 mode="lines+markers",
                                 line={"color": PALETTE[i % len(PALETTE)], "dash": "dot"}))
    fig.update_layout(title="Audit score per generation (1 = scores like real held-out data)",
                      template="plotly_white", height=380, yaxis_range=[0, 1.05],
                      xaxis_title="generation")
    return fig


def _trend_figure(result: MonitorResult) -> go.Figure | None:
    x = result.labels
    by_prop: dict[str, list[str]] = {}
    for name in result.metric_names():
        series = [_metric(a, name) for a in result.audits]
        if any(m is not None and shortfall(m) is not None for m in series):
            prop = next(m.prop for m in series if m is not None)
            by_prop.setdefault(prop, []).append(name)
    if not by_prop:
        return None
    props = list(by_prop)
    fig = make_subplots(rows=len(props), cols=1, subplot_titles=props, shared_xaxes=True,
                        vertical_spacing=0.25 / len(props))
    scale = result.rules.margin_scale
    colors = iter(px_colors.qualitative.Dark24 + px_colors.qualitative.Light24)
    for row, p in enumerate(props, start=1):
        for name in by_prop[p]:
            ms = [_metric(a, name) for a in result.audits]
            raw = [None if m is None else shortfall(m, margin_scale=scale) for m in ms]
            # far-off values (a perplexity 30 margins out) would flatten every other line:
            # drawn at the panel's edge, their value in the hover text
            y = [None if v is None else min(max(v, Y_RANGE[0]), Y_RANGE[1]) for v in raw]
            text = [("" if m is None else f"{name}: {fmt(m.value)} (real holdout "
                     f"{fmt(m.baseline)}; {fmt(v, 2)} margins"
                     f"{', off scale' if v is not None and c != v else ''})")
                    for m, v, c in zip(ms, raw, y, strict=True)]
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines+markers", text=text,
                                     hoverinfo="text+x", legendgroup=p,
                                     legendgrouptitle_text=p,
                                     line={"color": next(colors, "#667085")}),
                          row=row, col=1)
        fig.update_yaxes(range=[Y_RANGE[0] - 0.2, Y_RANGE[1] + 0.2], row=row, col=1)
        for level, label, dash in ((0.0, "real holdout", "dash"), (1.0, "warning line",
                                                                   "dot")):
            fig.add_hline(y=level, line_dash=dash, line_color="#667085", row=row, col=1,
                          annotation_text=label, annotation_position="top left")
    fig.update_layout(title="Each metric's shortfall from its real-holdout baseline, in "
                            "warning margins (0 = like real data, above 1 = the audit warns)",
                      template="plotly_white", height=280 * len(props) + 120,
                      legend={"groupclick": "toggleitem"})
    fig.update_xaxes(title_text="generation", row=len(props), col=1)
    return fig


def _depth_figure(result: MonitorResult) -> go.Figure | None:
    if result.depth_shares is None:
        return None
    fig = go.Figure(go.Scatter(x=result.labels, y=result.depth_shares, mode="lines+markers",
                               name=f"depth ≥ {result.rules.depth}"))
    fig.add_hline(y=result.rules.max_deep_share, line_dash="dot", line_color="#d92d20",
                  annotation_text="limit")
    fig.update_layout(title=f"Share of records at depth ≥ {result.rules.depth} (lineage)",
                      template="plotly_white", height=320, yaxis_range=[0, 1.05],
                      yaxis_tickformat=".0%", xaxis_title="generation")
    return fig


def _metric(audit, name):
    try:
        return audit.metric(name)
    except KeyError:
        return None


def render(result: MonitorResult) -> str:
    """The whole report as one HTML string."""
    parts = ["<h2>Warnings</h2>", warning_boxes(
        [(w.level, f"<code>{html.escape(w.rule)}</code> · {html.escape(w.message)}")
         for w in result.warnings],
        "No warnings: no metric is past its margin in the latest generation, and no trend "
        "points there.")]
    rows = []
    for i, (g, a) in enumerate(zip(result.generations, result.audits, strict=True)):
        row = {"generation": g.label, "records": g.records, "score": a.score,
               "grade": a.grade, "warnings": len(a.warnings), "source": g.source}
        if result.depth_shares is not None:
            row["deep"] = f"{result.depth_shares[i]:.0%}"
        rows.append(row)
    cols = [("generation", "generation"), ("records", "records"), ("score", "score"),
            ("grade", "grade"), ("warnings", "audit warnings")]
    if result.depth_shares is not None:
        cols.append(("deep", f"depth ≥ {result.rules.depth}"))
    cols.append(("source", "data"))
    parts.append("<h2>Generations</h2>")
    parts.append(html_table(rows, cols, left=("generation", "source", "grade")))
    first = True
    for title, fig in (("Scores", _scores_figure(result)),
                       ("Trends per property", _trend_figure(result)),
                       ("Depth", _depth_figure(result))):
        if fig is None:
            continue
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    vals = []
    for name in result.metric_names():
        s = result.series(name)
        m = next(x for x in (_metric(a, name) for a in result.audits) if x is not None)
        row = {"metric": name, "property": m.prop, "better": m.direction,
               "baseline": s["baselines"][-1]}
        row.update({f"g{i}": v for i, v in enumerate(s["values"])})
        vals.append(row)
    parts.append("<h2>Every metric by generation</h2>")
    parts.append(html_table(vals, [("property", "property"), ("metric", "metric"),
                                   ("better", "better"), ("baseline", "real holdout")] +
                            [(f"g{i}", lab) for i, lab in enumerate(result.labels)],
                            left=("property", "metric", "better")))
    parts.append("<h2>Inputs, rules and cache</h2><pre>" + html.escape(json.dumps(
        {"inputs": result.inputs, "rules": result.rules.to_dict(), "cache": result.cache},
        indent=2, default=str)) + "</pre>")
    head = (f"<h1>synthloop monitor — {html.escape(result.kind)}</h1><p class='muted'>"
            f"{len(result.generations)} generations against real "
            f"<code>{html.escape(result.inputs.get('real', ''))}</code></p>")
    return page("synthloop monitor", head + "\n".join(parts))
