"""Watermark evaluation: detection rate at 200 tokens, false positives on human text,
robustness to random token edits, and the perplexity cost under the reference model.

- watermarked: SmolLM2-135M continues ``--n`` passages of the first file of ``--corpus`` (Emma
  in docs/bench; 32-token prompts) by 200 tokens, pure sampling (T = 1), with the green-list
  watermark (γ = 0.25, δ = 2, self-hash, context 4); the same prompts and seed without the
  watermark give the unmarked control;
- human: ``--human`` 200-token windows of the other files of ``--corpus``, scored the same way
  (text only, same tokenizer) — the false-positive rate;
- edits: 10% / 30% of each watermarked text's tokens replaced by random vocabulary tokens;
- perplexity: the continuations' perplexity under SmolLM2 given their prompts, marked vs not.

Targets (issue 6): TPR ≥ 0.95 at FPR ≤ 0.001 (z ≥ 4) at 200 tokens.

Usage: python benchmarks/bench_watermark.py [--n 64] [--human 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from corpus import add_corpus_argument, corpus_files

from synthloop.compliance.watermark import GreenList, WatermarkProcessor, WatermarkSpec
from synthloop.models.params import GenParams
from synthloop.models.registry import load_lm

KEY = b"synthloop-benchmark-watermark-key"


def cond_ppl(lm, prompts: list[list[int]], conts: list[list[int]]) -> float:
    """Perplexity of the continuations given their prompts."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for p, c in zip(prompts, conts, strict=True):
            x = torch.tensor([p + c])
            logp = torch.log_softmax(lm.model(input_ids=x).logits[0, :-1].float(), -1)
            tgt = x[0, 1:]
            lp = logp[torch.arange(len(tgt)), tgt][len(p) - 1:]
            total -= float(lp.sum())
            count += len(c)
    return float(np.exp(total / count))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--human", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=200)
    add_corpus_argument(ap)
    args = ap.parse_args()
    files = corpus_files(args.corpus)
    if len(files) < 2:
        raise SystemExit("error: --corpus needs two or more files (prompts, human text)")
    lm = load_lm("smollm2-135m")
    tok = lm.tokenizer
    vocab = max(len(tok), tok.vocab_size)
    green = GreenList(KEY, vocab, WatermarkSpec())
    words = files[0].read_text(encoding="utf-8").split()
    rng = np.random.default_rng(0)
    starts = rng.choice(len(words) - 100, args.n, replace=False)
    prompts = [([lm.bos_id] + lm.encode([" ".join(words[s:s + 40])])[0])[:33] for s in starts]
    params = GenParams(max_new_tokens=args.tokens, temperature=1.0, batch_size=32)
    t = time.perf_counter()
    marked = lm.generate(prompts, params, seed=1, logits_processors=[WatermarkProcessor(green)])
    t_marked = time.perf_counter() - t
    t = time.perf_counter()
    plain = lm.generate(prompts, params, seed=1)
    t_plain = time.perf_counter() - t

    def z_of(seqs: list[list[int]]) -> np.ndarray:
        # detection sees text only: decode, re-tokenise
        texts = lm.decode(seqs)
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        return np.array([green.score_ids(x)["z"] for x in ids])

    human_ids = []
    for f in files[1:]:
        ids = tok(f.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
        human_ids += [ids[i:i + args.tokens] for i in range(0, len(ids) - args.tokens,
                                                             args.tokens)]
    rng.shuffle(human_ids)
    human_ids = human_ids[:args.human]
    z_h = z_of(human_ids)
    z_m, z_p = z_of(marked), z_of(plain)
    print(f"watermark {green.spec.to_dict()}, {args.tokens} new tokens, SmolLM2-135M, T=1")
    print(f"  generation: marked {t_marked:.0f} s, plain {t_plain:.0f} s "
          f"({args.n * args.tokens / t_plain:.0f} tokens/s unmarked on CPU)")
    fpr = float((z_h >= 4).mean())
    print(f"  human text ({len(z_h):,} windows of {args.tokens} tokens): FPR at z ≥ 4 = "
          f"{fpr:.4f} ({int((z_h >= 4).sum())} flagged); max z {z_h.max():.2f}, "
          f"mean {z_h.mean():+.2f}")
    print(f"  unmarked SmolLM2 text: FPR {float((z_p >= 4).mean()):.3f}, mean z "
          f"{z_p.mean():+.2f}")
    print(f"  watermarked: TPR at z ≥ 4 = {float((z_m >= 4).mean()):.3f}; z median "
          f"{np.median(z_m):.1f}, min {z_m.min():.1f}")
    for share in (0.1, 0.3):
        edited = []
        for seq in marked:
            seq = list(seq)
            k = int(round(share * len(seq)))
            for j in rng.choice(len(seq), k, replace=False):
                seq[j] = int(rng.integers(vocab))
            edited.append(seq)
        z_e = z_of(edited)
        print(f"  after {share:.0%} random token edits: TPR {float((z_e >= 4).mean()):.3f}, "
              f"z median {np.median(z_e):.1f}")
    p_m = cond_ppl(lm, prompts, marked)
    p_p = cond_ppl(lm, prompts, plain)
    print(f"  perplexity under SmolLM2 given the prompt: marked {p_m:.2f} vs unmarked "
          f"{p_p:.2f} ({(p_m / p_p - 1):+.1%})")


if __name__ == "__main__":
    main()
