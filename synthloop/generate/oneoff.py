"""One-off generation (``synthloop generate``): a one-step pipeline, so it checkpoints and
resumes like any run, then writes the generated records to one file or folder."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import get_args

import pyarrow as pa

import synthloop.generate.copula  # noqa: F401  (registers privacy-filter)
import synthloop.generate.tables  # noqa: F401  (registers table-synth)
import synthloop.generate.text  # noqa: F401  (registers generate, taxonomy-generate)
from synthloop.errors import ConfigError
from synthloop.generate.backends import PIPELINE_SAMPLING, BackendSpec, DecodeDtype
from synthloop.generate.tables import AUTO_COPULA_BELOW, TABLE_MODELS, resolve_table_model
from synthloop.models.params import GenParams
from synthloop.pipeline.config import PipelineConfig, validate_steps
from synthloop.pipeline.folder import shard_files
from synthloop.pipeline.runner import RunResult, committed_work, read_shards, run_pipeline
from synthloop.progress import Progress
from synthloop.records.io import read_records, write_parquet, write_records
from synthloop.records.taxonomy import read_taxonomy


def _prompt_input(prompts: Path, n: int, run_dir: Path, template: str | None) -> tuple[Path, str]:
    table = read_records(prompts, text_column=None)
    field = "prompt" if "prompt" in table.column_names else "text"
    if field not in table.column_names and template is None:
        raise ConfigError(f"{prompts}: records need a 'prompt' or 'text' field (or give a "
                          f"template naming your fields)", fields=("template",))
    # cycle through the prompts so exactly n records are asked for, spread evenly
    rows = pa.array([i % table.num_rows for i in range(n)], pa.int64())
    path = run_dir / "prompts.parquet"
    write_parquet(table.take(rows), path)
    return path, template or f"{{{{ {field} }}}}"


def generate_dataset(model: str, *, n: int, out: str | Path, prompts: str | Path | None = None,
                     taxonomy: str | Path | None = None, table: str | Path | None = None,
                     run_dir: str | Path | None = None, base_url: str | None = None,
                     api_key_env: str | None = None, sampling: GenParams | None = None,
                     template: str | None = None, chat: bool = True, seed: int = 0,
                     device: str = "cpu", dtype: str = "auto", privacy_filter: bool = False,
                     shard_size: int = 32,
                     progress: Progress | None = None, watermark: bool = False,
                     key_file: str | Path | None = None, epsilon: float | None = None,
                     delta: float | None = None) -> RunResult:
    """Generate ``n`` records with ``model`` from prompts, a taxonomy or a real table.

    ``out`` ending in ``.parquet``/``.jsonl`` gets one file; anything else becomes a folder of
    Parquet shards. The run's checkpoints live in ``run_dir`` (default ``OUT.run``): rerun
    the same command after an interruption to resume. ``watermark`` marks prompted text
    (key from ``SYNTHLOOP_WATERMARK_KEY`` or ``key_file``). ``dtype`` (``auto``, ``float32``,
    ``bfloat16``) is what a local model decodes in. ``epsilon`` (and ``delta``) make a table
    fit (ε, δ)-differentially private (:mod:`synthloop.generate.dp`); ε and δ are written in
    every record's provenance.
    """
    if watermark and prompts is None:
        raise ConfigError("watermark applies to prompts generation",
                          fields=("watermark", "prompts"))
    given = [x is not None for x in (prompts, taxonomy, table)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of prompts, taxonomy and table",
                          fields=("prompts", "taxonomy", "table"))
    if n < 1:
        raise ConfigError(f"n must be ≥ 1, got {n}", fields=("n",))
    if (epsilon is not None or delta is not None) and table is None:
        raise ConfigError("epsilon and delta apply to table generation",
                          fields=("epsilon", "delta"))
    if dtype not in get_args(DecodeDtype):
        raise ConfigError(f"dtype must be {', '.join(get_args(DecodeDtype)[:-1])} or "
                          f"{get_args(DecodeDtype)[-1]}, got '{dtype}'", fields=("dtype",))
    out = Path(out)
    run_dir = Path(run_dir) if run_dir else out.with_name(out.name + ".run")
    fresh = not run_dir.exists()
    try:
        return _generate(out, run_dir, n, model=model, prompts=prompts, taxonomy=taxonomy,
                         table=table, template=template, base_url=base_url,
                         api_key_env=api_key_env, device=device, dtype=dtype, chat=chat,
                         sampling=sampling, seed=seed, shard_size=shard_size,
                         privacy_filter=privacy_filter, watermark=watermark,
                         key_file=key_file, progress=progress,
                         privacy={k: v for k, v in (("epsilon", epsilon), ("delta", delta))
                                  if v is not None})
    except BaseException:
        if fresh and not committed_work(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth resuming
        raise


def _generate(out: Path, run_dir: Path, n: int, *, model, prompts, taxonomy, table, template,
              base_url, api_key_env, device, dtype, chat, sampling, seed, shard_size,
              privacy_filter, watermark, key_file, progress, privacy):
    run_dir.mkdir(parents=True, exist_ok=True)
    sampling = sampling or PIPELINE_SAMPLING
    backend = BackendSpec(model=model, base_url=base_url, api_key_env=api_key_env,
                          device=device, dtype=dtype).model_dump()
    cfg: dict = {"name": "generate", "seed": seed, "shard_size": shard_size}
    if prompts is not None:
        path, tpl = _prompt_input(Path(prompts), n, run_dir, template)
        cfg["input"] = str(path.resolve())
        steps = [{"type": "generate", "backend": backend, "template": tpl, "chat": chat,
                  "sampling": sampling.model_dump()}]
        if watermark:
            steps[0]["watermark"] = {"key_file": str(Path(key_file).resolve())
                                     if key_file else None}
    elif taxonomy is not None:
        leaves = read_taxonomy(taxonomy).num_rows
        cfg["taxonomy"] = str(Path(taxonomy).resolve())
        cfg["shard_size"] = 1
        steps = [{"type": "taxonomy-generate", "backend": backend,
                  "n_per_leaf": math.ceil(n / leaves), "sampling": sampling.model_dump()}]
    else:
        try:
            resolve_table_model(model, AUTO_COPULA_BELOW)
        except ConfigError:
            raise ConfigError(f"table needs model {', '.join(TABLE_MODELS)}, got "
                              f"'{model}'", fields=("table", "model")) from None
        cfg["input"] = str(Path(table).resolve())
        cfg["shard_size"] = max(shard_size, n)
        steps = [{"type": "table-synth", "n": n, "engine": model, "options": privacy}]
        if privacy_filter:
            steps.append({"type": "privacy-filter"})
    cfg["steps"] = steps
    config = PipelineConfig.model_validate(cfg)
    result = run_pipeline(config, validate_steps(config.steps, "generate"), run_dir,
                          progress=progress)
    parts = shard_files(result.data)
    if out.suffix.lower() in (".parquet", ".pq", ".jsonl", ".ndjson"):
        data = read_shards(parts)
        if taxonomy is not None and data.num_rows > n:
            data = data.slice(0, n)
        write_records(data, out)
    else:
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(result.data, tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return result
