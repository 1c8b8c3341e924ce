"""``synthloop run``, ``generate`` and ``serve``: the copy → filter → curate rungs.

Thin: parse, call a library function, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.app import app, console, user_errors


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
                                            "on --base-url; for --table auto (autoregressive "
                                            "from 100 rows, else the copula), autoregressive, "
                                            "gaussian-copula or sdv:NAME.")],
    out: Annotated[Path, typer.Option(help="Output: .parquet or .jsonl file, or a folder "
                                           "(--schema: a folder, one file per table).")],
    n: Annotated[int | None, typer.Option("--n", help="Records to generate (--schema: rows "
                                                      "per root table [as many as real]).")
                 ] = None,
    prompts: Annotated[Path | None, typer.Option(help="Seed records with a prompt (or text) "
                                                      "field.")] = None,
    taxonomy: Annotated[Path | None, typer.Option(help="InstructLab-style taxonomy folder.")
                        ] = None,
    table: Annotated[Path | None, typer.Option(help="Real table (CSV/Parquet/JSONL) to model.")
                     ] = None,
    schema: Annotated[Path | None, typer.Option(
        help="Linked tables: a schema YAML naming each table's path, key, parent, foreign_key "
             "and (sequential tables) order_by.")] = None,
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
    epsilon: Annotated[float | None, typer.Option(
        help="--table: fit with (ε, δ)-differential privacy at this ε > 0 (DP-SGD; ε and δ "
             "go into every record's provenance).")] = None,
    delta: Annotated[float | None, typer.Option(help="--table: the δ of (ε, δ) [1 / (10 × "
                                                     "rows)].")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="Decode a local model in auto (its own dtype; "
                                            "bfloat16 on CUDA), float32 or bfloat16.")
                     ] = "auto",
    run_dir: Annotated[Path | None, typer.Option(help="Checkpoint folder [OUT.run].")] = None,
) -> None:
    """Generate synthetic records (text from prompts or a taxonomy, table rows, or linked and
    sequential tables), with full provenance. Resumable: rerun the same command after an
    interruption."""
    from synthloop.errors import ConfigError

    if schema is not None:
        if any(x is not None for x in (prompts, taxonomy, table)):
            raise ConfigError("give one of --prompts, --taxonomy, --table and --schema")
        if epsilon is not None or delta is not None:
            raise ConfigError("--epsilon applies to --table: differential privacy for linked "
                              "tables needs accounting per entity, not yet built")
        _generate_schema(model, schema, out, n, seed)
        return
    if n is None:
        raise ConfigError("--n is required (records to generate)")
    from synthloop.generate.backends import PIPELINE_SAMPLING
    from synthloop.generate.oneoff import generate_dataset
    from synthloop.progress import RichProgress

    sampling = PIPELINE_SAMPLING.replace(max_new_tokens=max_new_tokens,
                                         temperature=temperature, top_p=top_p)
    with RichProgress() as progress:
        result = generate_dataset(model, n=n, out=out, prompts=prompts, taxonomy=taxonomy,
                                  table=table, run_dir=run_dir, base_url=base_url,
                                  api_key_env=api_key_env, sampling=sampling, template=template,
                                  chat=chat, seed=seed, device=device, dtype=dtype,
                                  privacy_filter=privacy_filter, progress=progress,
                                  watermark=watermark, key_file=key_file, epsilon=epsilon,
                                  delta=delta)
    _print_run(result)
    console.print(f"output: {out}")


def _generate_schema(model: str, schema: Path, out: Path, n: int | None, seed: int) -> None:
    from synthloop.generate.relational import generate_tables
    from synthloop.progress import RichProgress

    with RichProgress() as progress:
        paths = generate_tables(schema, out, model=model, n=n, seed=seed, progress=progress)
    table = Table(title="synthetic tables")
    for col in ("table", "rows", "file"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    import pyarrow.parquet as pq

    for name, path in paths.items():
        table.add_row(name, f"{pq.read_metadata(path).num_rows:,}", str(path))
    console.print(table)
    console.print(f"schema: {out / 'schema.yaml'}")


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
