"""The recursive-training experiment: generation after generation, a model trained on data
written by its predecessor, under each data policy.

Protocol (Shumailov et al. 2024, with from-scratch models as in Gerstgrasser et al. 2024):

* The real corpus is cut into blocks of ``block_tokens`` tokens and split, by a fixed seed, into
  train and held-out test blocks.
* Generation 0 trains on the real train blocks. The model of generation ``k`` continues every
  real train block (its first ``prompt_tokens`` tokens as the prompt) with ``new_tokens`` new
  tokens; only the new tokens form the synthetic record, whose ``generation`` is ``k + 1``.
* Generation ``k + 1`` trains, from the same starting weights, on the policy's mix of real and
  synthetic data (:mod:`synthloop.curate.policies`).
* Each generation is measured: perplexity on held-out real text; per-sample perplexity of its
  generated data under the generation-0 model; diversity and tail retention of that data.

Every finished generation leaves ``metrics.json`` (written last, atomically) beside its
datasets, so rerunning the same command resumes after the last finished generation.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from synthloop import __version__
from synthloop.audit import FeatureMemo, TextAuditConfig, audit
from synthloop.collapse.data import make_blocks, split_corpus
from synthloop.collapse.metrics import (
    audit_predicts_collapse,
    log_bins,
    ppl_summary,
    summarise,
    text_metrics,
    word_counts,
)
from synthloop.configs import Config
from synthloop.curate.policies import DataPolicy, mix, parse_policies, select
from synthloop.errors import ConfigError, InputError
from synthloop.models.lm import LanguageModel, TinyLM, resolve_device
from synthloop.models.params import GenParams, TrainParams
from synthloop.models.registry import is_from_scratch, load_lm
from synthloop.models.tokenizer import BPETokenizer
from synthloop.progress import NullProgress, Progress
from synthloop.records.io import (
    read_parquet,
    read_records,
    read_text_corpus,
    write_parquet,
    write_text_atomic,
)
from synthloop.records.lineage import lineage_summary
from synthloop.records.schema import Generator, text_records
from synthloop.seeds import derive_seed31

PPL_BINS = log_bins(1.0, 1e4, 48)


class RunConfig(Config):
    """What every recursive-training run folder shares: a fingerprint of the fields that
    define its results, so a rerun resumes only the same run."""

    # Fields that may change between a run and its resumption: they only add work.
    GROWABLE: ClassVar[tuple[str, ...]] = ("generations", "policies", "seeds", "device",
                                          "keep_models", "out")

    def fingerprint(self) -> str:
        d = {k: v for k, v in self.to_dict().items() if k not in self.GROWABLE}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


class CollapseConfig(RunConfig):
    """Everything that defines a collapse-lab run.

    Attributes:
        corpus: a text file or a folder of text files (``pattern``).
        out: run folder (created; reused to resume).
        model: ``tiny``/``small``/``gpt-125m`` (from scratch), ``smollm2-135m`` or a folder.
        generations: model generations to train, counting generation 0 (trained on real data).
        policies: comma-separated policy specs (see :mod:`synthloop.curate.policies`).
        seeds: number of seeds (0 .. seeds-1); a seed sets initialisation, data order, sampling
            and mixing, never the train/test split (``split_seed``).
        block_tokens: tokens per real record; ``prompt_tokens`` of each prompt the model;
            ``new_tokens`` are written per synthetic record.
        max_train_blocks, max_test_blocks: caps on the split's sides (a seeded subset).
        vocab_size: BPE size of a from-scratch model's tokenizer.
        tail_band: real-train word frequencies (inclusive) that count as the tail.
        keep_models: save every generation's weights.
        audit: audit each generation's training mix against the real train blocks, with the
            real test blocks as holdout (the text audit's n-gram, MinHash, quality-rule and
            privacy metrics; its model-based ones are left out to keep a CPU run within
            minutes) — for :func:`audit_predicts_collapse`. May be switched on for a finished
            run: rerunning adds the audits.
    """

    corpus: str
    out: str
    model: str = "tiny"
    generations: int = Field(5, ge=1)
    policies: str = "replace,keep-real:0.1,accumulate,filter:ppl-top:0.2"
    seeds: int = Field(2, ge=1)
    device: str = "cpu"
    pattern: str = "*.txt"
    block_tokens: int = Field(64, ge=2)
    prompt_tokens: int = Field(64, ge=1)
    new_tokens: int = Field(64, ge=1)
    max_train_blocks: int | None = Field(800, ge=1)
    max_test_blocks: int | None = Field(400, ge=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    split_seed: int = 0
    vocab_size: int = Field(2048, ge=256)
    train: TrainParams = TrainParams(epochs=3.0, batch_size=8, lr=3e-3)
    decoding: GenParams = GenParams(batch_size=512)
    tail_band: tuple[int, int] = (3, 10)
    keep_models: bool = False
    audit: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> CollapseConfig:
        if self.prompt_tokens > self.block_tokens:
            raise ValueError(f"prompt_tokens ({self.prompt_tokens}) must not exceed "
                             f"block_tokens ({self.block_tokens})")
        if not 1 <= self.tail_band[0] <= self.tail_band[1]:
            raise ValueError(f"tail_band must be two counts 1 ≤ low ≤ high, got "
                             f"{list(self.tail_band)}")
        parse_policies(self.policies)
        return self

    @classmethod
    def for_model(cls, corpus: str, out: str, model: str = "tiny", *,
                  train: dict[str, Any] | None = None, decoding: dict[str, Any] | None = None,
                  **fields_: Any) -> CollapseConfig:
        """A config with the protocol that suits ``model``, then any overrides.

        From-scratch sizes get the CPU-tuned recipe (3 epochs, batch 8, lr 3e-3, sampling at
        temperature 1). Pretrained models (``smollm2-135m``, a folder) get Shumailov et al.'s
        fine-tuning protocol: 5 epochs, lr 2e-5, batch 128, 5-way beam search with repetition
        penalty 3.0.
        """
        if is_from_scratch(model):
            t = {"epochs": 3.0, "batch_size": 8, "lr": 3e-3}
            d = {"batch_size": 512}
        else:
            t = {"epochs": 5.0, "batch_size": 128, "lr": 2e-5, "weight_decay": 0.0}
            d = {"num_beams": 5, "repetition_penalty": 3.0, "batch_size": 320}
        t.update(train or {})
        d.update(decoding or {})
        return cls(corpus=corpus, out=out, model=model, train=t, decoding=d, **fields_)

    GROWABLE: ClassVar[tuple[str, ...]] = RunConfig.GROWABLE + ("audit",)


@dataclass
class _Context:
    cfg: CollapseConfig
    out: Path
    base: LanguageModel
    real_train: pa.Table
    real_test: pa.Table
    train_ids: list[list[int]]
    test_ids: list[list[int]]
    prompts: list[list[int]]
    real_counts: Counter
    run_tag: str
    progress: Progress
    memo: FeatureMemo = field(default_factory=FeatureMemo)


def check_run_config(cfg: RunConfig, out: Path) -> None:
    """Refuse a folder that holds a different run; then (re)write its ``config.json``."""
    path = out / "config.json"
    if path.exists():
        try:
            old = type(cfg).from_dict(json.loads(path.read_text())["config"], str(path))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}: unreadable run config ({e}); use a new output folder") \
                from None
        if old.fingerprint() != cfg.fingerprint():
            new, prev = cfg.to_dict(), old.to_dict()
            diff = [k for k in new if k not in cfg.GROWABLE and new[k] != prev[k]]
            name = diff[0] if diff else "?"
            raise ConfigError(f"{out}: holds a run with a different '{name}' "
                              f"({prev.get(name)!r}, now {new.get(name)!r}); "
                              f"use a new output folder to start another run")
    write_text_atomic(json.dumps({"config": cfg.to_dict(), "fingerprint": cfg.fingerprint(),
                                  "synthloop_version": __version__}, indent=2), path)


def train_params(cfg: CollapseConfig) -> TrainParams:
    """The run's training parameters, with the packed sequence long enough for two records
    and for a prompt plus its continuation (so every position used is a trained one)."""
    need = max(2 * (cfg.block_tokens + 1), cfg.prompt_tokens + cfg.new_tokens + 1)
    if cfg.train.seq_len >= need:
        return cfg.train
    return cfg.train.replace(seq_len=need)


def load_corpus(path: str, pattern: str = "*.txt") -> list[tuple[str, str]]:
    """``(name, text)`` documents from plain text (a file or a folder), or from the ``text``
    column of a JSONL, CSV or Parquet dataset (one document per record)."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq") or (
            p.is_dir() and any(p.glob("*.parquet"))):
        table = read_records(p, required=["text"])
        texts = table.column("text").to_pylist()
        docs = [(f"{p.name}#{i}", t) for i, t in enumerate(texts) if t and t.strip()]
        if not docs:
            raise InputError(f"{p}: no non-empty 'text' values")
        return docs
    return read_text_corpus(p, pattern)


