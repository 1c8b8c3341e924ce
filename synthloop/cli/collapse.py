"""``synthloop collapse`` and ``synthloop demo``: the collapse lab.

Thin: parse, call a library function, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.app import app, console, user_errors


def _print_findings(findings: list[dict]) -> None:
    for f in findings:
        mark = {True: "[green]✔[/]", False: "[red]✘[/]", None: "–"}[f["holds"]]
        console.print(f"{mark} {f['expectation']}: {f['detail']}", highlight=False)


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
    _print_findings(result.findings)
    pred = result.audit_prediction
    if pred and pred.get("overall"):
        o = pred["overall"]
        props = ", ".join(f"{p} {v['rho']:+.2f}" for p, v in pred["properties"].items()
                          if v["rho"] is not None)
        console.print(f"audit score of the training mix vs perplexity improvement over "
                      f"{pred['rows']} models: Spearman ρ {o['rho']:+.2f} (95% CI "
                      f"{o['low']:+.2f}…{o['high']:+.2f}); by property: {props}",
                      highlight=False)
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
    audit: Annotated[bool, typer.Option(
        help="Audit each generation's training mix; results.json gets how well the audit "
             "score predicts the perplexity change (Spearman ρ).")] = False,
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
        split_seed=split_seed, vocab_size=vocab_size, keep_models=keep_models, audit=audit)
    _run_collapse(cfg)


DEMO_POLICIES = "replace,keep-real:0.1,accumulate,accumulate-subsample,filter:ppl-top:0.2"


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/demo"),
    seeds: Annotated[int, typer.Option(help="Number of seeds.")] = 2,
    generations: Annotated[int, typer.Option(help="Model generations.")] = 5,
    audit: Annotated[bool, typer.Option(
        help="Audit each generation's training mix (see synthloop collapse --audit).")
    ] = False,
) -> None:
    """The collapse lab on Shakespeare with the tiny from-scratch model: the four policies of
    the literature plus the compute-matched accumulate control (about 6 minutes on 2 CPU
    cores)."""
    from synthloop.collapse.experiment import CollapseConfig
    from synthloop.corpora import SHAKESPEARE_PATTERN, shakespeare_dir

    cfg = CollapseConfig.for_model(str(shakespeare_dir()), str(out), "tiny",
                                   pattern=SHAKESPEARE_PATTERN, generations=generations,
                                   seeds=seeds, policies=DEMO_POLICIES, audit=audit)
    console.print(f"[bold]synthloop demo[/]: the collapse lab on Shakespeare "
                  f"({cfg.seeds} seeds × {cfg.generations} generations × "
                  f"{len(cfg.policies.split(','))} policies)")
    _run_collapse(cfg)


@app.command("collapse-verified")
@user_errors
def collapse_verified(
    out: Annotated[Path, typer.Option(help="Run folder (rerun to resume).")],
    task: Annotated[str, typer.Option(help="Task with checkable answers: arithmetic.")
                    ] = "arithmetic",
    digits: Annotated[int, typer.Option(help="Digits per operand (arithmetic).")] = 2,
    train_problems: Annotated[int, typer.Option(help="Real train problems (answered "
                                                     "correctly).")] = 1000,
    test_problems: Annotated[int, typer.Option(help="Held-out test problems.")] = 500,
    model: Annotated[str, typer.Option(help="From-scratch size: tiny, small, gpt-30m, "
                                            "gpt-125m.")] = "tiny",
    generations: Annotated[int, typer.Option(help="Model generations, counting generation 0 "
                                                  "(trained on real data).")] = 5,
    policies: Annotated[str | None, typer.Option(
        help="Comma-separated policies [replace, accumulate, filter:verified:0.5, "
             "filter:verified@0.5:0.5 (a verifier that accepts half the wrong answers), "
             "filter:self-confidence:0.5].")] = None,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..S-1).")] = 2,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    split_seed: Annotated[int, typer.Option(help="Seed of the problem split.")] = 0,
    epochs: Annotated[float | None, typer.Option(help="Training passes [60].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Records per step [64].")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [3e-3].")] = None,
    temperature: Annotated[float | None, typer.Option(
        help="Sampling temperature of the generated answers [1.5].")] = None,
    keep_models: Annotated[bool, typer.Option(help="Save every generation's weights.")] = False,
) -> None:
    """Verified synthetic data: the recursive-training loop on a task a program can check,
    with verifier, imperfect-verifier and self-confidence filters against replace and
    accumulate."""
    from synthloop.collapse.verified import TaskCollapseConfig, run_task_collapse, task_units
    from synthloop.progress import LogProgress, RichProgress

    base = TaskCollapseConfig.model_fields
    train = base["train"].default.replace(**{k: v for k, v in {
        "epochs": epochs, "batch_size": batch_size, "lr": lr}.items() if v is not None})
    decoding = base["decoding"].default
    if temperature is not None:
        decoding = decoding.replace(temperature=temperature)
    extra = {"policies": policies} if policies is not None else {}
    cfg = TaskCollapseConfig(out=str(out), task=task, digits=digits,
                             train_problems=train_problems, test_problems=test_problems,
                             model=model, generations=generations, seeds=seeds, device=device,
                             split_seed=split_seed, train=train, decoding=decoding,
                             keep_models=keep_models, **extra)
    if not console.is_terminal:
        result = run_task_collapse(cfg, progress=LogProgress())
    else:
        with RichProgress(task_units(cfg), "models trained") as progress:
            result = run_task_collapse(cfg, progress=progress)
    table = Table(title="task accuracy on held-out real problems (mean over seeds)")
    table.add_column("policy", no_wrap=True)
    for col in ("gen 0", "last gen", "change", "seed spread"):
        table.add_column(col, justify="right")
    for s in result.summary_rows():
        table.add_row(s["policy"], f"{s['task_accuracy_gen0']:.3f}",
                      f"{s['task_accuracy_last']:.3f}", f"{s['task_accuracy_change']:+.3f}",
                      f"{s['task_accuracy_spread']:.3f}")
    console.print(table)
    _print_findings(result.findings)
    console.print(f"results: {result.results_path}")
    if result.report_path:
        console.print(f"report:  {result.report_path}")
