"""Text generator steps: prompted generation over seed records, taxonomy-guided
instruction/response generation (InstructLab style), and self-instruct expansion.

Every generated record carries provenance: the model and its weights hash, the decoding
parameters, the seed, the prompt template's hash, its parents (the seed records it was made
from) and its generation (parent's generation + 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jinja2
import jinja2.sandbox
import numpy as np
import pyarrow as pa
from pydantic import Field

from synthloop.compliance.watermark import GreenList, WatermarkSpec, load_key, watermark_marker
from synthloop.configs import Config
from synthloop.errors import ConfigError, InputError
from synthloop.generate.backends import (
    PIPELINE_SAMPLING,
    BackendSpec,
    Completion,
    template_sha256,
)
from synthloop.measures.ngrams import words
from synthloop.models.params import GenParams
from synthloop.pipeline.step import Step, StepContext, StepOutput, register
from synthloop.records.schema import Generator, content, record_id, synthetic_records

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                                    keep_trailing_newline=False)


def compile_template(source: str, step: str) -> jinja2.Template:
    """A Jinja2 template (sandboxed; an unknown field is an error, not an empty string)."""
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"step {step}: template line {e.lineno}: {e.message}") from None


def render_all(template: jinja2.Template, rows: Sequence[dict], step: str) -> list[str]:
    """Render ``template`` once per row; a missing field names the row and the field."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(template.render(**row).strip())
        except jinja2.UndefinedError as e:
            raise InputError(f"step {step}: row {i}: template needs a field the record lacks "
                             f"({e.message})") from None
    return out


def _backend(spec: BackendSpec, ctx: StepContext):
    if spec.base_url:
        return ctx.resources.get(spec.cache_key(), spec.build)
    from synthloop.generate.backends import LocalBackend

    # one loaded model per process, shared with scorers (perplexity) naming the same model
    lm = shared_lm(spec.model, spec.device, ctx)
    return ctx.resources.get(spec.cache_key(), lambda: LocalBackend(lm, dtype=spec.dtype))


def shared_lm(model: str, device: str, ctx: StepContext):
    """A local model loaded once per worker process."""
    from synthloop.models.registry import load_lm

    return ctx.resources.get(("lm", model, device), lambda: load_lm(model, device=device))


def complete_prompts(spec: BackendSpec, prompts: list[str], sampling: GenParams,
                     ctx: StepContext, chat: bool, what: str, watermark=None) -> list[Completion]:
    if not prompts:
        return []
    ctx.progress.stage(what, len(prompts))
    extra = {"watermark": watermark} if watermark is not None else {}
    return _backend(spec, ctx).complete(prompts, sampling, seed=ctx.seed, chat=chat,
                                        progress=ctx.progress.advance, **extra)


class WatermarkOptions(Config):
    """Mark generated text with the green-list watermark (key from
    ``SYNTHLOOP_WATERMARK_KEY`` or ``key_file``; only its id is recorded)."""

    gamma: float = Field(0.25, gt=0, lt=1)
    delta: float = Field(2.0, gt=0)
    context_width: int = Field(4, ge=1, le=16)
    key_file: str | None = None

    def green_list(self, spec: BackendSpec, ctx: StepContext):
        if spec.base_url:
            raise ConfigError("watermarking needs a local model: a remote server decodes "
                              "without our logits processor")
        backend = _backend(spec, ctx)
        key = load_key(ctx.path(self.key_file) if self.key_file else None)
        return GreenList(key, backend.vocab_size(),
                         WatermarkSpec(gamma=self.gamma, delta=self.delta,
                                       context_width=self.context_width))


def _generator(spec: BackendSpec, sampling: GenParams, ctx: StepContext, template: str,
               chat: bool) -> Generator:
    model, sha = _backend(spec, ctx).identity()
    decoding = {**sampling.model_dump(exclude={"batch_size"}), "chat": chat}
    if spec.dtype != "auto" and not spec.base_url:
        decoding["dtype"] = spec.dtype  # changes the tokens, so provenance says it
    return Generator(model, sha, decoding, ctx.seed, template_sha256(template))


