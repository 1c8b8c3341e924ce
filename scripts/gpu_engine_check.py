"""GPU checks of the generation engine, for the lent device (no network needed).

1. On CUDA, the graph-captured engine's greedy output equals transformers' ``generate`` token
   for token (tiny random Llama, float32, 12 prompts of mixed lengths, 4 slots: refill and
   drain both replay captured graphs), and equals the engine's eager path.
2. Throughput against transformers' ``generate`` at batch 64 and 256 on the SmolLM2-135M
   shape in bfloat16 (``benchmarks/bench_generation.py``).

    PYTHONPATH=. python scripts/gpu_engine_check.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from synthloop.models.engine import Decoder, GenerationEngine
from synthloop.models.params import GenParams


def equality() -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, pad_token_id=0)
    model = LlamaForCausalLM(cfg).cuda().eval()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(2, 320, (int(k),), generator=g).tolist()
               for k in torch.randint(3, 40, (12,), generator=g)]
    params = GenParams(max_new_tokens=24, greedy=True, batch_size=4)
    graphed = GenerationEngine(Decoder.from_module(model), use_graphs=True)
    eager = GenerationEngine(Decoder.from_module(model), use_graphs=False)
    ours = graphed.generate(prompts, params)
    mismatches = 0
    for p, o in zip(prompts, ours, strict=True):
        x = torch.tensor([p], device="cuda")
        with torch.no_grad():
            y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                               max_new_tokens=24, pad_token_id=0, eos_token_id=None)
        mismatches += y[0, len(p):].tolist() != o
    return {"prompts": len(prompts), "greedy_mismatches_vs_hf": mismatches,
            "graphed_equals_eager": ours == eager.generate(prompts, params),
            "device": torch.cuda.get_device_name()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    eq = equality()
    print(json.dumps(eq), flush=True)
    (out / "engine_equality_cuda.json").write_text(json.dumps(eq, indent=1))
    bench = [sys.executable, "benchmarks/bench_generation.py", "--device", "cuda",
             "--batches", "64,256", "--dtype", "bfloat16", "--repeats", "2",
             "--json", str(out / "bench_generation_cuda.json")]
    subprocess.run(bench, check=True)


if __name__ == "__main__":
    main()
