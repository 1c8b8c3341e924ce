"""Next-token choice on the device: logit processing in Hugging Face's order, and sampling.

Processing order matches ``transformers`` ``generate`` so the same parameters mean the same
distribution: repetition penalty, banned tokens, user logits processors, then (sampling only)
temperature, top-k and top-p. Beam search, like ``transformers``, processes log-probabilities
rather than logits.

Sampling draws one uniform number per (seed, prompt, step) from a counter-based hash instead
of a stateful generator, so a prompt's continuation does not depend on which other prompts
share its batch, on the batch size, or on when the scheduler refilled its slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

_M32 = 0xFFFFFFFF


def penalise_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Hugging Face's repetition penalty: seen tokens' scores divided (if > 0) or multiplied
    (if < 0) by ``penalty`` (≥ 1)."""
    if penalty == 1.0:
        return logits
    pen = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, pen, logits)


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) tokens outside the top-k and outside the top-p nucleus (the most likely
    token always stays)."""
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
        # As transformers: drop the low tail whose total mass is at most 1 - top_p.
        drop = sorted_logits.softmax(-1).cumsum(-1) <= (1 - top_p)
        drop[..., -1] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def _mix32(x: torch.Tensor) -> torch.Tensor:
    # A 32-bit integer hash (Wellons' "lowbias32" family) in int64 arithmetic: both multipliers
    # are below 2**31, so no product overflows.
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _M32
    return x ^ (x >> 15)


def counter_uniforms(seed: int | torch.Tensor, streams: torch.Tensor,
                     steps: torch.Tensor) -> torch.Tensor:
    """One uniform number in [0, 1) per (seed, stream, step), as float32 with 24 random bits.

    Args:
        seed: any non-negative integer, or an int64 tensor of one per row (``[n]``) — the same
            value gives the same numbers either way.
        streams: int64 stream ids (the prompt's index), shape ``[n]``.
        steps: int64 step within each stream (tokens written so far), shape ``[n]``.
    """
    s = seed if isinstance(seed, torch.Tensor) else int(seed)
    h = _mix32(steps + 0x9E3779B9)
    h = _mix32(h ^ _mix32(streams + 0x7F4A7C15))
    h = _mix32(h ^ (s & _M32))
    h = _mix32(h ^ ((s >> 32) & _M32) ^ 0x85EBCA6B)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def sample_from_logits(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One token per row drawn from softmax(logits) by inverse-CDF sampling at ``uniforms``
    (shape ``[n]``, in [0, 1)); returns int64 ``[n]``."""
    cdf = logits.softmax(-1).cumsum(-1)
    u = uniforms[:, None].to(cdf.dtype) * cdf[:, -1:]
    tok = torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=logits.shape[-1] - 1)
    return tok


Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LogitsPipeline:
    """Turns raw next-token logits into processed scores, in transformers' order.

    Args:
        vocab: logits width.
        banned_ids: tokens never produced.
        repetition_penalty: ≥ 1 (1 disables it).
        processors: transformers-style ``LogitsProcessor`` callables
            ``(input_ids [n, t], scores [n, vocab]) -> scores``; ``input_ids`` holds each row's
            prompt and tokens so far, right-aligned (left-padded with the first prompt token).
        temperature, top_k, top_p: the sampling warpers (sampling mode only).
    """

    def __init__(self, vocab: int, *, banned_ids: Sequence[int] = (),
                 repetition_penalty: float = 1.0, processors: Sequence[Processor] = (),
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
        self.vocab = vocab
        self.banned = sorted({int(i) for i in banned_ids if 0 <= int(i) < vocab})
        self._banned_index: torch.Tensor | None = None  # built once, on the scores' device
        self.penalty = repetition_penalty
        self.processors = list(processors)
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p

    @property
    def needs_seen(self) -> bool:
        return self.penalty != 1.0

    @property
    def needs_history(self) -> bool:
        return bool(self.processors)

    def adjust(self, scores: torch.Tensor, seen: torch.Tensor | None,
               history: Callable[[], torch.Tensor] | None) -> torch.Tensor:
        """Penalty, bans and user processors (the part shared by every decoding mode)."""
        if seen is not None:
            scores = penalise_repeats(scores, seen, self.penalty)
        if self.banned:
            if self._banned_index is None or self._banned_index.device != scores.device:
                self._banned_index = torch.tensor(self.banned, device=scores.device)
            scores[:, self._banned_index] = float("-inf")
        if self.processors:
            ids = history() if history is not None else None
            for proc in self.processors:
                scores = proc(ids, scores)
        return scores

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        """Temperature, top-k, top-p (sampling only)."""
        if self.temperature != 1.0:
            scores = scores / self.temperature
        return filter_logits(scores, self.top_k, self.top_p)
