"""Verified synthetic data: the recursive-training loop on a task whose answers a program can
check (Feng et al. 2024, "Beyond model collapse: scaling up with synthesized data requires
verification").

Protocol:

* The task's problems (:mod:`synthloop.collapse.tasks`; two-digit addition by default) are
  split by ``split_seed`` into real train problems (with their correct answers), held-out test
  problems and a pool of unanswered problems.
* Generation 0 trains a from-scratch model on the real train records, each record its own
  training window (records have one length, so every window starts at a record).
* The model of generation ``k`` answers fresh pool problems (the same problems for every
  policy of a seed and generation) by sampling; each answer is a synthetic record
  ``AA+BB=CCC`` of generation ``k + 1`` with three columns the filters read: ``verified`` (the
  verifier's verdict), ``confidence`` (the writing model's mean log-probability of its answer
  tokens) and ``gen0_ppl``.
* Generation ``k + 1`` trains, from the same starting weights, on the policy's mix
  (:mod:`synthloop.curate.policies`: ``filter:verified``, ``filter:verified@f`` — an imperfect
  verifier that accepts a share ``f`` of the wrong answers —, ``filter:self-confidence``,
  ``replace``, ``accumulate``, …).
* Each generation is measured: task accuracy on the held-out test problems (greedy decoding,
  exact match), perplexity of the real test records, the accuracy of its own sampled answers,
  and the share of correct records in the data it trained on.

Every finished generation leaves ``metrics.json`` (written last, atomically) beside its data,
so rerunning the same command resumes after the last finished generation.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import torch
from pydantic import Field, model_validator

from synthloop import __version__
from synthloop.collapse.experiment import (
    RunConfig,
    _overall,
    _write_json,
    check_run_config,
    collect_rows,
    fit,
)
from synthloop.collapse.metrics import summarise
from synthloop.collapse.tasks import TASKS, ArithmeticTask, Split
from synthloop.curate.policies import DataPolicy, mix, parse_policies, select
from synthloop.models.lm import TinyLM
from synthloop.models.params import GenParams, TrainParams
from synthloop.models.registry import is_from_scratch
from synthloop.models.tokenizer import BPETokenizer
from synthloop.progress import Advance, NullProgress, Progress
from synthloop.records.io import read_parquet, read_parquet_file, write_parquet
from synthloop.records.lineage import lineage_summary
from synthloop.records.schema import Generator, text_records
from synthloop.seeds import derive_seed31

#: The literature's comparison: no filter, all data kept, a perfect and an imperfect verifier,
#: and the model's own confidence. Each filter draws twice the candidates it keeps.
TASK_POLICIES = ("replace,accumulate,filter:verified:0.5,filter:verified@0.5:0.5,"
                 "filter:self-confidence:0.5")

#: A byte-level tokenizer with no merges: one token per character, so a digit is a token.
_BYTE_VOCAB = 257


class TaskCollapseConfig(RunConfig):
    """Everything that defines a verified-data run.

    Attributes:
        out: run folder (created; reused to resume).
        task: the checkable task (``arithmetic``: ``digits``-digit addition).
        train_problems, test_problems: real train problems (answered correctly) and
            held-out test problems; the rest of the task's problems are the pool the models
            answer.
        model: a from-scratch size (``tiny``, ``small``, ``gpt-30m``, ``gpt-125m``).
        generations: model generations, counting generation 0 (trained on real data).
        policies: comma-separated policy specs (:mod:`synthloop.curate.policies`).
        seeds: number of seeds (0 .. seeds-1): initialisation, data order, which pool problems
            each generation answers, sampling and mixing; never the split (``split_seed``).
        train: training parameters (``seq_len`` is set to the record length).
        decoding: how generated answers are sampled (test accuracy is always greedy); answers
            are restricted to digits, ``digits + 1`` of them.
    """

    out: str
    task: Literal["arithmetic"] = "arithmetic"
    digits: int = Field(2, ge=1, le=4)
    train_problems: int = Field(1000, ge=10)
    test_problems: int = Field(500, ge=10)
    model: str = "tiny"
    generations: int = Field(5, ge=1)
    policies: str = TASK_POLICIES
    seeds: int = Field(2, ge=1)
    device: str = "cpu"
    split_seed: int = 0
    train: TrainParams = TrainParams(epochs=60.0, batch_size=64, lr=3e-3)
    decoding: GenParams = GenParams(temperature=1.5, batch_size=1024)
    keep_models: bool = False

    GROWABLE: ClassVar[tuple[str, ...]] = RunConfig.GROWABLE

    @model_validator(mode="after")
    def _consistent(self) -> TaskCollapseConfig:
        if not is_from_scratch(self.model):
            raise ValueError(f"model '{self.model}': the verified-data lab trains from-scratch "
                             f"models only (tiny, small, gpt-30m, gpt-125m)")
        policies = parse_policies(self.policies)
        task = self.make_task()
        need = max(p.n_candidates(self.train_problems) for p in policies)
        pool = task.n_problems - self.train_problems - self.test_problems
        if need > pool:
            raise ValueError(f"each generation answers {need:,} pool problems, but the "
                             f"{self.digits}-digit task leaves only {max(pool, 0):,} beside "
                             f"{self.train_problems:,} train and {self.test_problems:,} test "
                             f"problems")
        return self

    def make_task(self) -> ArithmeticTask:
        return TASKS[self.task](self.digits)


@dataclass
class _Ctx:
    cfg: TaskCollapseConfig
    out: Path
    task: ArithmeticTask
    split: Split
    base: TinyLM
    real_train: pa.Table
    real_test: pa.Table
    progress: Progress
    params: TrainParams
    digit_ids: torch.Tensor


def _prepare(cfg: TaskCollapseConfig, progress: Progress) -> _Ctx:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_run_config(cfg, out)
    task = cfg.make_task()
    split = task.split(cfg.train_problems, cfg.test_problems, cfg.split_seed)
    train_texts = [task.record(a, b) for a, b in split.train]
    test_texts = [task.record(a, b) for a, b in split.test]
    tok_path = out / "tokenizer.json"
    if tok_path.exists():
        tok = BPETokenizer.load(tok_path)
    else:
        tok = BPETokenizer.train(train_texts, vocab_size=_BYTE_VOCAB)
        tok.save(tok_path)
    base = TinyLM.create(tok, size=cfg.model, max_len=task.record_chars + 16, seed=0,
                         device=cfg.device)
    real_train, real_test = _real_tables(out, train_texts, test_texts)
    digits = [i for i in range(tok.vocab_size) if tok.decode([[i]])[0] in "0123456789"
              and len(tok.decode([[i]])[0]) == 1]
    return _Ctx(cfg=cfg, out=out, task=task, split=split, base=base, real_train=real_train,
                real_test=real_test, progress=progress,
                params=cfg.train.replace(seq_len=task.record_chars),
                digit_ids=torch.tensor(digits, dtype=torch.long))


def _real_tables(out: Path, train: list[str], test: list[str]) -> tuple[pa.Table, pa.Table]:
    paths = out / "data" / "real_train.parquet", out / "data" / "real_test.parquet"
    if all(p.exists() for p in paths):
        return read_parquet(paths[0]), read_parquet(paths[1])
    tables = text_records(train), text_records(test)
    for t, p in zip(tables, paths, strict=True):
        write_parquet(t, p)
    return tables


def _digits_only(ids: torch.Tensor):
    def processor(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        masked = torch.full_like(scores, -math.inf)
        masked[:, ids] = scores[:, ids]
        return masked
    return processor


def answer(ctx: _Ctx, model: TinyLM, problems: Sequence[tuple[int, int]], *, seed: int,
           greedy: bool, progress: Advance | None = None) -> list[str]:
    """The model's answers to ``problems`` (digits only, ``task.answer_chars`` of them)."""
    prompts = model.encode([ctx.task.prompt(a, b) for a, b in problems])
    params = ctx.cfg.decoding.replace(max_new_tokens=ctx.task.answer_chars, greedy=greedy,
                                      num_beams=1)
    new = model.generate([[model.bos_id] + p for p in prompts], params, seed=seed,
                         logits_processors=[_digits_only(ctx.digit_ids.to(model.device))],
                         progress=progress)
    return model.decode(new)


