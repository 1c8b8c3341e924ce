"""Watermark radioactivity (Sander et al. 2024): was my watermarked synthetic data trained on?

Protocol, on the collapse lab's data and models:

1. A teacher (the lab's generation-0 model, trained on the real train blocks) continues every
   real train block twice: once with the green-list watermark of a key, once without.
2. For each share ``w``, a seeded ``w`` of the records comes from the watermarked set, the
   rest from the plain one; a student trains from scratch on that set (the lab's recipe).
3. The student — which never saw the key — continues the real *test* blocks, and its output
   is scored for the key's watermark: every distinct (context, token) window of all outputs
   once, green count against Binomial(T, γ) (z and exact p-value).

A data owner who finds z ≫ 0 in a model's output knows that model was trained on text their
key watermarked. ``w = 0`` is the control (z ≈ N(0, 1)).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from synthloop.collapse.experiment import CollapseConfig, _prepare, _test_ppl, _train
from synthloop.compliance.watermark import GreenList, WatermarkProcessor, WatermarkSpec
from synthloop.errors import ConfigError
from synthloop.models.lm import TinyLM
from synthloop.progress import NullProgress, Progress
from synthloop.records.schema import Generator, text_records
from synthloop.seeds import derive_seed31

#: A demonstration key: the experiment needs one, and no secret is at stake.
DEMO_KEY = b"synthloop-radioactivity-demo-key"


def _continue(ctx, model, prompts: Sequence[Sequence[int]], seed: int,
              processors: Sequence = ()) -> list[list[int]]:
    params = ctx.cfg.decoding.replace(max_new_tokens=ctx.cfg.new_tokens)
    return model.generate(list(prompts), params, seed=seed, logits_processors=list(processors))


def _two_share_z(score: dict, reference: dict) -> tuple[float, float]:
    """z and one-sided p of "green share of ``score`` > green share of ``reference``"
    (two-proportion test, pooled variance)."""
    from scipy.stats import norm

    n1, n0 = score["tokens_scored"], reference["tokens_scored"]
    if not n1 or not n0:
        return 0.0, 1.0
    p1, p0 = score["green"] / n1, reference["green"] / n0
    p = (score["green"] + reference["green"]) / (n1 + n0)
    se = np.sqrt(max(p * (1 - p), 1e-12) * (1 / n1 + 1 / n0))
    z = float((p1 - p0) / se)
    return round(z, 4), float(norm.sf(z))


def run_radioactivity(cfg: CollapseConfig, shares: Sequence[float] = (0.0, 0.05, 0.25, 1.0),
                      *, spec: WatermarkSpec = WatermarkSpec(), key: bytes = DEMO_KEY,
                      progress: Progress | None = None) -> list[dict]:
    """Run the protocol for every share in ``shares`` (each in [0, 1]) and every seed of
    ``cfg`` (its corpus, model, sizes and training recipe; ``cfg.out`` holds the real split).

    Returns one row per (seed, share): ``seed``, ``share``, ``watermarked_records``,
    ``student_test_ppl``, ``tokens_scored``, ``green``, ``z``, ``p_value``, and the teacher's
    own watermarked data's ``teacher_z`` (what a direct check of the data would show).
    """
    bad = [s for s in shares if not 0 <= s <= 1]
    if bad:
        raise ConfigError(f"shares are fractions in [0, 1], got {bad[0]}", fields=("shares",))
    progress = progress or NullProgress()
    ctx = _prepare(cfg, progress)
    if not isinstance(ctx.base, TinyLM):
        raise ConfigError(f"model '{cfg.model}': the radioactivity protocol trains students "
                          f"from scratch; use tiny, small or gpt-125m", fields=("model",))
    green = GreenList(key, ctx.base.tokenizer.vocab_size, spec)
    test_prompts = [[ctx.base.bos_id] + ids[:cfg.prompt_tokens] for ids in ctx.test_ids
                    if ids]
    # the null measured, not assumed: real text scored with the same key (a small vocabulary
    # makes a key's green share of natural text drift from γ: frequent tokens are often their
    # own self-hash anchor, always green or always red)
    reference = green.score_many(list(ctx.test_ids) + list(ctx.train_ids))
    rows = []
    for seed in range(cfg.seeds):
        teacher, _ = _train(ctx, ctx.real_train, seed, f"seed {seed} teacher")
        sample_seed = derive_seed31(seed, "radioactivity", "teacher")
        progress.stage(f"seed {seed}: teacher writes (plain and watermarked)", None)
        plain = _continue(ctx, teacher, ctx.prompts, sample_seed)
        marked = _continue(ctx, teacher, ctx.prompts, sample_seed, [WatermarkProcessor(green)])
        teacher_z = green.score_many(marked)["z"]
        generator = Generator(model=f"{cfg.model}#teacher-seed{seed}",
                              weights_sha256=teacher.weights_sha256(),
                              decoding=cfg.decoding.to_dict(), seed=sample_seed)
        order = np.random.default_rng(derive_seed31(seed, "radioactivity", "pick")) \
            .permutation(len(plain))
        for share in shares:
            n_marked = int(round(share * len(plain)))
            use = np.zeros(len(plain), dtype=bool)
            use[order[:n_marked]] = True
            ids = [m if u else p for p, m, u in zip(plain, marked, use, strict=True)]
            table: pa.Table = text_records(teacher.decode(ids), origin="synthetic",
                                           generation=1, generator=generator)
            t0 = time.perf_counter()
            student, _ = _train(ctx, table, seed, f"seed {seed} student w={share:g}")
            out = _continue(ctx, student, test_prompts,
                            derive_seed31(seed, "radioactivity", "student"))
            score = green.score_many(out)
            z_ref, p_ref = _two_share_z(score, reference)
            rows.append({"seed": seed, "share": float(share), "watermarked_records": n_marked,
                         "records": len(ids), "student_test_ppl": _test_ppl(ctx, student)
                         ["test_ppl"], **score, "z_vs_real": z_ref, "p_vs_real": p_ref,
                         "real_green_share": reference["green"] / reference["tokens_scored"],
                         "teacher_z": teacher_z, "seconds": time.perf_counter() - t0})
            progress.log(f"seed {seed} w={share:g}: z {score['z']:+.2f} against γ, "
                         f"{z_ref:+.2f} against real text (p {p_ref:.2g}) over "
                         f"{score['tokens_scored']} tokens")
    return rows


def summarise_radioactivity(rows: list[dict]) -> list[dict]:
    """Per share: mean and min/max z and the largest p-value over seeds."""
    out = []
    for share in sorted({r["share"] for r in rows}):
        rs = [r for r in rows if r["share"] == share]
        z = np.array([r["z"] for r in rs])
        zr = np.array([r["z_vs_real"] for r in rs])
        out.append({"share": share, "seeds": len(rs), "z_mean": float(z.mean()),
                    "z_vs_real_mean": float(zr.mean()), "z_vs_real_min": float(zr.min()),
                    "z_vs_real_max": float(zr.max()),
                    "p_vs_real_max": float(max(r["p_vs_real"] for r in rs)),
                    "student_test_ppl": float(np.mean([r["student_test_ppl"] for r in rs]))})
    return out


__all__ = ["DEMO_KEY", "run_radioactivity", "summarise_radioactivity"]