def _base_model(cfg: CollapseConfig, out: Path, docs: list[tuple[str, str]]) -> LanguageModel:
    device = resolve_device(cfg.device)
    # A little headroom: re-tokenised records can be a few tokens longer than their block.
    seq_len = train_params(cfg).seq_len + 16
    if is_from_scratch(cfg.model):
        tok_path = out / "tokenizer.json"
        if tok_path.exists():
            tok = BPETokenizer.load(tok_path)
        else:
            tok = BPETokenizer.train([t for _, t in docs], vocab_size=cfg.vocab_size)
            tok.save(tok_path)
        return TinyLM.create(tok, size=cfg.model, max_len=seq_len, seed=0, device=device)
    return load_lm(cfg.model, device=device)


def _prepare(cfg: CollapseConfig, progress: Progress) -> _Context:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_run_config(cfg, out)
    docs = load_corpus(cfg.corpus, cfg.pattern)
    progress.log(f"corpus: {len(docs)} files, {sum(len(t) for _, t in docs):,} characters")
    base = _base_model(cfg, out, docs)
    train_path, test_path = out / "data" / "real_train.parquet", out / "data" / "real_test.parquet"
    if train_path.exists() and test_path.exists():
        real_train, real_test = read_parquet(train_path), read_parquet(test_path)
    else:
        texts, sources = make_blocks(docs, base.encode, base.decode, cfg.block_tokens)
        split = split_corpus(texts, sources, test_fraction=cfg.test_fraction,
                             max_train=cfg.max_train_blocks, max_test=cfg.max_test_blocks,
                             seed=cfg.split_seed)
        real_train, real_test = split.train, split.test
        write_parquet(real_test, test_path)
        write_parquet(real_train, train_path)
    train_texts = real_train.column("text").to_pylist()
    train_ids = base.encode(train_texts)
    prompts = [[base.bos_id] + ids[:cfg.prompt_tokens] for ids in train_ids]
    return _Context(cfg=cfg, out=out, base=base, real_train=real_train, real_test=real_test,
                    train_ids=train_ids, test_ids=base.encode(real_test.column("text")
                                                              .to_pylist()),
                    prompts=[p for p in prompts if len(p) > 1],
                    real_counts=word_counts(train_texts), run_tag=cfg.fingerprint(),
                    progress=progress)