def _evaluate(ctx: _Ctx, model: TinyLM) -> dict:
    """Held-out task accuracy (greedy) and perplexity of the real test records."""
    answers = answer(ctx, model, ctx.split.test, seed=0, greedy=True)
    nll, n = model.nll(model.encode(ctx.real_test.column("text").to_pylist()))
    mean = float(nll.sum() / max(1, n.sum()))
    return {"task_accuracy": ctx.task.accuracy(ctx.split.test, answers), "test_nll": mean,
            "test_ppl": float(math.exp(mean))}


def _candidates(ctx: _Ctx, model: TinyLM, scorer: TinyLM, n_cand: int, seed: int, k: int,
                label: str, run_id: str) -> pa.Table:
    """``n_cand`` answered pool problems from the model of generation ``k`` — the same
    problems for every policy of this seed and generation."""
    rng = np.random.default_rng(derive_seed31(seed, k, "problems"))
    rows = rng.choice(len(ctx.split.pool), n_cand, replace=False)
    problems = [ctx.split.pool[i] for i in rows]
    sample_seed = derive_seed31(seed, k, "sample")
    ctx.progress.stage(f"{label}: answer", n_cand)
    answers = answer(ctx, model, problems, seed=sample_seed, greedy=False,
                     progress=ctx.progress.advance)
    texts = [ctx.task.record(a, b, ans) for (a, b), ans in zip(problems, answers, strict=True)]
    full = model.encode(texts)
    nll_full, _ = model.nll(full)
    nll_prompt, _ = model.nll([ids[:-ctx.task.answer_chars] for ids in full])
    confidence = -(nll_full - nll_prompt) / ctx.task.answer_chars
    gen0_nll, count = scorer.nll(full)
    params = ctx.cfg.decoding.replace(max_new_tokens=ctx.task.answer_chars)
    generator = Generator(model=f"{ctx.cfg.model}#gen{k}", weights_sha256=model.weights_sha256(),
                          decoding=params.to_dict(), seed=sample_seed)
    return text_records(texts, origin="synthetic", generation=k + 1, generator=generator,
                        run_id=run_id, extra={
                            "verified": [ctx.task.verify(t) for t in texts],
                            "confidence": confidence.tolist(),
                            "gen0_ppl": np.exp(gen0_nll / np.maximum(count, 1)).tolist()})


