"""``synthloop monitor``: the audit of every generation of a team's data, as trends, with early
warnings.

Thin: parse, call :func:`synthloop.monitor.monitor`, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from synthloop.cli.app import app, console, err_console, user_errors, write_outputs
from synthloop.cli.audit import (
    ColumnTypeOpt,
    DeviceOpt,
    EmbeddingsOpt,
    KindOpt,
    MarginScaleOpt,
    PplDocsOpt,
    PplModelOpt,
    SeedOpt,
    TargetOpt,
    TextFieldOpt,
    audit_config,
)
from synthloop.progress import StageLines


def _print_monitor(result) -> None:
    from synthloop.htmlpage import fmt

    table = Table(title=f"{result.kind} monitor: each generation against the real reference")
    for col in ("generation", "records", "score", "grade", "audit warnings"):
        table.add_column(col, justify="left" if col == "generation" else "right")
    if result.depth_shares is not None:
        table.add_column(f"depth ≥ {result.rules.depth}", justify="right")
    for i, (g, a) in enumerate(zip(result.generations, result.audits, strict=True)):
        row = [g.label, str(g.records), fmt(a.score), a.grade, str(len(a.warnings))]
        if result.depth_shares is not None:
            row.append(f"{result.depth_shares[i]:.0%}")
        table.add_row(*row)
    console.print(table)
    for w in result.warnings:
        color = "red" if w.level == "critical" else "yellow"
        console.print(f"[bold {color}]{w.level}[/] ({w.rule}) {escape(w.message)}",
                      highlight=False)
    if not result.warnings:
        console.print("[green]no warnings[/]: no metric is past its margin in the latest "
                      "generation and no trend points there")
    c = result.cache
    if c.get("dir"):
        console.print(f"cache: {c['hits']} audits reused, {c['misses']} computed ({c['dir']})",
                      highlight=False)


@app.command()
@user_errors
def monitor(
    generations: Annotated[list[Path] | None, typer.Argument(
        help="One dataset per generation, in order (JSONL/CSV/Parquet/text); or one mixed "
             "dataset with lineage columns, split by depth.")] = None,
    real: Annotated[Path | None, typer.Option(
        help="Real reference data [a collapse-lab series: the lab's real train blocks].")
    ] = None,
    holdout: Annotated[Path | None, typer.Option(
        help="Real data no generator saw [a collapse-lab series: its real test blocks; "
             "else split off --real, seeded].")] = None,
    runs: Annotated[list[Path] | None, typer.Option(
        help="Pipeline run folders in generation order, or one collapse-lab series "
             "(LAB/runs/POLICY/seedS); repeatable.")] = None,
    out: Annotated[Path | None, typer.Option(help="HTML report to write.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="JSON results to write.")
                         ] = None,
    fail_on_warning: Annotated[bool, typer.Option(
        help="Exit 1 when there is any warning.")] = False,
    split_by_depth: Annotated[bool | None, typer.Option(
        "--split-by-depth/--no-split-by-depth",
        help="Split one dataset by its lineage depth [when it holds several].")] = None,
    cache: Annotated[Path, typer.Option(help="Folder of cached per-generation audits.")
                     ] = Path(".synthloop-cache/monitor"),
    no_cache: Annotated[bool, typer.Option(help="Audit every generation afresh, cache "
                                                "nothing.")] = False,
    consecutive: Annotated[int, typer.Option(
        help="Generations in a row a metric must worsen to warn.")] = 3,
    horizon: Annotated[int, typer.Option(
        help="Warn when a trend crosses a warning line within this many generations.")] = 3,
    window: Annotated[int, typer.Option(help="Generations a projection is fitted on.")] = 4,
    min_change: Annotated[float, typer.Option(
        help="Total worsening, in warning margins, a trend must show.")] = 0.5,
    depth: Annotated[int, typer.Option(help="Depth counted as deep (lineage).")] = 2,
    max_deep_share: Annotated[float, typer.Option(
        help="Warn when more records than this share are at depth ≥ --depth.")] = 0.5,
    margin_scale: MarginScaleOpt = 1.0,
    kind: KindOpt = None,
    seed: SeedOpt = 0,
    text_field: TextFieldOpt = "text",
    embeddings: EmbeddingsOpt = True,
    ppl_model: PplModelOpt = "smollm2-135m",
    ppl_docs: PplDocsOpt = 200,
    target: TargetOpt = None,
    column_type: ColumnTypeOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Watch generation after generation of your data for collapse: the audit of each one
    against the same real reference, as trends, with warnings that fire on trends."""
    from synthloop.audit import detect_kind
    from synthloop.errors import ConfigError
    from synthloop.monitor import TrendRules, collapse_lab_reference, load_generations
    from synthloop.monitor import monitor as run_monitor

    paths, run_dirs = list(generations or []), list(runs or [])
    if not paths and not run_dirs:
        raise ConfigError("give the generations: datasets as arguments, or --runs folders")
    if real is None:
        ref = collapse_lab_reference(run_dirs[0]) if len(run_dirs) == 1 else None
        if ref is None:
            raise ConfigError("--real is required (it can be left out only for a collapse-lab "
                              "series, whose real blocks are known)")
        real, holdout = ref[0], holdout or ref[1]
    kind = kind or detect_kind(real, text_field)
    config = audit_config(kind, seed=seed, text_field=text_field, embeddings=embeddings,
                          ppl_model=ppl_model, ppl_docs=ppl_docs, device=device, target=target,
                          column_type=column_type)
    rules = TrendRules(consecutive=consecutive, horizon=horizon, window=window,
                       min_change=min_change, depth=depth, max_deep_share=max_deep_share,
                       margin_scale=margin_scale)
    gens = load_generations(paths, runs=run_dirs, kind=kind, text_field=text_field,
                            split=split_by_depth)
    result = run_monitor(real, gens, holdout, kind=kind, text_field=text_field, config=config,
                         rules=rules, cache=None if no_cache else cache,
                         progress=StageLines(err_console))
    _print_monitor(result)
    write_outputs(result, out, json_path)
    if fail_on_warning and result.warnings:
        err_console.print(f"[bold red]fail:[/] {len(result.warnings)} warning(s)")
        raise typer.Exit(1)