def fit(base: LanguageModel, table: pa.Table, params: TrainParams, seed: int, label: str,
        progress: Progress) -> tuple[LanguageModel, dict]:
    """A fresh copy of ``base`` (initialised by ``seed``) trained on ``table``'s texts, and
    its training stats: seconds, optimiser steps, final loss (mean of the last 10% of steps,
    nats/token). The data order is seeded by ``seed`` and ``label``."""
    model = base.fresh(derive_seed31(seed, "init"))
    ids = model.encode(table.column("text").to_pylist())
    t0 = time.perf_counter()
    losses = model.train(ids, params, seed=derive_seed31(seed, label, "order"),
                         progress=progress, stage=f"{label}: train")
    return model, {"train_seconds": time.perf_counter() - t0, "train_steps": len(losses),
                   "train_loss_final": float(np.mean(losses[-max(1, len(losses) // 10):]))}


def _train(ctx: _Context, table: pa.Table, seed: int, label: str) -> tuple[LanguageModel, dict]:
    return fit(ctx.base, table, train_params(ctx.cfg), seed, label, ctx.progress)


def _test_ppl(ctx: _Context, model: LanguageModel) -> dict:
    nll, n = model.nll(ctx.test_ids)
    mean = float(nll.sum() / max(1, n.sum()))
    return {"test_nll": mean, "test_ppl": float(math.exp(mean))}


def _generate(ctx: _Context, model: LanguageModel, n_cand: int, seed: int, k: int,
              label: str, run_id: str, scorer: LanguageModel) -> tuple[pa.Table, dict]:
    """Write ``n_cand`` synthetic records with ``model`` (generation ``k``), scored by the
    generation-0 ``scorer``. Prompts cycle through the real train blocks in order."""
    cfg = ctx.cfg
    params = cfg.decoding.replace(max_new_tokens=cfg.new_tokens)
    sample_seed = derive_seed31(seed, k, "sample")
    rows = [i % len(ctx.prompts) for i in range(n_cand)]
    t0 = time.perf_counter()
    ctx.progress.stage(f"{label}: generate", n_cand)
    new = model.generate([ctx.prompts[i] for i in rows], params, seed=sample_seed,
                         progress=ctx.progress.advance)
    gen_s = time.perf_counter() - t0
    texts = model.decode(new)
    t0 = time.perf_counter()
    nll, count = scorer.nll(scorer.encode(texts))
    ppl = np.exp(nll / np.maximum(count, 1))
    parent_ids = ctx.real_train.column("id").to_pylist()
    generator = Generator(model=f"{cfg.model}#gen{k}", weights_sha256=model.weights_sha256(),
                          decoding=params.to_dict(), seed=sample_seed)
    table = text_records(texts, origin="synthetic", generation=k + 1, generator=generator,
                         parents=[[parent_ids[i]] for i in rows], run_id=run_id,
                         extra={"gen0_ppl": ppl.tolist()})
    return table, {"generate_seconds": gen_s, "score_seconds": time.perf_counter() - t0}


def _metrics(ctx: _Context, texts: list[str], ppl: np.ndarray) -> dict:
    m = text_metrics(texts, ctx.real_counts, tail_band=tuple(ctx.cfg.tail_band))
    m["sample_ppl"] = ppl_summary(ppl, PPL_BINS)
    return m


def _write_json(obj: Any, path: Path) -> None:
    write_text_atomic(json.dumps(obj, indent=1, allow_nan=True, default=_json_default), path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.floating):
        return o.item()
    raise TypeError(type(o).__name__)


def _gen0(ctx: _Context, seed: int, policies: list[DataPolicy]) -> tuple[LanguageModel, dict]:
    """Train (or load) the seed's generation-0 model and its candidate synthetic data."""
    d = ctx.out / "runs" / "_gen0" / f"seed{seed}"
    n = ctx.real_train.num_rows
    n_cand = max(p.n_candidates(n) for p in policies)
    cand_path = d / "candidates.parquet"
    if (d / "metrics.json").exists() and (d / "model").exists():
        model = _load_model(ctx, d / "model")
        cands = read_parquet(cand_path)
        if cands.num_rows >= n_cand:
            return model, json.loads((d / "metrics.json").read_text())
    else:
        label = f"seed {seed} gen 0"
        model, train_info = _train(ctx, ctx.real_train, seed, label)
        row = {**_test_ppl(ctx, model), **train_info}
        model.save(d / "model")
        row["weights_sha256"] = model.weights_sha256()
        row["train"] = lineage_summary(ctx.real_train)
        _write_json(row, d / "train_info.json")
    row = json.loads((d / "train_info.json").read_text())
    run_id = f"collapse-{ctx.run_tag}/seed{seed}/gen0"
    cands, times = _generate(ctx, model, n_cand, seed, 0, f"seed {seed} gen 0", run_id,
                             scorer=model)
    write_parquet(cands, cand_path)
    first = cands.slice(0, n)
    row.update(times)
    row.update(_metrics(ctx, first.column("text").to_pylist(),
                        np.asarray(first.column("gen0_ppl").to_pylist())))
    _write_json(row, d / "metrics.json")
    return model, row


def _load_model(ctx: _Context, path: Path) -> LanguageModel:
    if isinstance(ctx.base, TinyLM):
        return TinyLM.load(path, device=ctx.base.device)
    from synthloop.models.hf import HFLM

    return HFLM.from_pretrained(path, device=ctx.base.device, name=ctx.base.name)


def _policy_gen0(ctx: _Context, policy: DataPolicy, seed: int, row0: dict) -> None:
    """Materialise a policy's view of generation 0: its synthetic set and the shared row."""
    d = ctx.out / "runs" / policy.slug / f"seed{seed}" / "gen0"
    if (d / "metrics.json").exists():
        return
    cands = read_parquet(ctx.out / "runs" / "_gen0" / f"seed{seed}" / "candidates.parquet")
    kept, rejected = select(policy, cands, ctx.real_train.num_rows)
    write_parquet(kept, d / "synthetic.parquet")
    if rejected is not None:
        write_parquet(rejected, d / "rejected.parquet")
    row = {"policy": policy.spec, "seed": seed, "generation": 0, **row0}
    if rejected is not None:
        row["filter"] = {"kept": kept.num_rows, "dropped": rejected.num_rows}
    _write_json(row, d / "metrics.json")


#: The lab's audit of a training mix: every text-audit metric that needs no model.
LAB_AUDIT = TextAuditConfig(embeddings=False, ppl_model=None)


def _audit_mix(ctx: _Context, train_table: pa.Table) -> dict:
    """The audit of the data a generation trained on, against the real train blocks (the
    reference) and the real test blocks (the holdout): score, properties, metric values."""
    ctx.progress.stage("audit of the training mix", None)
    r = audit(ctx.real_train.column("text").to_pylist(), train_table.column("text").to_pylist(),
              ctx.real_test.column("text").to_pylist(), kind="text", config=LAB_AUDIT,
              memo=ctx.memo)
    return {"score": r.score, "grade": r.grade, "properties": r.properties,
            "metrics": {m.name: m.value for m in r.metrics},
            "metric_scores": {m.name: m.score for m in r.metrics},
            "warnings": [w.metric for w in r.warnings]}


def _add_audit(ctx: _Context, d: Path) -> None:
    """Audit a finished generation that has none yet (``audit`` switched on later)."""
    path = d / "metrics.json"
    row = json.loads(path.read_text())
    if "audit" in row or not (d / "train.parquet").exists():
        return
    row["audit"] = _audit_mix(ctx, read_parquet(d / "train.parquet"))
    _write_json(row, path)


def _step(ctx: _Context, policy: DataPolicy, seed: int, k: int, scorer: LanguageModel) -> None:
    """Generation ``k`` ≥ 1 of one policy and seed."""
    base_dir = ctx.out / "runs" / policy.slug / f"seed{seed}"
    d = base_dir / f"gen{k}"
    if (d / "metrics.json").exists():
        if ctx.cfg.audit:
            _add_audit(ctx, d)
        return
    n = ctx.real_train.num_rows
    synthetic = {j: read_parquet(base_dir / f"gen{j - 1}" / "synthetic.parquet")
                 for j in range(1, k + 1)}
    train_table = mix(policy, ctx.real_train, synthetic, k,
                      np.random.default_rng(derive_seed31(seed, policy.spec, k, "mix")))
    write_parquet(train_table, d / "train.parquet")
    label = f"seed {seed} {policy.spec} gen {k}"
    model, row = _train(ctx, train_table, seed, f"{policy.spec}/gen{k}")
    row = {"policy": policy.spec, "seed": seed, "generation": k, **_test_ppl(ctx, model),
           **row, "weights_sha256": model.weights_sha256(), "train": lineage_summary(train_table)}
    if ctx.cfg.audit:
        row["audit"] = _audit_mix(ctx, train_table)
    run_id = f"collapse-{ctx.run_tag}/seed{seed}/{policy.slug}/gen{k}"
    cands, times = _generate(ctx, model, policy.n_candidates(n), seed, k, label, run_id, scorer)
    row.update(times)
    first = cands.slice(0, n)
    row.update(_metrics(ctx, first.column("text").to_pylist(),
                        np.asarray(first.column("gen0_ppl").to_pylist())))
    kept, rejected = select(policy, cands, n)
    write_parquet(kept, d / "synthetic.parquet")
    if rejected is not None:
        write_parquet(rejected, d / "rejected.parquet")
        row["filter"] = {"kept": kept.num_rows, "dropped": rejected.num_rows}
    if ctx.cfg.keep_models:
        model.save(d / "model")
    _write_json(row, d / "metrics.json")


@dataclass
class CollapseResult:
    """What a run produced: the tidy rows, the paths, and the findings."""

    out: Path
    runs: list[dict]
    findings: list[dict]
    results_path: Path
    report_path: Path | None
    audit_prediction: dict | None = None

    def summary_rows(self) -> list[dict]:
        return summarise(self.runs)


def run_collapse(cfg: CollapseConfig, progress: Progress | None = None,
                 report: bool = True) -> CollapseResult:
    """Run (or resume) the collapse experiment described by ``cfg``.

    Writes under ``cfg.out``: ``config.json``, ``data/`` (real train/test), ``runs/<policy>/
    seed<s>/gen<k>/`` (``train.parquet`` mix, ``synthetic.parquet``, ``rejected.parquet`` for
    filters, ``metrics.json``), ``results.json`` and ``report.html``.
    """
    progress = progress or NullProgress()
    policies = parse_policies(cfg.policies)
    t0 = time.perf_counter()
    out = Path(cfg.out)
    fresh = not out.exists()
    try:
        ctx = _prepare(cfg, progress)
    except BaseException:
        if fresh:  # nothing trained yet: leave no folder that looks like a run
            shutil.rmtree(out, ignore_errors=True)
        raise
    progress.log(f"data: {ctx.real_train.num_rows} train / {ctx.real_test.num_rows} test blocks "
                 f"of {cfg.block_tokens} tokens; model {cfg.model} "
                 f"({ctx.base.num_params():,} parameters) on {ctx.base.device}")
    for seed in range(cfg.seeds):
        scorer, row0 = _gen0(ctx, seed, policies)
        _overall(progress)
        for policy in policies:
            _policy_gen0(ctx, policy, seed, row0)
        for k in range(1, cfg.generations):
            for policy in policies:
                _step(ctx, policy, seed, k, scorer)
                _overall(progress)
        del scorer
    runs = collect_rows(ctx.out, policies, cfg.seeds, cfg.generations)
    findings = assess(runs)
    results = {
        "synthloop_version": __version__,
        "config": cfg.to_dict(),
        "model": {"spec": cfg.model, "parameters": ctx.base.num_params(),
                  "device": str(ctx.base.device)},
        "data": {"train_records": ctx.real_train.num_rows,
                 "test_records": ctx.real_test.num_rows},
        "baseline": {"real_test": text_metrics(ctx.real_test.column("text").to_pylist(),
                                               ctx.real_counts, tuple(cfg.tail_band))},
        "ppl_bins": PPL_BINS.tolist(),
        "runs": runs,
        "findings": findings,
        "wall_seconds": time.perf_counter() - t0,
    }
    if any("audit" in r for r in runs):
        results["audit_prediction"] = audit_predicts_collapse(runs)
    results_path = ctx.out / "results.json"
    _write_json(results, results_path)
    report_path = None
    if report:
        from synthloop.collapse.report import write_report

        report_path = write_report(results, ctx.out / "report.html")
    return CollapseResult(ctx.out, runs, findings, results_path, report_path,
                          results.get("audit_prediction"))


def _overall(progress: Progress) -> None:
    step = getattr(progress, "step_overall", None)
    if step:
        step()


def total_units(cfg: CollapseConfig) -> int:
    """Units of work of a run (one per model trained), for an overall progress bar."""
    return cfg.seeds * (1 + (cfg.generations - 1) * len(parse_policies(cfg.policies)))


def collect_rows(out: Path, policies: list[DataPolicy], seeds: int, generations: int) -> list[dict]:
    """The finished rows of a run folder, ordered by policy, seed and generation."""
    rows = []
    for p in policies:
        for s in range(seeds):
            for k in range(generations):
                f = out / "runs" / p.slug / f"seed{s}" / f"gen{k}" / "metrics.json"
                if f.exists():
                    rows.append(json.loads(f.read_text()))
    return rows


def assess(runs: list[dict]) -> list[dict]:
    """Check the run against what the literature found; one finding per expectation.

    A change counts only if it exceeds the spread over seeds (max − min at generation 0 plus
    max − min at the last generation).
    """
    by = {s["policy"]: s for s in summarise(runs)} if runs else {}
    findings = []

    def add(name: str, holds: bool | None, detail: str) -> None:
        findings.append({"expectation": name, "holds": holds, "detail": detail})

    rep = by.get("replace")
    if rep and rep["last_generation"] > 0:
        add("replace degrades held-out perplexity beyond the seed spread",
            rep["test_ppl_change"] > rep["test_ppl_spread"],
            f"test ppl {rep['test_ppl_gen0']:.1f} → {rep['test_ppl_last']:.1f} "
            f"(change {rep['test_ppl_change']:+.1f}, seed spread {rep['test_ppl_spread']:.1f})")
        add("replace loses the tail",
            rep["tail_retention_last"] < rep["tail_retention_gen0"],
            f"tail retention {rep['tail_retention_gen0']:.3f} → "
            f"{rep['tail_retention_last']:.3f}")
    acc = by.get("accumulate")
    if acc and acc["last_generation"] > 0:
        add("accumulate does not degrade",
            acc["test_ppl_change"] <= acc["test_ppl_spread"],
            f"test ppl {acc['test_ppl_gen0']:.1f} → {acc['test_ppl_last']:.1f} "
            f"(change {acc['test_ppl_change']:+.1f}, seed spread {acc['test_ppl_spread']:.1f})")
    keep = next((v for k, v in by.items() if k.startswith("keep-real:")), None)
    if keep and rep and keep["last_generation"] > 0:
        add(f"{keep['policy']} degrades less than replace",
            keep["test_ppl_change"] < rep["test_ppl_change"],
            f"change {keep['test_ppl_change']:+.1f} vs replace {rep['test_ppl_change']:+.1f}")
    sub = by.get("accumulate-subsample")
    if sub and rep and sub["last_generation"] > 0:
        add("accumulate-subsample (compute-matched) degrades less than replace",
            sub["test_ppl_change"] < rep["test_ppl_change"],
            f"change {sub['test_ppl_change']:+.1f} vs replace {rep['test_ppl_change']:+.1f}")
    for name, v in by.items():
        if name.startswith("filter:") and rep and v["last_generation"] > 0:
            # No pass/fail: the literature finds likelihood filters do not prevent collapse
            # (Gambetta et al. 2024); this reports where this run stands.
            add(f"{name} compared with replace", None,
                f"change {v['test_ppl_change']:+.1f} vs replace {rep['test_ppl_change']:+.1f}; "
                f"tail retention {v['tail_retention_last']:.3f} vs "
                f"{rep['tail_retention_last']:.3f}")
    return findings
