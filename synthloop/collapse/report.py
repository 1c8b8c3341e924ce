"""The collapse lab's HTML report: self-contained (plotly.js inlined), opens offline."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from synthloop.collapse.metrics import summarise
from synthloop.htmlpage import html_table, page
from synthloop.records.io import write_text_atomic

#: (results key, title, what "better" means) for the per-generation panels.
PANELS = (
    ("test_ppl", "Perplexity on held-out real text", "lower is better"),
    ("tail_retention", "Tail retention (rare real words still produced)", "higher is better"),
    ("entropy", "Unigram entropy of generated text (bits)", "closer to real"),
    ("distinct_2", "Distinct-2 of generated text", "closer to real"),
    ("sample_ppl.p50", "Median gen-0 perplexity of generated samples", "closer to real"),
    ("novel_word_fraction", "Invented-word share of generated text", "lower is better"),
)
#: The verified-data lab's panels (:mod:`synthloop.collapse.verified`).
TASK_PANELS = (
    ("task_accuracy", "Task accuracy on held-out real problems (greedy)", "higher is better"),
    ("test_ppl", "Perplexity of held-out real records", "lower is better"),
    ("sample_accuracy", "Accuracy of the generation's sampled answers", "higher is better"),
    ("train_correct_share", "Correct share of the data it trained on", "higher is better"),
)
COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _get(row: dict, key: str) -> float:
    v = row
    for part in key.split("."):
        v = v[part]
    return float(v)


def _band(runs: list[dict], policy: str, key: str):
    gens = sorted({r["generation"] for r in runs if r["policy"] == policy})
    mean, lo, hi = [], [], []
    for g in gens:
        vals = np.array([_get(r, key) for r in runs
                         if r["policy"] == policy and r["generation"] == g])
        mean.append(vals.mean())
        lo.append(vals.min())
        hi.append(vals.max())
    return gens, mean, lo, hi


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def metrics_figure(results: dict, panels: tuple[tuple[str, str, str], ...] = PANELS
                   ) -> go.Figure:
    """One panel per ``(results key, title, direction)``, a line per policy (mean over seeds)
    with a min–max band."""
    runs = results["runs"]
    policies = list(dict.fromkeys(r["policy"] for r in runs))
    n_rows = (len(panels) + 1) // 2
    fig = make_subplots(rows=n_rows, cols=2,
                        subplot_titles=[f"{t} — {b}" for _, t, b in panels],
                        vertical_spacing=0.27 / n_rows, horizontal_spacing=0.08)
    base = results.get("baseline", {}).get("real_test", {})
    for i, (key, _, _) in enumerate(panels):
        r, c = divmod(i, 2)
        for j, policy in enumerate(policies):
            color = COLORS[j % len(COLORS)]
            gens, mean, lo, hi = _band(runs, policy, key)
            fig.add_trace(go.Scatter(x=gens + gens[::-1], y=hi + lo[::-1], fill="toself",
                                     mode="lines",
                                     fillcolor=_rgba(color, 0.15), line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=policy),
                          row=r + 1, col=c + 1)
            fig.add_trace(go.Scatter(x=gens, y=mean, mode="lines+markers", name=policy,
                                     legendgroup=policy, showlegend=i == 0,
                                     line={"color": color}),
                          row=r + 1, col=c + 1)
        if key in base and "." not in key:
            fig.add_hline(y=base[key], line_dash="dot", line_color="gray", row=r + 1,
                          col=c + 1, annotation_text="real held-out",
                          annotation_position="bottom right")
        fig.update_xaxes(title_text="generation", dtick=1, row=r + 1, col=c + 1)
    fig.update_layout(height=350 * n_rows, template="plotly_white",
                      legend={"orientation": "h", "y": 1.06},
                      margin={"t": 90, "l": 50, "r": 20, "b": 40})
    return fig


def histogram_figure(results: dict) -> go.Figure:
    """Per policy, the distribution of generated samples' gen-0 perplexity, one line per
    generation (Shumailov et al. 2024, Fig. 1), pooled over seeds."""
    runs = results["runs"]
    edges = np.asarray(results["ppl_bins"])
    centers = np.sqrt(edges[:-1] * edges[1:])
    policies = list(dict.fromkeys(r["policy"] for r in runs))
    gens = sorted({r["generation"] for r in runs})
    cols = min(2, len(policies))
    rows = (len(policies) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=policies,
                        vertical_spacing=0.12)
    for i, policy in enumerate(policies):
        r, c = divmod(i, cols)
        for g in gens:
            hist = np.sum([r_["sample_ppl"]["hist"] for r_ in runs
                           if r_["policy"] == policy and r_["generation"] == g], axis=0)
            if np.ndim(hist) == 0 or hist.sum() == 0:
                continue
            shade = 0.25 + 0.75 * (g / max(1, gens[-1]))
            fig.add_trace(go.Scatter(x=centers, y=hist / hist.sum(), mode="lines",
                                     name=f"gen {g}", legendgroup=f"gen {g}",
                                     showlegend=i == 0,
                                     line={"color": f"rgba(31,119,180,{shade:.2f})"}),
                          row=r + 1, col=c + 1)
        fig.update_xaxes(type="log", title_text="perplexity under the generation-0 model",
                         row=r + 1, col=c + 1)
        fig.update_yaxes(title_text="share of samples", row=r + 1, col=c + 1)
    used = np.flatnonzero(np.sum([r_["sample_ppl"]["hist"] for r_ in runs], axis=0))
    if used.size:
        lo, hi = edges[max(0, used[0] - 1)], edges[min(len(edges) - 1, used[-1] + 2)]
        fig.update_xaxes(range=[np.log10(lo), np.log10(hi)])
    fig.update_layout(height=380 * rows + 60, template="plotly_white")
    return fig


def render_report(results: dict) -> str:
    """The report as one HTML string."""

    cfg = results["config"]
    summary = summarise(results["runs"]) if results["runs"] else []
    table = html_table(summary, [("policy", "policy"), ("test_ppl_gen0", "test ppl gen 0"),
                             ("test_ppl_last", "test ppl last"),
                             ("test_ppl_change", "change"), ("test_ppl_spread", "seed spread"),
                             ("tail_retention_gen0", "tail gen 0"),
                             ("tail_retention_last", "tail last")])
    fig1 = metrics_figure(results).to_html(full_html=False, include_plotlyjs=True)
    fig2 = histogram_figure(results).to_html(full_html=False, include_plotlyjs=False)
    meta = (f"corpus <code>{html.escape(str(cfg['corpus']))}</code> · model "
            f"<code>{html.escape(cfg['model'])}</code> "
            f"({results['model']['parameters']:,} parameters, {results['model']['device']}) · "
            f"{results['data']['train_records']} train / {results['data']['test_records']} "
            f"test blocks of {cfg['block_tokens']} tokens · {cfg['seeds']} seed(s) · "
            f"{results['wall_seconds']:.0f} s")
    return page("synthloop collapse lab", f"""<h1>Collapse lab</h1>
