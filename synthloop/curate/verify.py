"""Judges and verifiers: an LLM-as-judge scorer, and checks that can prove a record wrong —
arithmetic answers, JSON-schema validity, Python code run in a sandboxed subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from synthloop.errors import ConfigError
from synthloop.generate.backends import BackendSpec, Sampling
from synthloop.pipeline.step import Filter, Scorer, register, text_column

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
    sampling: Sampling = Sampling(max_new_tokens=8, temperature=0.2, top_p=1.0)
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

    def reasons(self, table, ctx):
        import jsonschema

        schema = self.json_schema
        if self.schema_file:
            path = ctx.path(self.schema_file)
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise ConfigError(f"step {self.label}: {path}: cannot read schema ({e})") \
                    from None
        validator = None
        if schema is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise ConfigError(f"step {self.label}: invalid JSON schema ({e.message})") \
                    from None
            validator = jsonschema.Draft202012Validator(schema)
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


# Installed before the user's code: no sockets, no new processes, no os.system.
_SANDBOX_PRELUDE = """
import sys
def _deny(event, args):
    if event.startswith(("socket.", "subprocess.", "os.system", "os.exec", "os.spawn",
                         "os.posix_spawn", "os.fork", "os.forkpty", "pty.spawn")):
        raise PermissionError(f"sandbox: {event} is not allowed")
sys.addaudithook(_deny)
del _deny
"""


def run_python(code: str, *, timeout_s: float = 5.0, memory_mb: int = 512) -> str | None:
    """Run ``code`` in an isolated Python subprocess: ``None`` if it exits 0, else why not.

    Isolation: ``python -I -S`` (no user site, no environment variables, no site-packages),
    an empty environment and a fresh temporary working folder, an audit hook that refuses
    sockets and process creation, and resource limits (CPU seconds, address space, file
    size, no core dumps); wall-clock timeout kills it.
    """
    def limits() -> None:
        import resource

        cpu = int(timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    with tempfile.TemporaryDirectory(prefix="synthloop-verify-") as tmp:
        script = Path(tmp) / "main.py"
        script.write_text(_SANDBOX_PRELUDE + "\n" + code, encoding="utf-8")
        try:
            r = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp,
                               env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout_s, preexec_fn=limits if os.name == "posix"
                               else None, check=False)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout_s:g} s"
    if r.returncode == 0:
        return None
    lines = [ln for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else f"exit code {r.returncode}"
    return last[:300]


@register
class VerifyPython(Filter):
    """Drop records whose Python code (``field``, a fenced block unwrapped) fails to run, or
    fails the record's tests (``tests_field``, appended after the code) — run sandboxed (see
    :func:`run_python`) with ``timeout_s`` and ``memory_mb``."""

    kind = "verify-python"

    field: str = "text"
    tests_field: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=600)
    memory_mb: int = Field(512, ge=64)

    def reasons(self, table, ctx):
        codes = text_column(table, self.field, self.label)
        tests = text_column(table, self.tests_field, self.label) if self.tests_field \
            else [""] * len(codes)
        ctx.progress.stage(f"{self.label}: running code", len(codes))
        out = []
        for code, test in zip(codes, tests, strict=True):
            why = run_python(strip_fence(code) + "\n\n" + test, timeout_s=self.timeout_s,
                             memory_mb=self.memory_mb)
            out.append(None if why is None else f"python: {why}")
            ctx.progress.advance()
        return out