def _share_correct(ctx: _Ctx, table: pa.Table) -> float:
    texts = table.column("text").to_pylist()
    return float(np.mean([ctx.task.verify(t) for t in texts])) if texts else float("nan")


def _data_row(ctx: _Ctx, cands: pa.Table, kept: pa.Table, rejected: pa.Table | None,
              n: int) -> dict:
    row = {"sample_accuracy": _share_correct(ctx, cands.slice(0, n)),
           "kept_accuracy": _share_correct(ctx, kept)}
    if rejected is not None:
        row["filter"] = {"kept": kept.num_rows, "dropped": rejected.num_rows}
    return row


def _gen0(ctx: _Ctx, seed: int, policies: list[DataPolicy]) -> tuple[TinyLM, dict]:
    """Train (or load) the seed's generation-0 model and its candidate answers."""
    d = ctx.out / "runs" / "_gen0" / f"seed{seed}"
    n = ctx.real_train.num_rows
    n_cand = max(p.n_candidates(n) for p in policies)
    if (d / "metrics.json").exists() and (d / "model").exists():
        model = TinyLM.load(d / "model", device=ctx.base.device)
        if read_parquet(d / "candidates.parquet").num_rows >= n_cand:
            return model, json.loads((d / "metrics.json").read_text())
        row = json.loads((d / "train_info.json").read_text())
    else:
        model, row = fit(ctx.base, ctx.real_train, ctx.params, seed, f"seed {seed} gen 0",
                         ctx.progress)
        row.update(_evaluate(ctx, model), weights_sha256=model.weights_sha256(),
                   train=lineage_summary(ctx.real_train), train_correct_share=1.0)
        model.save(d / "model")
        _write_json(row, d / "train_info.json")
    cands = _candidates(ctx, model, model, n_cand, seed, 0, f"seed {seed} gen 0",
                        f"collapse-verified-{ctx.cfg.fingerprint()}/seed{seed}/gen0")
    write_parquet(cands, d / "candidates.parquet")
    row["sample_accuracy"] = _share_correct(ctx, cands.slice(0, n))
    _write_json(row, d / "metrics.json")
    return model, row


def _policy_gen0(ctx: _Ctx, policy: DataPolicy, seed: int, row0: dict) -> None:
    d = ctx.out / "runs" / policy.slug / f"seed{seed}" / "gen0"
    if (d / "metrics.json").exists():
        return
    n = ctx.real_train.num_rows
    cands = read_parquet(ctx.out / "runs" / "_gen0" / f"seed{seed}" / "candidates.parquet")
    kept, rejected = select(policy, cands, n)
    write_parquet(kept, d / "synthetic.parquet")
    if rejected is not None:
        write_parquet(rejected, d / "rejected.parquet")
    _write_json({"policy": policy.spec, "seed": seed, "generation": 0, **row0,
                 **_data_row(ctx, cands, kept, rejected, n)}, d / "metrics.json")


