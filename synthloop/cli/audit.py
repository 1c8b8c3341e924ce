"""``synthloop audit`` and ``synthloop detect``: the quality audit and AI-text detection.

Thin: parse, call a library function, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.app import app, console, err_console, user_errors, write_outputs
from synthloop.progress import StageLines

# The audit's flags, shared by ``synthloop audit`` and ``synthloop monitor``.
KindOpt = Annotated[str | None, typer.Option(
    help="text, table or relational [inferred; a .yaml --real is a schema of linked tables].")]
SeedOpt = Annotated[int, typer.Option(help="Seed of splits and samples.")]
TextFieldOpt = Annotated[str, typer.Option(help="Text column of text data.")]
EmbeddingsOpt = Annotated[bool, typer.Option(help="Text: MiniLM embedding metrics.")]
PplModelOpt = Annotated[str, typer.Option(
    help="Text: reference LM for perplexity (smollm2-135m, a folder, or none).")]
PplDocsOpt = Annotated[int, typer.Option(help="Text: documents scored per side.")]
TargetOpt = Annotated[str | None, typer.Option(
    help="Table: column to predict for train-synthetic-test-real utility.")]
ColumnTypeOpt = Annotated[list[str] | None, typer.Option(
    help="Table: NAME=TYPE (numerical, datetime, categorical, boolean, id); repeatable.")]
MarginScaleOpt = Annotated[float, typer.Option(help="Multiply every warning margin by this.")]
DeviceOpt = Annotated[str, typer.Option(help="Text: cpu or cuda.")]


def _print_audit(result) -> None:
    for w in result.warnings:
        color = "red" if w.level == "critical" else "yellow"
        console.print(f"[bold {color}]{w.level}[/] {w.message}", highlight=False)
    if not result.warnings:
        console.print("[green]no warnings[/]: every metric is within its margin of real "
                      "held-out data")
    table = Table(title=f"{result.kind} audit: synthetic vs real holdout")
    for col in ("property", "metric", "synthetic", "real holdout", "score"):
        table.add_column(col, justify="left" if col in ("property", "metric") else "right")
    from synthloop.htmlpage import fmt

    for m in result.metrics:
        table.add_row(m.prop, m.name, fmt(m.value), fmt(m.baseline), fmt(m.score))
    console.print(table)
    props = ", ".join(f"{p} {fmt(v)}" for p, v in result.properties.items())
    console.print(f"score {fmt(result.score)} (grade {result.grade}) · {props}",
                  highlight=False)


def _parse_column_types(items: list[str]) -> dict[str, str]:
    from synthloop.errors import ConfigError

    out = {}
    for item in items:
        name, sep, kind = item.rpartition("=")
        if not sep or not name:
            raise ConfigError(f"--column-type expects NAME=TYPE, got '{item}'")
        out[name] = kind
    return out


def audit_config(kind: str, *, seed: int, text_field: str, embeddings: bool, ppl_model: str,
                 ppl_docs: int, device: str, target: str | None, column_type: list[str] | None,
                 benchmark: Path | None = None):
    """The audit configuration the audit flags describe (``synthloop audit`` and ``synthloop
    monitor`` take the same ones)."""
    from synthloop.audit import TableAuditConfig, TextAuditConfig, load_texts
    from synthloop.errors import ConfigError

    if kind == "text":
        if target or column_type:
            raise ConfigError("--target and --column-type apply to table data")
        return TextAuditConfig(
            seed=seed, embeddings=embeddings, ppl_docs=ppl_docs, device=device,
            ppl_model=None if ppl_model.lower() == "none" else ppl_model,
            benchmark=load_texts(benchmark, text_field=text_field) if benchmark else None)
    if kind == "relational":
        from synthloop.audit import RelationalAuditConfig

        if target or column_type or benchmark:
            raise ConfigError("--target, --column-type and --benchmark do not apply to linked "
                              "tables (column types go in the schema YAML)")
        return RelationalAuditConfig(seed=seed)
    if kind == "table":
        if benchmark:
            raise ConfigError("--benchmark applies to text audits")
        return TableAuditConfig(seed=seed, target=target,
                                column_types=_parse_column_types(column_type or []))
    raise ConfigError(f"--kind must be text, table or relational, got '{kind}'")


@app.command()
@user_errors
def audit(
    real: Annotated[Path, typer.Option(help="Real data: JSONL/CSV/Parquet, plain text (.txt "
                                            "file or folder; paragraphs), or a schema YAML "
                                            "of linked tables.")],
    synthetic: Annotated[Path, typer.Option(help="Synthetic data, same format (linked "
                                                 "tables: a folder, one file per table).")],
    holdout: Annotated[Path | None, typer.Option(
        help="Real data the generator never saw [split off --real, seeded].")] = None,
    kind: KindOpt = None,
    out: Annotated[Path | None, typer.Option(help="HTML report to write.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="JSON results to write.")
                         ] = None,
    fail_under: Annotated[float | None, typer.Option(
        help="Exit 1 when the overall score (0..1) is below this.")] = None,
    fail_on_warning: Annotated[bool, typer.Option(
        help="Exit 1 when there is any warning.")] = False,
    seed: SeedOpt = 0,
    text_field: TextFieldOpt = "text",
    embeddings: EmbeddingsOpt = True,
    ppl_model: PplModelOpt = "smollm2-135m",
    ppl_docs: PplDocsOpt = 200,
    benchmark: Annotated[Path | None, typer.Option(
        help="Text: benchmark file to check 13-gram contamination against.")] = None,
    target: TargetOpt = None,
    column_type: ColumnTypeOpt = None,
    margin_scale: MarginScaleOpt = 1.0,
    device: DeviceOpt = "cpu",
) -> None:
    """Audit synthetic data against real data: fidelity, drift, tails, diversity, privacy."""
    from synthloop.audit import audit as run_audit
    from synthloop.audit import detect_kind
    from synthloop.errors import ConfigError

    if fail_under is not None and not 0 <= fail_under <= 1:
        raise ConfigError(f"--fail-under is a score in [0, 1], got {fail_under}")
    kind = kind or detect_kind(real, text_field)
    config = audit_config(kind, seed=seed, text_field=text_field, embeddings=embeddings,
                          ppl_model=ppl_model, ppl_docs=ppl_docs, device=device, target=target,
                          column_type=column_type, benchmark=benchmark)

    result = run_audit(real, synthetic, holdout, kind=kind, text_field=text_field,
                       config=config, margin_scale=margin_scale,
                       progress=StageLines(err_console))
    _print_audit(result)
    write_outputs(result, out, json_path)
    if fail_under is not None and (result.score is None or result.score < fail_under):
        err_console.print(f"[bold red]fail:[/] score {result.score} is below --fail-under "
                          f"{fail_under}", highlight=False)
        raise typer.Exit(1)
    if fail_on_warning and result.warnings:
        err_console.print(f"[bold red]fail:[/] {len(result.warnings)} warning(s)")
        raise typer.Exit(1)


@app.command()
@user_errors
def detect(
    data: Annotated[Path, typer.Argument(help="Dataset: JSONL/CSV/Parquet (text column) or "
                                              "plain text (.txt; paragraphs).")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Per-record scores and the "
                                                                  "share estimate.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write the records with ai_score, ai_generated and ai_detector columns added "
             "(JSONL or Parquet, by suffix).")] = None,
    fpr: Annotated[float, typer.Option(help="False-positive rate on human text.")] = 0.01,
    human: Annotated[Path | None, typer.Option(
        help="Human text to calibrate the threshold on [shipped calibration].")] = None,
    method: Annotated[str, typer.Option(help="fast-detectgpt or likelihood.")
                      ] = "fast-detectgpt",
    model: Annotated[str, typer.Option(help="Reference LM.")] = "smollm2-135m",
    max_tokens: Annotated[int, typer.Option(help="Tokens scored per record.")] = 256,
    text_field: Annotated[str, typer.Option(help="Text column.")] = "text",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Detect unmarked AI-generated text: a score and verdict per record, and the dataset's
    estimated AI-generated share with a confidence interval."""
    import json

    from synthloop.detect import detect_dataset
    from synthloop.records.io import write_records, write_text_atomic

    rep = detect_dataset(data, fpr=fpr, human=human, method=method, model=model,
                         max_tokens=max_tokens, text_field=text_field, device=device,
                         progress=StageLines(err_console))
    cal, share = rep.calibration, rep.share
    console.print(f"{share['flagged']} of {share['n']} records flagged as AI-generated "
                  f"(threshold {cal.threshold:.3f} at {cal.fpr:.0%} false positives on human "
                  f"text; calibration: {cal.source})", highlight=False)
    if share["share"] is not None:
        console.print(f"estimated AI-generated share {share['share']:.1%} "
                      f"(95% CI {share['low']:.1%}–{share['high']:.1%})", highlight=False)
    if out:
        write_records(rep.scored_records(data, text_field), out)
        console.print(f"records: {out}")
    if json_path:
        write_text_atomic(json.dumps(rep.to_dict(), indent=1) + "\n", json_path)
        console.print(f"json: {json_path}")
