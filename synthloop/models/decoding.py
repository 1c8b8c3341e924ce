"""Batched decoding with a KV cache: sampling (temperature, top-k, top-p) and beam search.

Works with any model whose ``forward(idx, cache)`` returns logits and appends to the cache
(``synthloop.models.gpt.GPT``). Prompts are grouped by length so no padding is needed.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from synthloop.models.params import GenParams


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def penalise_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Hugging Face's repetition penalty: seen tokens' logits divided (if > 0) or multiplied
    (if < 0) by ``penalty``."""
    if penalty == 1.0:
        return logits
    pen = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, pen, logits)


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) tokens outside the top-k and outside the top-p nucleus."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the mass before it already reaches top_p (the top token stays).
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def sample_from_logits(logits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One token per row, drawn from softmax(logits) by inverse-CDF sampling.

    Exact, repeatable for a seeded generator, and much cheaper on CPU than
    ``torch.multinomial`` (which draws a full row of exponentials per sample).
    """
    cdf = logits.softmax(-1).cumsum(-1)
    u = torch.rand(logits.shape[0], 1, generator=gen, device=logits.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp_(max=logits.shape[-1] - 1)


def _batches(prompts: Sequence[Sequence[int]], batch_size: int):
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_len[len(p)].append(i)
    for length in sorted(by_len):
        idx = by_len[length]
        for s in range(0, len(idx), batch_size):
            yield idx[s:s + batch_size]


@torch.no_grad()
def generate_tokens(model, prompts: Sequence[Sequence[int]], params: GenParams, *,
                    seed: int = 0, banned_ids: Sequence[int] = (),
                    progress: Callable[[int], None] | None = None) -> list[list[int]]:
    """Continue every prompt by exactly ``params.max_new_tokens`` tokens.

    Returns the new tokens only, in prompt order. Sampling is repeatable: the same seed,
    prompts and parameters give the same tokens on the same device. ``banned_ids`` (e.g. the
    BOS token) are never produced. ``progress`` is called with the number of prompts done.
    """
    params.validate()
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (prepend BOS)")
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    out: list[list[int] | None] = [None] * len(prompts)
    beams = params.num_beams
    bsz = max(1, params.batch_size // beams) if beams > 1 else params.batch_size
    for rows in _batches(prompts, bsz):
        x = torch.tensor([list(prompts[i]) for i in rows], device=device)
        new = (_beam_batch(model, x, params, banned_ids) if beams > 1
               else _sample_batch(model, x, params, banned_ids, gen))
        for r, toks in zip(rows, new.tolist(), strict=True):
            out[r] = toks
        if progress:
            progress(len(rows))
    return out  # type: ignore[return-value]


def _seen_mask(x: torch.Tensor, vocab: int) -> torch.Tensor:
    seen = torch.zeros(x.shape[0], vocab, dtype=torch.bool, device=x.device)
    return seen.scatter_(1, x, True)


def _next_logits(model, inp: torch.Tensor, cache, banned: Sequence[int],
                 seen: torch.Tensor | None, penalty: float) -> torch.Tensor:
    """Float32 logits of the next token, with banned tokens masked and repeats penalised."""
    logits = model(inp, cache)[:, -1].float()
    if banned:
        logits[:, list(banned)] = float("-inf")
    if seen is not None:
        logits = penalise_repeats(logits, seen, penalty)
    return logits


def _sample_batch(model, x: torch.Tensor, params: GenParams, banned: Sequence[int],
                  gen: torch.Generator) -> torch.Tensor:
    b, plen = x.shape
    n_new = params.max_new_tokens
    cache = model.new_cache(b, plen + n_new)
    vocab = model.cfg.vocab_size
    seen = _seen_mask(x, vocab) if params.repetition_penalty != 1.0 else None
    new = torch.empty(b, n_new, dtype=torch.long, device=x.device)
    inp = x
    with _autocast(x.device):
        for t in range(n_new):
            logits = _next_logits(model, inp, cache, banned, seen, params.repetition_penalty)
            logits = filter_logits(logits / params.temperature, params.top_k, params.top_p)
            tok = sample_from_logits(logits, gen)
            new[:, t] = tok[:, 0]
            if seen is not None:
                seen.scatter_(1, tok, True)
            inp = tok
    return new


def _beam_batch(model, x: torch.Tensor, params: GenParams,
                banned: Sequence[int]) -> torch.Tensor:
    """Fixed-length beam search; returns the highest-scoring beam per prompt."""
    b, plen = x.shape
    k = params.num_beams
    n_new = params.max_new_tokens
    vocab = model.cfg.vocab_size
    rows = x.repeat_interleave(k, dim=0)
    cache = model.new_cache(b * k, plen + n_new)
    seen = _seen_mask(rows, vocab) if params.repetition_penalty != 1.0 else None
    scores = torch.full((b, k), float("-inf"), device=x.device)
    scores[:, 0] = 0.0  # all beams start identical: let only one expand at the first step
    hist = torch.empty(b * k, 0, dtype=torch.long, device=x.device)
    base = (torch.arange(b, device=x.device) * k)[:, None]
    inp = rows
    with _autocast(x.device):
        for _ in range(n_new):
            logits = _next_logits(model, inp, cache, banned, seen, params.repetition_penalty)
            logp = logits.log_softmax(-1).view(b, k, vocab)
            total = (scores[:, :, None] + logp).view(b, k * vocab)
            scores, flat = torch.topk(total, k, dim=-1)
            src = (base + flat // vocab).view(-1)
            tok = (flat % vocab).view(-1, 1)
            cache.reorder(src)
            hist = torch.cat([hist.index_select(0, src), tok], dim=1)
            if seen is not None:
                seen = seen.index_select(0, src).scatter_(1, tok, True)
            inp = tok
    return hist.view(b, k, n_new)[:, 0]