def _step(ctx: _Ctx, policy: DataPolicy, seed: int, k: int, scorer: TinyLM) -> None:
    """Generation ``k`` ≥ 1 of one policy and seed."""
    base_dir = ctx.out / "runs" / policy.slug / f"seed{seed}"
    d = base_dir / f"gen{k}"
    if (d / "metrics.json").exists():
        return
    n = ctx.real_train.num_rows
    synthetic = {j: read_parquet_file(base_dir / f"gen{j - 1}" / "synthetic.parquet")
                 for j in range(1, k + 1)}
    if synthetic[k].num_rows == 0:  # a filter kept nothing: this chain has no data left
        write_parquet(synthetic[k], d / "synthetic.parquet")
        _write_json({"policy": policy.spec, "seed": seed, "generation": k,
                     "stopped": f"no data: {policy.spec} kept no answer of generation "
                                f"{k - 1}"}, d / "metrics.json")
        return
    train_table = mix(policy, ctx.real_train, synthetic, k,
                      np.random.default_rng(derive_seed31(seed, policy.spec, k, "mix")))
    write_parquet(train_table, d / "train.parquet")
    model, row = fit(ctx.base, train_table, ctx.params, seed, f"{policy.spec}/gen{k}",
                     ctx.progress)
    row = {"policy": policy.spec, "seed": seed, "generation": k, **_evaluate(ctx, model),
           **row, "weights_sha256": model.weights_sha256(),
           "train": lineage_summary(train_table),
           "train_correct_share": _share_correct(ctx, train_table)}
    run_id = f"collapse-verified-{ctx.cfg.fingerprint()}/seed{seed}/{policy.slug}/gen{k}"
    cands = _candidates(ctx, model, scorer, policy.n_candidates(n), seed, k,
                        f"{policy.spec}/gen{k}", run_id)
    kept, rejected = select(policy, cands, n)
    row.update(_data_row(ctx, cands, kept, rejected, n))
    write_parquet(kept, d / "synthetic.parquet")
    if rejected is not None:
        write_parquet(rejected, d / "rejected.parquet")
    if ctx.cfg.keep_models:
        model.save(d / "model")
    _write_json(row, d / "metrics.json")


@dataclass
class TaskCollapseResult:
    """What a verified-data run produced: the tidy rows, the paths, and the findings."""

    out: Path
    runs: list[dict]
    findings: list[dict]
    results_path: Path
    report_path: Path | None

    def summary_rows(self) -> list[dict]:
        """Per policy: task accuracy at generation 0 and at the last measured one (mean,
        seed spread)."""
        return summarise(measured(self.runs), "task_accuracy")


def measured(runs: list[dict]) -> list[dict]:
    """The rows of generations that trained a model (not those of a chain whose filter kept
    no data: they hold ``stopped``)."""
    return [r for r in runs if "stopped" not in r]