<p>{meta}</p>
<h2>Findings</h2>{_findings_list(results.get("findings", []))}
<h2>Summary</h2>{table}
<h2>Metrics per generation</h2>
<p>Lines are the mean over seeds; bands span min–max over seeds. Dotted lines: the same metric
on held-out real text.</p>
{fig1}
<h2>Perplexity of generated samples under the generation-0 model</h2>
<p>As in Shumailov et al. (2024), Fig. 1, pooled over seeds. Under beam search (the paper's
decoding) later generations put more mass on low perplexity (probable text) while a tail of
improbable errors grows; under sampling, errors compound and the mass drifts to higher
perplexity.</p>
{fig2}
""")


def write_report(results: dict, path: str | Path) -> Path:
    """Write the HTML report atomically; returns its path."""
    return write_text_atomic(render_report(results), path)


def _findings_list(findings: list[dict]) -> str:
    items = []
    for f in findings:
        mark = {True: "✔", False: "✘", None: "–"}[f["holds"]]
        cls = {True: "ok", False: "bad", None: ""}[f["holds"]]
        items.append(f"<li class='{cls}'>{mark} {html.escape(f['expectation'])}: "
                     f"{html.escape(f['detail'])}</li>")
    return f"<ul>{''.join(items) or '<li>none yet</li>'}</ul>"


def render_task_report(results: dict) -> str:
    """The verified-data lab's report as one HTML string."""
    cfg, task = results["config"], results["task"]
    runs = [r for r in results["runs"] if "stopped" not in r]
    summary = summarise(runs, "task_accuracy") if runs else []
    table = html_table(summary, [("policy", "policy"),
                                 ("task_accuracy_gen0", "accuracy gen 0"),
                                 ("task_accuracy_last", "accuracy last"),
                                 ("task_accuracy_change", "change"),
                                 ("task_accuracy_spread", "seed spread")])
    fig = metrics_figure({**results, "runs": runs}, TASK_PANELS).to_html(
        full_html=False, include_plotlyjs=True)
    meta = (f"task <code>{html.escape(task['name'])}</code> ({task['digits']}-digit addition, "
            f"e.g. <code>{html.escape(task['example'])}</code>) · model "
            f"<code>{html.escape(cfg['model'])}</code> ({results['model']['parameters']:,} "
            f"parameters) · {results['data']['train_records']} train / "
            f"{results['data']['test_records']} test problems · {cfg['seeds']} seed(s) · "
            f"{results['wall_seconds']:.0f} s")
    return page("synthloop verified-data lab", f"""<h1>Verified synthetic data</h1>
<p>{meta}</p>
<p>Each generation answers fresh problems by sampling; <code>filter:verified</code> keeps the
answers a program proves correct, <code>filter:verified@f</code> is a verifier that also lets
through a share <i>f</i> of the wrong ones, <code>filter:self-confidence</code> keeps the
answers the model itself was surest of.</p>
<h2>Findings</h2>{_findings_list(results.get("findings", []))}
<h2>Summary</h2>{table}
<h2>Metrics per generation</h2>
<p>Lines are the mean over seeds; bands span min–max over seeds.</p>
{fig}
""")


def write_task_report(results: dict, path: str | Path) -> Path:
    """Write the verified-data report atomically; returns its path."""
    return write_text_atomic(render_task_report(results), path)