def _failed(completion: Completion, min_chars: int) -> str | None:
    if completion.error:
        return f"generation failed: {completion.error}"
    if len(completion.text) < min_chars:
        return f"empty generation ({len(completion.text)} characters < {min_chars})"
    return None


def _records(content: dict[str, list], reasons: list[str | None], parents: list[list[str]],
             generations: list[int], gen: Generator, ctx: StepContext) -> StepOutput:
    table = synthetic_records(pa.table(content), generator=gen, parents=parents,
                              generations=generations, run_id=ctx.run_id,
                              created_at=ctx.created_at)
    drop = np.array([r is not None for r in reasons], dtype=bool)
    dropped = table.filter(pa.array(drop)) if drop.any() else None
    return StepOutput(table.filter(pa.array(~drop)), dropped,
                      [r for r in reasons if r is not None])


def content_rows(table: pa.Table) -> list[dict]:
    """Each record's content fields as a dict (what templates see)."""
    return content(table).to_pylist()


@register
class Generate(Step):
    """Prompted generation: render ``template`` (Jinja2 over the seed record's fields) and
    write ``n_per_record`` completions per seed record into ``output_field``.

    The rendered prompt is kept in a ``prompt`` column; fields named in ``keep_fields`` are
    copied from the seed record.
    """

    kind = "generate"

    backend: BackendSpec = BackendSpec()
    template: str = "Continue this text.\n\n{{ text }}"
    sampling: GenParams = PIPELINE_SAMPLING
    n_per_record: int = Field(1, ge=1, le=1000)
    chat: bool = True
    output_field: str = "text"
    keep_fields: list[str] = []
    min_chars: int = Field(1, ge=0)
    watermark: WatermarkOptions | None = None

    def preflight(self, base_dir):
        compile_template(self.template, self.label)
        try:
            self.backend.check()
        except ConfigError as e:
            raise ConfigError(f"step {self.label}: backend: {e}") from None
        if self.watermark is not None:
            if self.backend.base_url:
                raise ConfigError(f"step {self.label}: watermarking needs a local model: a "
                                  f"remote server decodes without our logits processor")
            kf = self.watermark.key_file
            load_key(None if kf is None else (Path(kf) if Path(kf).is_absolute()
                                              else Path(base_dir) / kf))

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        tpl = compile_template(self.template, self.label)
        green = self.watermark.green_list(self.backend, ctx) if self.watermark else None
        rows = content_rows(table)
        prompts = render_all(tpl, rows, self.label)
        ids = table.column("id").to_pylist()
        gens = table.column("generation").to_pylist()
        order = [i for i in range(len(rows)) for _ in range(self.n_per_record)]
        done = complete_prompts(self.backend, [prompts[i] for i in order], self.sampling, ctx,
                         self.chat, f"{self.label}: generating", watermark=green)
        content: dict[str, list] = {self.output_field: [c.text for c in done],
                                    "prompt": [prompts[i] for i in order]}
        if green is not None:
            content["watermark"] = [watermark_marker(green, self.backend.model)] * len(done)
        for f in self.keep_fields:
            if f not in table.column_names:
                raise InputError(f"step {self.label}: keep_fields names '{f}', which records "
                                 f"lack")
            content[f] = [rows[i][f] for i in order]
        return _records(content, [_failed(c, self.min_chars) for c in done],
                        [[ids[i]] for i in order], [gens[i] + 1 for i in order],
                        _generator(self.backend, self.sampling, ctx, self.template, self.chat),
                        ctx)


QUESTION_TEMPLATE = """You write new questions for this task: {{ task_description }}

Here are examples of questions and answers:
{% for ex in examples %}
Question: {{ ex.question }}
Answer: {{ ex.answer }}
{% endfor %}
Write one new question for the same task, different from the examples. Reply with the question \
only."""

ANSWER_TEMPLATE = """{% if context %}Use this document to answer.

{{ context }}

{% endif %}{{ question }}"""


