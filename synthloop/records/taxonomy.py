"""Read an InstructLab-style taxonomy: a folder tree whose leaves hold a ``qna.yaml``.

Two leaf shapes are understood (InstructLab taxonomy schema v2/v3):

- skills: ``task_description`` and ``seed_examples: [{question, answer, context?}]``;
- knowledge: ``document_outline`` and ``seed_examples: [{context, questions_and_answers:
  [{question, answer}]}]``; the contexts become the documents answers are grounded in.

Each leaf becomes one record (origin ``real``: the seeds are human-written) with the leaf's path
relative to the taxonomy root in ``taxonomy_path``; generated records keep that path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from synthloop.errors import InputError
from synthloop.records.io import read_yaml
from synthloop.records.schema import with_provenance

LEAF_FILE = "qna.yaml"


def _examples(doc: dict, path: Path) -> tuple[list[dict], list[str]]:
    seeds = doc.get("seed_examples")
    if not isinstance(seeds, list) or not seeds:
        raise InputError(f"{path}: field 'seed_examples' must be a non-empty list")
    examples, contexts = [], []
    for i, ex in enumerate(seeds):
        if not isinstance(ex, dict):
            raise InputError(f"{path}: seed_examples[{i}] must be a mapping")
        pairs = ex.get("questions_and_answers", [ex])
        if not isinstance(pairs, list):
            raise InputError(f"{path}: seed_examples[{i}].questions_and_answers must be a list")
        for j, qa in enumerate(pairs):
            for key in ("question", "answer"):
                if not isinstance(qa, dict) or not str(qa.get(key, "")).strip():
                    where = (f"seed_examples[{i}].questions_and_answers[{j}]"
                             if "questions_and_answers" in ex else f"seed_examples[{i}]")
                    raise InputError(f"{path}: {where}: missing field '{key}'")
            examples.append({"question": str(qa["question"]).strip(),
                             "answer": str(qa["answer"]).strip()})
        if ex.get("context"):
            contexts.append(str(ex["context"]).strip())
    return examples, contexts


def read_taxonomy(root: str | Path) -> pa.Table:
    """One record per leaf (sorted by path): ``text`` (task description or document
    outline), ``taxonomy_path``, ``seed_examples`` and ``contexts`` (JSON lists)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (a taxonomy is a folder of {LEAF_FILE} leaves)")
    leaves = sorted(root.rglob(LEAF_FILE))
    if not leaves:
        raise InputError(f"{root}: no {LEAF_FILE} files in this taxonomy")
    rows = []
    for path in leaves:
        doc = read_yaml(path)
        if not isinstance(doc, dict):
            raise InputError(f"{path}: expected a mapping at the top level")
        description = doc.get("task_description") or doc.get("document_outline")
        if not description:
            raise InputError(f"{path}: missing field 'task_description' (skills) or "
                             f"'document_outline' (knowledge)")
        examples, contexts = _examples(doc, path)
        rows.append({"text": str(description).strip(),
                     "taxonomy_path": path.parent.relative_to(root).as_posix(),
                     "seed_examples": json.dumps(examples, ensure_ascii=False),
                     "contexts": json.dumps(contexts, ensure_ascii=False)})
    return with_provenance(pa.Table.from_pylist(rows))
