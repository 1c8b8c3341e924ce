"""Generation throughput: synthloop's engine vs Hugging Face ``generate``, same model, same run.

The model is a randomly initialised Llama with SmolLM2-135M's shape (30 layers, width 576,
9 query / 3 key-value heads, vocabulary 49,152; 134.5M parameters) — the shape, not the
weights, sets the speed, and it needs no download. Each prompt has 64 tokens; each
continuation 128 new tokens (EOS banned, so every row writes all of them); sampling at
temperature 1, and 5-way beam search. Prints new tokens/s for both and the ratio.

    python benchmarks/bench_generation.py                      # CPU: batch 16, float32
    python benchmarks/bench_generation.py --dtype bfloat16      # both sides in bfloat16
    python benchmarks/bench_generation.py --device cuda --batches 64,256 --dtype bfloat16

``--ours-dtype`` runs the engine in another dtype than HF (e.g. the engine in bfloat16 —
``engine_for(model, dtype=torch.bfloat16)`` — against transformers' float32 default); the
header line says which.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from synthloop.models.engine import engine_for
from synthloop.models.params import GenParams

SHAPES = {
    "smollm2-135m": {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                     "num_hidden_layers": 30, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "max_position_embeddings": 2048,
                     "rope_theta": 100000.0},
    "tiny-llama": {"vocab_size": 2048, "hidden_size": 128, "intermediate_size": 256,
                   "num_hidden_layers": 4, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "max_position_embeddings": 512},
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def build(shape: str, dtype: torch.dtype, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[shape], tie_word_embeddings=True, bos_token_id=0,
                      eos_token_id=0, pad_token_id=0)
    return LlamaForCausalLM(cfg).to(device=device, dtype=dtype).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="smollm2-135m", choices=list(SHAPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="16")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--beams", type=int, default=5, help="0 skips beam search")
    ap.add_argument("--dtype", default="float32", choices=list(DTYPES))
    ap.add_argument("--ours-dtype", default=None, choices=list(DTYPES))
    ap.add_argument("--repeats", type=int, default=2, help="best of")
    ap.add_argument("--json", default=None, help="also write the rows here")
    a = ap.parse_args()
    dev = torch.device(a.device)
    hf = build(a.shape, DTYPES[a.dtype], dev)
    engine = engine_for(hf, dtype=DTYPES[a.ours_dtype or a.dtype])
    ours_dtype = str(engine.decoder.dtype).replace("torch.", "")
    n_par = sum(p.numel() for p in hf.parameters())
    print(f"{a.shape}: {n_par / 1e6:.1f}M parameters; device {dev}"
          f"{'' if dev.type == 'cuda' else f' ({torch.get_num_threads()} threads)'}; "
          f"HF {a.dtype}, ours {ours_dtype}; prompts {a.prompt} tokens, {a.new} new")
    print(f"{'mode':>8} {'batch':>6} {'ours tok/s':>11} {'HF tok/s':>10} {'ratio':>7}")
    vocab = SHAPES[a.shape]["vocab_size"]
    rows = []
    modes = ["sample"] + ([f"beam{a.beams}"] if a.beams > 1 else [])
    for mode in modes:
        beams = 1 if mode == "sample" else a.beams
        for b in [int(x) for x in a.batches.split(",")]:
            g = torch.Generator().manual_seed(b)
            prompts = torch.randint(1, vocab, (b, a.prompt), generator=g)
            params = GenParams(max_new_tokens=a.new, num_beams=beams, batch_size=b * beams)
            plist = prompts.tolist()
            # warm-up at the timed shapes (allocator, oneDNN kernels for this batch)
            warm = GenParams(max_new_tokens=4, num_beams=beams, batch_size=b * beams)
            engine.generate(plist, warm, seed=0, banned_ids=[0])
            t_ours = timed(lambda p=plist, q=params: engine.generate(p, q, seed=0,
                                                                     banned_ids=[0]),
                           dev, a.repeats)
            x = prompts.to(dev)
            kw = ({"do_sample": True, "temperature": 1.0, "top_k": 0} if beams == 1
                  else {"do_sample": False, "num_beams": beams})

            def hf_run(x=x, kw=kw, n=a.new):
                with torch.no_grad():
                    hf.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                max_new_tokens=n, min_new_tokens=n, pad_token_id=0,
                                bad_words_ids=[[0]], **kw)

            hf_run(x, n=4)
            t_hf = timed(hf_run, dev, a.repeats)
            tok = b * a.new
            row = {"mode": mode, "batch": b, "ours_tok_s": tok / t_ours,
                   "hf_tok_s": tok / t_hf, "ratio": t_hf / t_ours, "hf_dtype": a.dtype,
                   "ours_dtype": ours_dtype, "device": str(dev)}
            rows.append(row)
            print(f"{mode:>8} {b:>6} {row['ours_tok_s']:>11,.0f} {row['hf_tok_s']:>10,.0f} "
                  f"{row['ratio']:>6.2f}x", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
