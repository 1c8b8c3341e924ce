"""Decoding throughput of synthloop's from-scratch GPT (the collapse lab's model) on the
generation engine vs Hugging Face ``generate`` on a GPT-2 of the same shape.

Both decode the same workload (B prompts of 64 tokens, 64 new tokens each, sampling at
temperature 1 and 5-way beam search) with models of the same shape: synthloop's GPT and a
transformers GPT-2 with equal layers, heads, width, vocabulary and positions. Prints new
tokens/s for each and the ratio, measured in the same run.

    python benchmarks/bench_decoding.py [--size tiny|small] [--batches 64,256] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from synthloop.models.engine import engine_for
from synthloop.models.gpt import GPT, SIZES, GPTConfig
from synthloop.models.params import GenParams


def _hf_model(cfg: GPTConfig):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.max_len,
                                    n_embd=cfg.d_model, n_layer=cfg.n_layer,
                                    n_head=cfg.n_head, bos_token_id=0, eos_token_id=0))
    return hf.eval()


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="tiny", choices=list(SIZES))
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=a.vocab, max_len=160, **SIZES[a.size])
    ours = GPT(cfg).to(dev).eval()
    hf = _hf_model(cfg).to(dev)
    engine = engine_for(ours)
    print(f"model {a.size}: {ours.num_params():,} parameters (ours), "
          f"{sum(p.numel() for p in hf.parameters()):,} (HF GPT-2), device {dev}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'mode':>10} {'batch':>6} {'ours tok/s':>12} {'HF tok/s':>12} {'ratio':>7}")
    new = 64
    for mode in ("sample", f"beam{a.beams}"):
        beams = 1 if mode == "sample" else a.beams
        for b in [int(x) for x in a.batches.split(",")]:
            if beams > 1:
                b = max(1, b // 4)  # beam search multiplies the rows
            prompts = torch.randint(1, a.vocab, (b, 64), device=dev)
            params = GenParams(max_new_tokens=new, num_beams=beams, batch_size=b * beams)
            t_ours = _time(lambda p=prompts, q=params, e=engine: e.generate(p.tolist(), q,
                                                                            seed=0), a.repeats)
            kw = ({"do_sample": True, "temperature": 1.0, "top_k": 0} if beams == 1
                  else {"do_sample": False, "num_beams": beams})

            def hf_run(p=prompts, kw=kw):
                with torch.no_grad():
                    hf.generate(input_ids=p, attention_mask=torch.ones_like(p),
                                max_new_tokens=new, min_new_tokens=new, pad_token_id=0, **kw)

            t_hf = _time(hf_run, a.repeats)
            tok = b * new
            print(f"{mode:>10} {b:>6} {tok / t_ours:>12,.0f} {tok / t_hf:>12,.0f} "
                  f"{t_hf / t_ours:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
