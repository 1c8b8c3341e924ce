"""The collapse lab at GPU scale (the lent H100): a from-scratch ~30M GPT on Shakespeare with
the Shumailov et al. (2024) decoding protocol (64-token blocks, 5-way beam search, repetition
penalty 3.0). Resumable: rerun the same command to continue.

    PYTHONPATH=. python scripts/gpu_collapse.py CORPUS_DIR OUT_DIR [--generations 5]
"""

from __future__ import annotations

import argparse
import json
import time

from synthloop.collapse import CollapseConfig, run_collapse
from synthloop.models.params import GenParams, TrainParams
from synthloop.progress import LogProgress


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--pattern", default="*_gut.txt")
    ap.add_argument("--model", default="gpt-30m")
    ap.add_argument("--generations", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--policies", default="replace,keep-real:0.1,accumulate,filter:ppl-top:0.2")
    ap.add_argument("--max-train-blocks", type=int, default=10000)
    ap.add_argument("--epochs", type=float, default=5.0)
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--rep-penalty", type=float, default=3.0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--vocab-size", type=int, default=8192)
    a = ap.parse_args()
    cfg = CollapseConfig(
        corpus=a.corpus, out=a.out, pattern=a.pattern, model=a.model,
        generations=a.generations, seeds=a.seeds, policies=a.policies, device="cuda",
        max_train_blocks=a.max_train_blocks, max_test_blocks=2000, vocab_size=a.vocab_size,
        train=TrainParams(epochs=a.epochs, batch_size=64, lr=6e-4, warmup=0.05),
        decoding=GenParams(num_beams=a.beams, repetition_penalty=a.rep_penalty,
                           temperature=a.temperature, batch_size=2560))
    t0 = time.perf_counter()
    res = run_collapse(cfg, progress=LogProgress(), report=False)
    print(json.dumps({"wall_seconds": time.perf_counter() - t0,
                      "summary": res.summary_rows(), "findings": res.findings}, indent=1))


if __name__ == "__main__":
    main()