def run_task_collapse(cfg: TaskCollapseConfig, progress: Progress | None = None,
                      report: bool = True) -> TaskCollapseResult:
    """Run (or resume) the verified-data experiment described by ``cfg``.

    Writes under ``cfg.out``: ``config.json``, ``tokenizer.json``, ``data/`` (real train and
    test records), ``runs/<policy>/seed<s>/gen<k>/`` (``train.parquet`` mix,
    ``synthetic.parquet``, ``rejected.parquet`` for filters — each dropped answer with its
    reason —, ``metrics.json``), ``results.json`` and ``report.html``.
    """
    progress = progress or NullProgress()
    policies = parse_policies(cfg.policies)
    t0 = time.perf_counter()
    out = Path(cfg.out)
    fresh = not out.exists()
    try:
        ctx = _prepare(cfg, progress)
    except BaseException:
        if fresh:
            shutil.rmtree(out, ignore_errors=True)
        raise
    task = ctx.task
    progress.log(f"task: {task.digits}-digit addition; {len(ctx.split.train)} train / "
                 f"{len(ctx.split.test)} test problems, {len(ctx.split.pool):,} in the pool; "
                 f"model {cfg.model} ({ctx.base.num_params():,} parameters)")
    for seed in range(cfg.seeds):
        scorer, row0 = _gen0(ctx, seed, policies)
        _overall(progress)
        for policy in policies:
            _policy_gen0(ctx, policy, seed, row0)
        for k in range(1, cfg.generations):
            for policy in policies:
                _step(ctx, policy, seed, k, scorer)
                _overall(progress)
    runs = collect_rows(ctx.out, policies, cfg.seeds, cfg.generations)
    findings = assess_task(runs)
    results = {
        "synthloop_version": __version__,
        "config": cfg.to_dict(),
        "task": {"name": cfg.task, "digits": task.digits,
                 "example": task.record(*ctx.split.train[0]), "problems": task.n_problems,
                 "pool": len(ctx.split.pool)},
        "model": {"spec": cfg.model, "parameters": ctx.base.num_params(),
                  "device": str(ctx.base.device)},
        "data": {"train_records": ctx.real_train.num_rows,
                 "test_records": ctx.real_test.num_rows},
        "runs": runs,
        "findings": findings,
        "wall_seconds": time.perf_counter() - t0,
    }
    results_path = ctx.out / "results.json"
    _write_json(results, results_path)
    report_path = None
    if report:
        from synthloop.collapse.report import write_task_report

        report_path = write_task_report(results, ctx.out / "report.html")
    return TaskCollapseResult(ctx.out, runs, findings, results_path, report_path)


def task_units(cfg: TaskCollapseConfig) -> int:
    """Models a run trains, for an overall progress bar."""
    return cfg.seeds * (1 + (cfg.generations - 1) * len(parse_policies(cfg.policies)))


def assess_task(runs: list[dict]) -> list[dict]:
    """Check the run against what the literature expects, one finding per expectation. A
    change counts only beyond the seed spread (max − min at generation 0 plus at the last)."""
    by = {s["policy"]: s for s in summarise(measured(runs), "task_accuracy")} if runs else {}
    findings: list[dict] = []

    def add(name: str, holds: bool | None, detail: str) -> None:
        findings.append({"expectation": name, "holds": holds, "detail": detail})

    for policy in dict.fromkeys(r["policy"] for r in runs if "stopped" in r):
        first = min((r for r in runs if r["policy"] == policy and "stopped" in r),
                    key=lambda r: r["generation"])
        add(f"{policy} keeps enough data to go on", False,
            f"seed {first['seed']} generation {first['generation']}: {first['stopped']}")

    def desc(s: dict) -> str:
        return (f"task accuracy {s['task_accuracy_gen0']:.3f} → {s['task_accuracy_last']:.3f} "
                f"(change {s['task_accuracy_change']:+.3f}, seed spread "
                f"{s['task_accuracy_spread']:.3f})")

    done = {k: v for k, v in by.items() if v["last_generation"] > 0}
    rep, acc = done.get("replace"), done.get("accumulate")
    if rep:
        add("replace degrades task accuracy beyond the seed spread",
            rep["task_accuracy_change"] < -rep["task_accuracy_spread"], desc(rep))
    if acc:
        add("accumulate does not degrade task accuracy",
            acc["task_accuracy_change"] >= -acc["task_accuracy_spread"], desc(acc))
    exact = {k: v for k, v in done.items() if k.startswith("filter:verified:")}
    noisy = {k: v for k, v in done.items() if k.startswith("filter:verified@")}
    for name, v in exact.items():
        add(f"{name} holds or improves task accuracy",
            v["task_accuracy_change"] >= -v["task_accuracy_spread"], desc(v))
        if rep:
            add(f"{name} ends above replace",
                v["task_accuracy_last"] > rep["task_accuracy_last"],
                f"{v['task_accuracy_last']:.3f} vs replace {rep['task_accuracy_last']:.3f}")
    best = max(exact.values(), key=lambda v: v["task_accuracy_last"], default=None)
    for name, v in noisy.items():
        if best is not None:
            add(f"{name} (an imperfect verifier) gains no more than the perfect verifier",
                v["task_accuracy_last"] <= best["task_accuracy_last"]
                + best["task_accuracy_spread"],
                f"{v['task_accuracy_last']:.3f} vs {best['policy']} "
                f"{best['task_accuracy_last']:.3f}")
    for name, v in done.items():
        if name.startswith("filter:") and name not in exact and name not in noisy and rep:
            add(f"{name} compared with replace", None,
                f"{desc(v)}; replace ends at {rep['task_accuracy_last']:.3f}")
    return findings