@register
class TaxonomyGenerate(Step):
    """Taxonomy-guided generation (InstructLab style): for each leaf record (see
    :func:`synthloop.records.taxonomy.read_taxonomy`), write ``n_per_leaf`` new questions
    from ``shots`` sampled seed examples, then answer each (grounded in the leaf's document
    context when it has one). Output fields: ``instruction``, ``response``, ``text`` (the two
    joined), ``taxonomy_path``.
    """

    kind = "taxonomy-generate"

    backend: BackendSpec = BackendSpec()
    question_template: str = QUESTION_TEMPLATE
    answer_template: str = ANSWER_TEMPLATE
    sampling: GenParams = PIPELINE_SAMPLING
    n_per_leaf: int = Field(4, ge=1, le=100000)
    shots: int = Field(3, ge=1, le=20)
    min_chars: int = Field(8, ge=0)

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        for col in ("taxonomy_path", "seed_examples"):
            if col not in table.column_names:
                raise InputError(f"step {self.label}: records have no '{col}' field; use a "
                                 f"taxonomy folder as the pipeline input")
        q_tpl = compile_template(self.question_template, self.label)
        a_tpl = compile_template(self.answer_template, self.label)
        rng = ctx.rng()
        leaves = content_rows(table)
        ids = table.column("id").to_pylist()
        q_rows, owner = [], []
        for i, leaf in enumerate(leaves):
            examples = json.loads(leaf["seed_examples"])
            for _ in range(self.n_per_leaf):
                pick = rng.choice(len(examples), min(self.shots, len(examples)), replace=False)
                q_rows.append({"task_description": leaf.get("text", ""),
                               "examples": [examples[j] for j in sorted(pick)]})
                owner.append(i)
        questions = complete_prompts(self.backend, render_all(q_tpl, q_rows, self.label),
                              self.sampling, ctx, True, f"{self.label}: questions")
        # small models often write the answer too: keep the question only
        questions = [Completion(c.text.removeprefix("Question:").split("\nAnswer:")[0].strip(),
                                c.finish_reason, c.error) for c in questions]
        contexts = [json.loads(leaves[i].get("contexts") or "[]") for i in owner]
        a_rows = [{"question": q.text,
                   "context": (ctx_list[int(rng.integers(len(ctx_list)))] if ctx_list else "")}
                  for q, ctx_list in zip(questions, contexts, strict=True)]
        answers = complete_prompts(self.backend, render_all(a_tpl, a_rows, self.label),
                            self.sampling, ctx, True, f"{self.label}: answers")
        reasons = [_failed(q, self.min_chars) or _failed(a, self.min_chars)
                   for q, a in zip(questions, answers, strict=True)]
        content = {"text": [f"{q.text}\n\n{a.text}" for q, a in zip(questions, answers,
                                                                      strict=True)],
                   "instruction": [q.text for q in questions],
                   "response": [a.text for a in answers],
                   "context": [r["context"] for r in a_rows],
                   "taxonomy_path": [leaves[i]["taxonomy_path"] for i in owner]}
        tpl_text = self.question_template + "\x00" + self.answer_template
        return _records(content, reasons, [[ids[i]] for i in owner],
                        [1] * len(owner),
                        _generator(self.backend, self.sampling, ctx, tpl_text, True), ctx)


