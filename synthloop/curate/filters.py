"""Heuristic and score filters, the perplexity scorer, deduplication and diversity selection."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from synthloop.curate.policies import depth_mask, mix_dataset, parse_policy
from synthloop.errors import ConfigError, InputError
from synthloop.measures.minhash import earlier_duplicates, signatures
from synthloop.measures.ngrams import Vocabulary, tokenize
from synthloop.measures.textchecks import GOPHER_RULES, quality_flags
from synthloop.pipeline.step import (
    Filter,
    Scorer,
    Step,
    StepOutput,
    check_real_path,
    register,
    split,
    text_column,
)
from synthloop.records.io import read_records
from synthloop.records.schema import concat_records


@register
class QualityFilter(Filter):
    """Gopher quality rules (Rae et al. 2021) on ``field``; a record breaking any of ``rules``
    (default: all) is dropped, the reason naming the rules it broke."""

    kind = "quality"

    field: str = "text"
    min_words: int = Field(5, ge=0)
    rules: list[str] | None = None

    @model_validator(mode="after")
    def _known(self):
        for r in self.rules or []:
            if r not in GOPHER_RULES:
                raise ValueError(f"unknown rule '{r}' (known: {', '.join(GOPHER_RULES)})")
        return self

    def reasons(self, table, ctx):
        rules = self.rules or list(GOPHER_RULES)
        out = []
        for text in text_column(table, self.field, self.label):
            flags = quality_flags(text, min_words=self.min_words)
            broken = [r for r in rules if flags[r]]
            out.append(f"quality: {', '.join(broken)}" if broken else None)
        return out


@register
class Threshold(Filter):
    """Keep records whose ``column`` lies in [``min``, ``max``]; a missing score is dropped
    unless ``keep_missing``. Scores are written by scorer steps (``perplexity``, ``judge``)."""

    kind = "threshold"

    column: str
    min: float | None = None
    max: float | None = None
    keep_missing: bool = False

    @model_validator(mode="after")
    def _bounds(self):
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self

    def reasons(self, table, ctx):
        if self.column not in table.column_names:
            raise InputError(f"step {self.label}: records have no column '{self.column}' "
                             f"(a scorer step must come first)")
        out = []
        for v in table.column(self.column).to_pylist():
            if v is None or (isinstance(v, float) and np.isnan(v)):
                out.append(None if self.keep_missing else f"{self.column} missing")
            elif self.min is not None and v < self.min:
                out.append(f"{self.column} {v:.4g} < min {self.min:g}")
            elif self.max is not None and v > self.max:
                out.append(f"{self.column} {v:.4g} > max {self.max:g}")
            else:
                out.append(None)
        return out


@register
class MaxDepth(Filter):
    """Drop records more than ``k`` model hops from real data (the ``max-depth:k`` policy)."""

    kind = "max-depth"

    k: int = Field(ge=0)

    def reasons(self, table, ctx):
        keep = depth_mask(table, self.k)
        gens = table.column("generation").to_pylist()
        return [None if ok else f"generation {g} > max depth {self.k}"
                for ok, g in zip(keep, gens, strict=True)]


@register
class Perplexity(Scorer):
    """Per-record perplexity of ``field`` under a reference model, into ``column``
    (exp of the mean NLL per token; text truncated to the model's context)."""

    kind = "perplexity"

    model: str = "smollm2-135m"
    field: str = "text"
    column: str = "ppl"
    device: str = "cpu"
    batch_size: int = Field(16, ge=1)

    def scores(self, table, ctx):
        from synthloop.generate.text import shared_lm

        lm = shared_lm(self.model, self.device, ctx)
        texts = text_column(table, self.field, self.label)
        seqs = [[lm.bos_id] + ids[:lm.max_positions - 1] for ids in lm.encode(texts)]
        ctx.progress.stage(f"{self.label}: scoring", len(seqs))
        nll, n = lm.nll(seqs, batch_size=self.batch_size, progress=ctx.progress.advance)
        ppl = np.exp(nll / np.maximum(n, 1))
        return {self.column: pa.array(np.where(n > 0, ppl, np.nan), pa.float64())}


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@register
class ExactDedup(Step):
    """Drop records whose ``field`` equals an earlier record's after whitespace and case
    normalisation (the first occurrence is kept)."""

    kind = "exact-dedup"
    scope = "global"

    field: str = "text"

    def apply(self, table, ctx):
        import hashlib

        seen: dict[bytes, str] = {}
        ids = table.column("id").to_pylist()
        reasons: list[str | None] = []
        for rid, text in zip(ids, text_column(table, self.field, self.label), strict=True):
            key = hashlib.blake2b(_normalised(text).encode(), digest_size=16).digest()
            if key in seen:
                reasons.append(f"exact duplicate of {seen[key]}")
            else:
                seen[key] = rid
                reasons.append(None)
        return split(table, reasons)


@register
class MinHashDedup(Step):
    """Near-duplicate removal: MinHash over word ``shingle``-grams with LSH banding; a
    record whose estimated Jaccard similarity to an earlier record is ≥ ``threshold`` is
    dropped, the reason naming that record."""

    kind = "minhash-dedup"
    scope = "global"

    field: str = "text"
    threshold: float = Field(0.8, gt=0, le=1)
    num_perm: int = Field(128, ge=8, le=1024)
    bands: int = Field(16, ge=1)
    shingle: int = Field(5, ge=1, le=20)

    @model_validator(mode="after")
    def _bands(self):
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm {self.num_perm} is not a multiple of bands {self.bands}")
        return self

    def apply(self, table, ctx):
        texts = text_column(table, self.field, self.label)
        corpus = tokenize(texts, Vocabulary())
        sig = signatures(corpus, shingle=self.shingle, num_perm=self.num_perm, seed=ctx.seed)
        first, sim = earlier_duplicates(sig, threshold=self.threshold, bands=self.bands)
        ids = table.column("id").to_pylist()
        return split(table, [None if f < 0 else
                             f"near-duplicate of {ids[f]} (Jaccard ≈ {s:.2f})"
                             for f, s in zip(first, sim, strict=True)])


@register
class DiversitySelect(Step):
    """Embedding-diversity selection: keep ``n`` records (or a ``fraction``) chosen by greedy
    farthest-point selection on MiniLM embeddings of ``field`` (cosine distance), starting
    from a seeded record; each dropped record names its most similar selected record."""

    kind = "diversity"
    scope = "global"

    field: str = "text"
    n: int | None = Field(None, ge=1)
    fraction: float | None = Field(None, gt=0, le=1)
    device: str = "cpu"

    @model_validator(mode="after")
    def _one(self):
        if (self.n is None) == (self.fraction is None):
            raise ValueError("give exactly one of n and fraction")
        return self

    def apply(self, table, ctx):
        from synthloop.measures.embeddings import embed

        m = table.num_rows
        keep_n = min(m, self.n if self.n is not None else max(1, round(self.fraction * m)))
        if keep_n >= m:
            return StepOutput(table)
        texts = text_column(table, self.field, self.label)
        x = embed(texts, device=self.device)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        start = int(ctx.rng().integers(m))
        chosen = [start]
        best_sim = x @ x[start]
        nearest = np.zeros(m, dtype=np.int64)
        for _ in range(keep_n - 1):
            cand = np.where(np.isin(np.arange(m), chosen), np.inf, best_sim)
            j = int(np.argmin(cand))
            chosen.append(j)
            s = x @ x[j]
            closer = s > best_sim
            nearest[closer] = len(chosen) - 1
            best_sim = np.maximum(best_sim, s)
        keep = np.zeros(m, dtype=bool)
        keep[chosen] = True
        ids = table.column("id").to_pylist()
        return split(table, [None if keep[i] else
                             f"diversity: cosine {best_sim[i]:.3f} to selected record "
                             f"{ids[chosen[nearest[i]]]}" for i in range(m)])


@register
class Mix(Step):
    """Mix the synthetic records with real data under a policy (``replace``, ``accumulate``,
    ``keep-real:p`` — a set of the real set's size, share p real —, ``real-share:p`` — every
    synthetic record plus real ones for share p —, ``max-depth:k``; the collapse lab's
    implementation, same meaning). ``real`` defaults to the pipeline input; records already in
    the stream that are real are counted as real."""

    kind = "mix"
    scope = "global"

    policy: str
    real: str | None = None

    def preflight(self, base_dir):
        check_real_path(self.real, base_dir, self.label)

    @model_validator(mode="after")
    def _policy(self):
        p = parse_policy(self.policy)
        if p.kind not in ("replace", "accumulate", "keep-real", "real-share", "max-depth"):
            raise ValueError(f"policy '{self.policy}' is a collapse-lab policy; use replace, "
                             f"accumulate, keep-real:P, real-share:P or max-depth:K")
        return self

    def apply(self, table, ctx):
        src = ctx.path(self.real) if self.real else ctx.source
        if src is None:
            raise ConfigError(f"step {self.label}: no real data (set 'real')")
        real = read_records(src)
        real = real.filter(pc.equal(real.column("origin"), "real"))
        in_stream_real = pc.equal(table.column("origin"), "real")
        stream_real = table.filter(in_stream_real)
        synthetic = table.filter(pc.invert(in_stream_real))
        if stream_real.num_rows:
            # real records still in the stream are the same records as in the source: once
            seen = pa.array(stream_real.column("id").to_pylist())
            real = concat_records([stream_real,
                                   real.filter(pc.invert(pc.is_in(real.column("id"), seen)))])
        mixed, dropped, reasons = mix_dataset(parse_policy(self.policy), real, synthetic,
                                              ctx.rng())
        return StepOutput(mixed, dropped if dropped.num_rows else None,
                          reasons if dropped.num_rows else [])
