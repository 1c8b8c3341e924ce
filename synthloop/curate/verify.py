"""Judges and verifiers: an LLM-as-judge scorer, and checks that can prove a record wrong —
arithmetic answers, JSON-schema validity, Python code run in :mod:`synthloop.sandbox`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field

from synthloop.errors import ConfigError
from synthloop.generate.backends import PIPELINE_SAMPLING, BackendSpec
from synthloop.models.params import GenParams
from synthloop.pipeline.step import Filter, Scorer, register, text_column
from synthloop.sandbox import Limits, check_isolation, run_python

JUDGE_TEMPLATE = """Rate the quality of this answer from 1 (useless or wrong) to 5 (correct, \
clear and complete).

{% if instruction is defined %}Question: {{ instruction }}

Answer: {{ response }}{% else %}Text: {{ text }}{% endif %}

Reply with "Score: N" and nothing else."""

_SCORE_RE = re.compile(r"(?:score\s*[:=]?\s*)?\b([1-9]|10)\b", re.IGNORECASE)


def parse_score(text: str, lo: int = 1, hi: int = 5) -> float | None:
    """The judge's score: the number after ``Score:`` if present, else the first integer in
    [lo, hi]; ``None`` when there is none."""
    m = re.search(r"score\s*[:=]?\s*(\d+)", text, re.IGNORECASE)
    if m and lo <= int(m.group(1)) <= hi:
        return float(m.group(1))
    for m in _SCORE_RE.finditer(text):
        if lo <= int(m.group(1)) <= hi:
            return float(m.group(1))
    return None


@register
class Judge(Scorer):
    """LLM-as-judge: render ``template`` per record, ask the backend, and write the parsed
    score (``column``, in [``min_score``, ``max_score``], null when unparseable) and the raw
    reply (``column``\\ ``_raw``). Thresholding is a separate ``threshold`` step."""

    kind = "judge"

    backend: BackendSpec = BackendSpec()
    template: str = JUDGE_TEMPLATE
    sampling: GenParams = PIPELINE_SAMPLING.replace(max_new_tokens=8, temperature=0.2,
                                                     top_p=1.0)
    column: str = "judge_score"
    min_score: int = 1
    max_score: int = 5

    def scores(self, table, ctx):
        from synthloop.generate.text import (
            compile_template,
            complete_prompts,
            content_rows,
            render_all,
        )

        prompts = render_all(compile_template(self.template, self.label), content_rows(table),
                             self.label)
        done = complete_prompts(self.backend, prompts, self.sampling, ctx, True,
                         f"{self.label}: judging")
        raw = [c.text if not c.error else f"error: {c.error}" for c in done]
        return {self.column: pa.array([None if c.error else
                                       parse_score(c.text, self.min_score, self.max_score)
                                       for c in done], pa.float64()),
                f"{self.column}_raw": pa.array(raw, pa.string())}


_NUM = r"-?\d+(?:\.\d+)?"
_EXPR_RE = re.compile(rf"({_NUM})\s*([-+*/×x÷])\s*({_NUM})")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "×": lambda a, b: a * b, "x": lambda a, b: a * b,
        "/": lambda a, b: a / b if b else None, "÷": lambda a, b: a / b if b else None}


def check_arithmetic(question: str, answer: str, *, rel_tol: float = 1e-6) -> str | None:
    """``None`` if the answer's last number equals the question's first ``a op b``
    expression, else why not (``"no expression"`` when the question has none)."""
    m = _EXPR_RE.search(question.replace(",", ""))
    if not m:
        return "no expression"
    a, op, b = float(m.group(1)), m.group(2), float(m.group(3))
    want = _OPS[op](a, b)
    if want is None:
        return "division by zero in the question"
    nums = re.findall(_NUM, answer.replace(",", ""))
    if not nums:
        return f"answer has no number (expected {want:g})"
    got = float(nums[-1])
    if abs(got - want) > rel_tol * max(1.0, abs(want)):
        return f"wrong answer: {m.group(0)} = {want:g}, answer says {got:g}"
    return None


@register
class VerifyArithmetic(Filter):
    """Drop records whose answer (``answer_field``) does not equal the value of the first
    ``a op b`` expression in ``question_field``; records without an expression are kept
    unless ``require_expression``."""

    kind = "verify-arithmetic"

    question_field: str = "instruction"
    answer_field: str = "response"
    require_expression: bool = False

    def reasons(self, table, ctx):
        out = []
        for q, a in zip(text_column(table, self.question_field, self.label),
                        text_column(table, self.answer_field, self.label), strict=True):
            why = check_arithmetic(q, a)
            if why == "no expression" and not self.require_expression:
                why = None
            out.append(None if why is None else f"arithmetic: {why}")
        return out


def strip_fence(text: str) -> str:
    """The body of the first fenced code block, or the text itself."""
    m = re.search(r"```[\w+-]*\n(.*?)```", text, re.DOTALL)
    return m.group(1) if m else text


@register
class VerifyJSON(Filter):
    """Drop records whose ``field`` is not JSON (a fenced block is unwrapped first) or does
    not validate against ``schema`` (inline, or ``schema_file``; JSON Schema 2020-12)."""

    kind = "verify-json"

    field: str = "text"
    json_schema: dict | None = Field(None, alias="schema")
    schema_file: str | None = None

    def _validator(self, base_dir: Path):
        import jsonschema

        schema = self.json_schema
        if self.schema_file:
            path = Path(self.schema_file).expanduser()
            path = path if path.is_absolute() else base_dir / path
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
                raise ConfigError(f"step {self.label}: {path}: cannot read schema ({e})") \
                    from None
        if schema is None:
            return None
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise ConfigError(f"step {self.label}: invalid JSON schema ({e.message})") \
                from None
        return jsonschema.Draft202012Validator(schema)

    def preflight(self, base_dir):
        self._validator(Path(base_dir))

    def reasons(self, table, ctx):
        validator = self._validator(ctx.base_dir)
        out = []
        for text in text_column(table, self.field, self.label):
            try:
                value = json.loads(strip_fence(text))
            except json.JSONDecodeError as e:
                out.append(f"json: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})")
                continue
            err = next(iter(validator.iter_errors(value)), None) if validator else None
            out.append(None if err is None else
                       f"json: schema: {err.message} at {err.json_path}")
        return out


@register
class VerifyPython(Filter):
    """Drop records whose Python code (``field``, a fenced block unwrapped) fails to run, or
    fails the record's tests (``tests_field``, appended after the code) — run in
    :func:`synthloop.sandbox.run_python` with ``timeout_s``, ``memory_mb`` and ``processes``.

    ``isolation`` is the weakest sandbox accepted (``bubblewrap`` by default: own filesystem,
    PID and network namespaces); the step refuses to run on a machine that has only weaker
    isolation unless it is set to ``namespaces`` or ``process``.
    """

    kind = "verify-python"

    field: str = "text"
    tests_field: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=600)
    memory_mb: int = Field(512, ge=64)
    processes: int = Field(16, ge=1, le=4096)
    isolation: Literal["bubblewrap", "namespaces", "process"] = "bubblewrap"

    def preflight(self, base_dir):
        check_isolation(self.isolation)

    def reasons(self, table, ctx):
        level = check_isolation(self.isolation)
        limits = Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                        processes=self.processes)
        codes = text_column(table, self.field, self.label)
        tests = text_column(table, self.tests_field, self.label) if self.tests_field \
            else [""] * len(codes)
        ctx.progress.stage(f"{self.label}: running code ({level} sandbox)", len(codes))
        out = []
        for code, test in zip(codes, tests, strict=True):
            why = run_python(strip_fence(code) + "\n\n" + test, limits,
                             minimum=self.isolation).reason()
            out.append(None if why is None else f"python: {why}")
            ctx.progress.advance()
        return out