INSTRUCTION_TEMPLATE = """Come up with a new task instruction, different from these:
{% for ex in examples %}
{{ loop.index }}. {{ ex }}{% endfor %}

Reply with the new instruction only."""


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 of two word sequences (longest common subsequence), in [0, 1]."""
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    return 2 * lcs / (len(a) + len(b))


def most_similar(words: list[str], pool: list[list[str]], threshold: float) -> tuple[int, float]:
    """Index and ROUGE-L of the first pool entry at or above ``threshold`` (−1, best below)."""
    best = 0.0
    bag = set(words)
    for k, other in enumerate(pool):
        # F1 ≤ 2·|shared words| / (|a| + |b|): skip pairs that cannot reach the threshold
        shared = sum(min(words.count(w), other.count(w)) for w in bag & set(other))
        if 2 * shared / (len(words) + len(other) or 1) < threshold:
            continue
        score = rouge_l(words, other)
        if score >= threshold:
            return k, score
        best = max(best, score)
    return -1, best


@register
class SelfInstruct(Step):
    """Self-instruct expansion (Wang et al. 2023): grow a pool of instructions from the seed
    records' ``instruction_field``, ``batch`` new ones per round from ``shots`` sampled pool
    members, rejecting any whose ROUGE-L with a pool member is ≥ ``max_rouge_l`` (kept in the
    exclusions with the similar instruction), until ``n`` are accepted or ``max_rounds``
    pass; then answer each. A global step: the pool is the whole dataset.
    """

    kind = "self-instruct"
    scope = "global"

    backend: BackendSpec = BackendSpec()
    instruction_field: str = "instruction"
    instruction_template: str = INSTRUCTION_TEMPLATE
    answer_template: str = "{{ instruction }}"
    sampling: GenParams = PIPELINE_SAMPLING
    n: int = Field(16, ge=1)
    shots: int = Field(3, ge=1, le=20)
    batch: int = Field(16, ge=1)
    max_rounds: int = Field(20, ge=1)
    max_rouge_l: float = Field(0.7, gt=0, le=1)
    min_chars: int = Field(8, ge=0)

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        if self.instruction_field not in table.column_names:
            raise InputError(f"step {self.label}: records have no field "
                             f"'{self.instruction_field}'")
        i_tpl = compile_template(self.instruction_template, self.label)
        a_tpl = compile_template(self.answer_template, self.label)
        rng = ctx.rng()
        pool = [str(v) for v in table.column(self.instruction_field).to_pylist()]
        pool_ids = table.column("id").to_pylist()
        pool_words = [words(p) for p in pool]
        pool_depth = [int(g) for g in table.column("generation").to_pylist()]
        # (instruction, parent pool indices, depth, reason or None)
        made: list[tuple[str, list[int], int, str | None]] = []
        n_ok = 0
        for rnd in range(self.max_rounds):
            if n_ok >= self.n:
                break
            picks = [sorted(int(j) for j in rng.choice(len(pool), min(self.shots, len(pool)),
                                                         replace=False))
                     for _ in range(self.batch)]
            prompts = render_all(i_tpl, [{"examples": [pool[j] for j in p]} for p in picks],
                                 self.label)
            sub = StepContext(**{**ctx.__dict__, "seed": ctx.seed + 1000 * rnd})
            for p, c in zip(picks, complete_prompts(self.backend, prompts, self.sampling, sub, True,
                                             f"{self.label}: instructions"), strict=True):
                text = c.text.strip().split("\n")[0].lstrip("0123456789. ").strip()
                depth = 1 + max(pool_depth[j] for j in p)
                why = _failed(Completion(text, c.finish_reason, c.error), self.min_chars)
                if why is None:
                    k, score = most_similar(words(text), pool_words, self.max_rouge_l)
                    if k >= 0:
                        why = f"ROUGE-L {score:.2f} ≥ {self.max_rouge_l} with '{pool[k][:60]}'"
                if why is None and n_ok >= self.n:
                    why = f"over the {self.n} instructions asked for"
                made.append((text, p, depth, why))
                if why is None:
                    n_ok += 1
                    pool.append(text)
                    pool_words.append(words(text))
                    pool_depth.append(depth)
                    pool_ids.append(f"pending:{len(made) - 1}")
        ok = [k for k, m in enumerate(made) if m[3] is None]
        answers = complete_prompts(self.backend,
                            render_all(a_tpl, [{"instruction": made[k][0]} for k in ok],
                                       self.label),
                            self.sampling, ctx, True, f"{self.label}: answers")
        response = [""] * len(made)
        reasons = [m[3] for m in made]
        for k, a in zip(ok, answers, strict=True):
            response[k] = a.text
            reasons[k] = _failed(a, self.min_chars)
        texts = [f"{m[0]}\n\n{r}" if r else m[0] for m, r in zip(made, response, strict=True)]
        final_id = {f"pending:{k}": record_id(t) for k, t in enumerate(texts)}
        parents = [[final_id.get(pool_ids[j], pool_ids[j]) for j in m[1]] for m in made]
        content = {"text": texts, "instruction": [m[0] for m in made], "response": response}
        tpl_text = self.instruction_template + "\x00" + self.answer_template
        return _records(content, reasons, parents, [m[2] for m in made],
                        _generator(self.backend, self.sampling, ctx, tpl_text, True), ctx)
