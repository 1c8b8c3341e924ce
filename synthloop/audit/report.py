"""The audit's HTML report: warnings first, the grade, property scores, every metric beside its
real-holdout baseline, then the plots (one self-contained page; plotly inlined once)."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from synthloop.htmlpage import fmt, html_table, page, warning_boxes

if TYPE_CHECKING:  # the result calls render(); the report only reads it
    from synthloop.audit.result import AuditResult

COLORS = {"real": "#667085", "holdout": "#12b76a", "synthetic": "#f04438"}


def _fig_html(fig: go.Figure, first: list[bool]) -> str:
    out = fig.to_html(full_html=False, include_plotlyjs=first[0])
    first[0] = False
    return out


def _overlaid_histograms(series: dict[str, list[float]], title: str, xaxis: str,
                         log_x: bool = False) -> go.Figure:
    fig = go.Figure()
    for k, v in series.items():
        x = np.log10(np.asarray(v, dtype=float)) if log_x else np.asarray(v, dtype=float)
        fig.add_trace(go.Histogram(x=x, name=k, histnorm="probability", opacity=0.55,
                                   marker_color=COLORS.get(k), nbinsx=40))
    fig.update_layout(barmode="overlay", title=title, template="plotly_white", height=360,
                      xaxis_title=("log10 " if log_x else "") + xaxis, yaxis_title="share")
    return fig


def _metric_bars(result: AuditResult) -> go.Figure:
    ms = [m for m in result.metrics if m.score is not None]
    fig = go.Figure(go.Bar(x=[m.score for m in ms], y=[f"{m.prop}: {m.name}" for m in ms],
                           orientation="h", marker_color=["#12b76a" if m.score >= 0.9 else
                                                          "#f79009" if m.score >= 0.7 else
                                                          "#f04438" for m in ms]))
    fig.update_layout(title="Score per metric (1 = as good as real held-out data)",
                      template="plotly_white", height=24 * len(ms) + 120,
                      xaxis_range=[0, 1.02], yaxis_autorange="reversed")
    return fig


def _text_figures(result: AuditResult) -> list[tuple[str, go.Figure]]:
    d = result.data
    figs = [("Document lengths", _overlaid_histograms(
        {k: d["lengths"][k] for k in ("real", "holdout", "synthetic") if k in d["lengths"]},
        "Document length", "words"))]
    if d.get("perplexities"):
        figs.append(("Perplexity under the reference model", _overlaid_histograms(
            {k: d["perplexities"][k] for k in ("holdout", "synthetic")},
            "Per-document perplexity", "perplexity", log_x=True)))
    if d.get("embedding_map"):
        fig = go.Figure()
        for k in ("real", "holdout", "synthetic"):
            pts = np.asarray(d["embedding_map"].get(k, []))
            if len(pts):
                fig.add_trace(go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=k,
                                           marker={"size": 4, "opacity": 0.5,
                                                   "color": COLORS[k]}))
        fig.update_layout(title="Embedding map (MiniLM, PCA fitted on real)", height=520,
                          template="plotly_white")
        figs.append(("Embedding map", fig))
    if d.get("flag_rates"):
        rules = [r for r in d["flag_rates"]["holdout"] if r != "any"]
        fig = go.Figure([go.Bar(name=k, x=rules, y=[d["flag_rates"][k][r] for r in rules],
                                marker_color=COLORS[k]) for k in ("holdout", "synthetic")])
        fig.update_layout(title="Gopher quality rules: share of documents flagged",
                          template="plotly_white", height=360, barmode="group")
        figs.append(("Quality rules", fig))
    return figs


def _table_figures(result: AuditResult) -> list[tuple[str, go.Figure]]:
    d = result.data
    figs = []
    marg = d.get("marginals", {})
    if marg:
        cols = list(marg)
        ncol = 3
        nrow = -(-len(cols) // ncol)
        fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=cols)
        for i, c in enumerate(cols):
            m = marg[c]
            x = (m["categories"] if m["kind"] == "categorical"
                 else [(a + b) / 2 for a, b in zip(m["edges"][:-1], m["edges"][1:], strict=True)])
            for k in ("real", "holdout", "synthetic"):
                fig.add_trace(go.Bar(x=x, y=m[k], name=k, marker_color=COLORS[k],
                                     showlegend=i == 0, legendgroup=k, opacity=0.7),
                              row=i // ncol + 1, col=i % ncol + 1)
        fig.update_layout(title="Marginals (share of rows)", template="plotly_white",
                          height=260 * nrow + 80, barmode="group")
        figs.append(("Column marginals", fig))
    corr = d.get("correlations")
    if corr:
        fig = make_subplots(rows=1, cols=2, subplot_titles=["real", "synthetic"])
        for j, k in enumerate(("real", "synthetic")):
            fig.add_trace(go.Heatmap(z=corr[k], x=corr["columns"], y=corr["columns"], zmin=-1,
                                     zmax=1, colorscale="RdBu", showscale=j == 1),
                          row=1, col=j + 1)
        fig.update_layout(title="Pearson correlations of numerical columns",
                          template="plotly_white", height=max(420, 18 * len(corr["columns"])
                                                              + 200))
        figs.append(("Correlations", fig))
    for side in ("synthetic", "holdout"):
        pairs = d.get("pairs", {}).get(side)
        if not pairs:
            continue
        names = list(dict.fromkeys([p[0] for p in pairs] + [p[1] for p in pairs]))
        pos = {n: i for i, n in enumerate(names)}
        z = np.full((len(names), len(names)), np.nan)
        for a, b, s, _ in pairs:
            z[pos[a], pos[b]] = z[pos[b], pos[a]] = s
        np.fill_diagonal(z, 1.0)
        fig = go.Figure(go.Heatmap(z=z, x=names, y=names, zmin=0, zmax=1,
                                   colorscale="RdYlGn"))
        fig.update_layout(title=f"Column-pair trend similarity: real vs {side}",
                          template="plotly_white", height=max(400, 22 * len(names) + 160))
        figs.append((f"Pair trends ({side})", fig))
    if d.get("dcr"):
        figs.append(("Distance to closest record", _overlaid_histograms(
            {k: d["dcr"][k] for k in ("holdout", "synthetic")},
            "Distance to the closest real training row", "DCR")))
    risks = {k: v for k, v in (d.get("attacks") or {}).items() if k != "membership_auc"}
    if risks:
        fig = go.Figure()
        for side, color in (("holdout", "#98a2b3"), ("synthetic", "#2e90fa")):
            r = [risks[k][side] for k in risks]
            fig.add_trace(go.Bar(
                name="fresh real rows" if side == "holdout" else "synthetic", x=list(risks),
                y=[v["risk"] for v in r], marker_color=color,
                error_y={"type": "data", "symmetric": False,
                         "array": [v["high"] - v["risk"] for v in r],
                         "arrayminus": [v["risk"] - v["low"] for v in r]}))
        fig.update_layout(title="Attack risk on training rows beyond real control rows "
                          "(95% CI; 0 = nothing learnt about the training rows)",
                          template="plotly_white", barmode="group", yaxis_title="risk")
        figs.append(("Privacy attacks", fig))
    return figs


def _relational_figures(result: AuditResult) -> list[tuple[str, go.Figure]]:
    d = result.data
    figs = []
    for key, title, xaxis in (("child_counts", "Rows per parent row", "rows per parent"),
                              ("gaps", "Time between consecutive events", "gap")):
        for table, series in (d.get(key) or {}).items():
            figs.append((f"{title}: {table}", _overlaid_histograms(
                {k: series[k] for k in ("real", "holdout", "synthetic") if series.get(k)},
                f"{title} — {table}", xaxis)))
    return figs


def render(result: AuditResult) -> str:
    """The whole report as one HTML string."""
    parts = ["<h2>Warnings</h2>", warning_boxes(
        [(w.level, html.escape(w.message)) for w in result.warnings],
        "No warnings: every metric is within its margin of what real held-out data scores.")]
    score = result.score
    parts.append(f"<h2>Overall</h2><p><span class='grade'>{result.grade}</span> score "
                 f"{fmt(score)} (mean of property scores; 1 = scores like real held-out data)"
                 f"</p>")
    props = [{"property": p, "score": s} for p, s in result.properties.items()]
    parts.append(html_table(props, [("property", "property"), ("score", "score")],
                            left=("property",)))
    rows = [{"property": m.prop, "metric": m.name, "synthetic": m.value,
             "holdout": m.baseline, "better": m.direction, "score": m.score,
             "what": m.description} for m in result.metrics]
    parts.append("<h2>Metrics beside the real-holdout baseline</h2>")
    parts.append(html_table(rows, [("property", "property"), ("metric", "metric"),
                                   ("synthetic", "synthetic"), ("holdout", "real holdout"),
                                   ("better", "better"), ("score", "score"),
                                   ("what", "what it measures")],
                            left=("property", "metric", "what", "better")))
    first = [True]
    parts.append(_fig_html(_metric_bars(result), first))
    figs = {"text": _text_figures, "relational": _relational_figures}.get(
        result.kind, _table_figures)(result)
    for title, fig in figs:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_fig_html(fig, first))
    if result.kind == "table":
        skipped = result.data.get("skipped") or {}
        if skipped:
            parts.append("<h2>Columns not compared</h2><ul>" + "".join(
                f"<li><code>{html.escape(c)}</code>: {html.escape(r)}</li>"
                for c, r in skipped.items()) + "</ul>")
        types = result.data.get("column_types", {})
        parts.append("<p class='muted'>Column types: " + ", ".join(
            f"{html.escape(c)} ({t})" for c, t in types.items()) + "</p>")
    parts.append("<h2>Inputs and sampling</h2><pre>" + html.escape(json.dumps(
        {"inputs": result.inputs, "sampling": result.sampling}, indent=2, default=str))
        + "</pre>")
    head = (f"<h1>synthloop audit — {html.escape(result.kind)}</h1><p class='muted'>synthetic "
            f"<code>{html.escape(result.inputs.get('synthetic', ''))}</code> against real "
            f"<code>{html.escape(result.inputs.get('real', ''))}</code></p>")
    return page("synthloop audit", head + "\n".join(parts))
