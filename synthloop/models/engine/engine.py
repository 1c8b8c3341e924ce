"""The generation engine: batched, static-cache decoding with continuous refill.

Every generator in synthloop (the collapse lab, the pipeline's text generators, self-play)
decodes through :class:`GenerationEngine` when the model is one it knows
(:meth:`Decoder.supports`). What it does:

- one pre-allocated key/value cache with a slot per sequence, sized to fit free memory;
- batched prefill of prompts of different lengths, in chunks (long prompts never allocate a
  prompt-sized attention matrix);
- a decode step over all live slots at once, each at its own position; on a GPU the step is
  replayed from captured CUDA graphs;
- sampling (temperature, top-k, top-p), greedy decoding and beam search, with transformers'
  processing order, repetition penalty, banned tokens and transformers logits processors;
- per-sequence stop tokens and lengths; a finished slot is refilled from the prompt queue at
  once, so the batch stays full.

Sampled tokens come from a counter-based generator keyed by (seed, prompt index, step): a
prompt's continuation depends on the seed and the prompt, not on the batch it shared.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from synthloop.models.engine.cache import StaticKVCache, bytes_per_slot, plan_slots
from synthloop.models.engine.decoder import Decoder
from synthloop.models.engine.sampling import (
    LogitsPipeline,
    counter_uniforms,
    sample_from_logits,
)
from synthloop.models.params import GenParams
from synthloop.progress import Advance

#: Prompt tokens prefilled per forward call (rows × chunk), bounding prefill activations.
PREFILL_TOKENS = 4096
#: Longest prompt piece one row prefills at a time.
PREFILL_CHUNK = 512


@dataclass
class _Unit:
    """One prompt in flight: ``width`` slots (1, or the beams)."""

    index: int
    length: int          # positions in the cache (prompt + tokens written)
    prompt_len: int
    limit: int           # new tokens to write at most
    out: list[int] = field(default_factory=list)


class GenerationEngine:
    """Decodes prompts with one model. Build with :func:`engine_for` (cached per model).

    Args:
        decoder: the model's weights in the engine's layout.
        use_graphs: capture the decode step as CUDA graphs (default: on CUDA devices). On a
            CPU, ``True`` runs the same static-shape, bucketed steps eagerly (for tests).
        memory_fraction: share of free memory the KV cache may use.
        prefill_tokens: prompt tokens per prefill call.
    """

    def __init__(self, decoder: Decoder, *, use_graphs: bool | None = None,
                 memory_fraction: float = 0.5, prefill_tokens: int = PREFILL_TOKENS):
        self.decoder = decoder
        self.device = decoder.device
        self.use_graphs = (self.device.type == "cuda") if use_graphs is None else use_graphs
        self.memory_fraction = memory_fraction
        self.prefill_tokens = prefill_tokens
        self.last_slots = 0  # slots the last run used (for tests and logs)
        # CPU matmuls on bfloat16 keys copy them first; a float32 cache keeps attention fast
        # (the cache is small next to the weights at CPU batch sizes).
        self.cache_dtype = decoder.dtype if self.device.type == "cuda" else torch.float32

    # ---- public -------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], params: GenParams, *, seed: int = 0,
                 banned_ids: Sequence[int] = (), stop_ids: Sequence[int] = (),
                 max_new_tokens: Sequence[int] | None = None,
                 logits_processors: Sequence[Callable] = (),
                 progress: Advance | None = None,
                 seeds: Sequence[int] | None = None) -> list[list[int]]:
        """Continue each prompt; returns the new tokens only, in prompt order.

        Args:
            prompts: token ids, at least one per prompt.
            params: decoding parameters; ``params.batch_size`` is the number of slots
                decoded together (beam search: slots ÷ beams prompts).
            seed: sampling seed (ignored by greedy and beam search).
            banned_ids: tokens never produced.
            stop_ids: tokens that end a continuation (not included in it).
            max_new_tokens: a length cap per prompt (default ``params.max_new_tokens``).
            logits_processors: transformers-style ``(input_ids, scores) -> scores`` callables,
                applied after the penalty and bans.
            progress: called with the number of prompts finished.
            seeds: one sampling seed per prompt, each used as if its prompt were generated
                alone with that seed (prompt index 0): a server batching requests of different
                seeds answers each exactly as it would alone. Overrides ``seed``.
        """
        if not prompts:
            return []
        limits = list(max_new_tokens) if max_new_tokens is not None else \
            [params.max_new_tokens] * len(prompts)
        if len(limits) != len(prompts):
            raise ValueError("max_new_tokens needs one length per prompt")
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError("seeds needs one seed per prompt")
        dec = self.decoder
        for i, (p, lim) in enumerate(zip(prompts, limits, strict=True)):
            if len(p) == 0:
                raise ValueError(f"prompt {i} is empty: every prompt needs at least one token")
            if lim < 1:
                raise ValueError(f"prompt {i}: max_new_tokens must be ≥ 1")
            if len(p) + lim > dec.max_positions:
                raise ValueError(f"prompt {i}: {len(p)} tokens + {lim} new exceed the model's "
                                 f"{dec.max_positions} positions")
        beams = params.num_beams
        if beams > 1 and stop_ids:
            raise ValueError("beam search writes fixed-length continuations: stop tokens are "
                             "not supported with num_beams > 1")
        pipe = LogitsPipeline(
            dec.vocab, banned_ids=banned_ids, repetition_penalty=params.repetition_penalty,
            processors=logits_processors, temperature=params.temperature, top_k=params.top_k,
            top_p=params.top_p)
        length = max(len(p) + lim for p, lim in zip(prompts, limits, strict=True))
        cache = self._cache(params, length, len(prompts))
        run = _Run(self, cache, pipe, [list(p) for p in prompts], limits, seed=seed,
                   width=beams, greedy=params.greedy, stop_ids=set(stop_ids),
                   progress=progress, seeds=seeds)
        return run.loop()

    # ---- internals ----------------------------------------------------------------------

    def _cache(self, params: GenParams, length: int, n_prompts: int) -> StaticKVCache:
        dec = self.decoder
        width = params.num_beams
        wanted = min(params.batch_size, n_prompts * width)
        wanted = max(width, wanted - wanted % width)
        dtype = self.cache_dtype
        per_slot = bytes_per_slot(dec.n_layer, dec.n_kv_head, dec.head_dim, length + 1, dtype)
        slots = plan_slots(wanted, per_slot, self.device, self.memory_fraction)
        slots = max(width, slots - slots % width)
        self.last_slots = slots
        return StaticKVCache(dec.n_layer, slots, dec.n_kv_head, length, dec.head_dim,
                             self.device, dtype)

    def _decode_fn(self, cache: StaticKVCache) -> Callable:
        dec = self.decoder

        def step(tok: torch.Tensor, pos: torch.Tensor, window: int) -> torch.Tensor:
            return dec.forward(tok, pos, cache, None, window)

        if not self.use_graphs:
            return step
        from synthloop.models.engine.graphs import GraphedDecode

        return GraphedDecode(step, slots=cache.slots, scratch=cache.scratch,
                             max_window=cache.length, device=self.device)

    def prefill(self, cache: StaticKVCache, slots: Sequence[int],
                seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Write ``seqs`` into cache ``slots`` (positions from 0); returns the next-token
        logits after each, ``[len(seqs), vocab]``."""
        dec = self.decoder
        out = torch.empty(len(seqs), dec.vocab, device=self.device, dtype=torch.float32)
        chunk = max(1, min(PREFILL_CHUNK, self.prefill_tokens))
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        groups: list[list[int]] = [[]]
        for i in order:  # rows × padded chunk width stays within the token budget
            width = min(chunk, len(seqs[i]))
            if groups[-1] and (len(groups[-1]) + 1) * width > self.prefill_tokens:
                groups.append([])
            groups[-1].append(i)
        for group in groups:
            longest = max(len(seqs[i]) for i in group)
            for c in range(0, longest, chunk):
                live = [i for i in group if len(seqs[i]) > c]
                width = min(chunk, max(len(seqs[i]) for i in live) - c)
                ids = torch.zeros(len(live), width, dtype=torch.long)
                last = []
                for r, i in enumerate(live):
                    piece = seqs[i][c:c + width]
                    ids[r, :len(piece)] = torch.tensor(piece, dtype=torch.long)
                    last.append(len(piece) - 1)
                pos = (c + torch.arange(width)).expand(len(live), width)
                rows = torch.tensor([slots[i] for i in live], device=self.device)
                logits = dec.forward(ids.to(self.device), pos.to(self.device), cache, rows,
                                     c + width, torch.tensor(last, device=self.device))
                ends = [r for r, i in enumerate(live) if len(seqs[i]) <= c + width]
                if ends:
                    idx = torch.tensor([live[r] for r in ends], device=self.device)
                    out[idx] = logits[torch.tensor(ends, device=self.device)].float()
        return out


class _Run:
    """State of one ``generate`` call: the queue, the live units and their slots."""

    def __init__(self, engine: GenerationEngine, cache: StaticKVCache, pipe: LogitsPipeline,
                 prompts: list[list[int]], limits: list[int], *, seed: int, width: int,
                 greedy: bool, stop_ids: set[int], progress, seeds=None):
        self.engine, self.cache, self.pipe = engine, cache, pipe
        self.prompts, self.limits = prompts, limits
        self.seed, self.width, self.greedy = seed, width, greedy
        self.seeds = None if seeds is None else torch.tensor(
            [int(s) for s in seeds], dtype=torch.long, device=engine.device)
        self.stop_ids, self.progress = stop_ids, progress
        self.dev = engine.device
        self.vocab = engine.decoder.vocab
        self.slots = cache.slots
        self.max_units = self.slots // width
        s, v = self.slots, self.vocab
        self.seen = torch.zeros(s, v, dtype=torch.bool, device=self.dev) \
            if pipe.needs_seen else None
        keep_hist = pipe.needs_history or width > 1
        self.hist = torch.zeros(s, cache.length + 1, dtype=torch.long, device=self.dev) \
            if keep_hist else None
        self.units: list[_Unit] = []
        self.logits: torch.Tensor | None = None   # [live slots, vocab] next-token logits
        self.scores: torch.Tensor | None = None   # beam scores [units, width]
        self.decode = engine._decode_fn(cache)
        self.results: list[list[int] | None] = [None] * len(prompts)

    # ---- bookkeeping --------------------------------------------------------------------

    def _slots_of(self, u: int) -> range:
        return range(u * self.width, (u + 1) * self.width)

    def _refill(self, queue: deque[int]) -> None:
        free = self.max_units - len(self.units)
        take = [queue.popleft() for _ in range(min(free, len(queue)))]
        if not take:
            return
        base = len(self.units)
        first_slots = [(base + j) * self.width for j in range(len(take))]
        logits = self.engine.prefill(self.cache, first_slots, [self.prompts[i] for i in take])
        for j, i in enumerate(take):
            p = self.prompts[i]
            u = _Unit(i, len(p), len(p), self.limits[i])
            self.units.append(u)
            slots = self._slots_of(base + j)
            for s in slots:
                if s != slots[0]:
                    self.cache.move(s, slots[0], len(p))
                if self.seen is not None:
                    self.seen[s].zero_()
                    self.seen[s, torch.tensor(p, device=self.dev)] = True
                if self.hist is not None:
                    self.hist[s, :len(p)] = torch.tensor(p, device=self.dev)
        if self.width > 1:
            logits = logits.repeat_interleave(self.width, dim=0)
            fresh = torch.full((len(take), self.width), float("-inf"), device=self.dev)
            fresh[:, 0] = 0.0  # identical beams: only the first may expand at the first step
            self.scores = fresh if self.scores is None else torch.cat([self.scores, fresh])
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])

    def _history(self) -> torch.Tensor:
        """Each live slot's tokens so far, right-aligned (left-padded with its first token)."""
        n = len(self.units) * self.width
        lengths = torch.tensor([u.length for u in self.units for _ in range(self.width)],
                               device=self.dev)
        w = int(lengths.max())
        idx = (lengths[:, None] - w + torch.arange(w, device=self.dev)).clamp_(min=0)
        return self.hist[:n].gather(1, idx)

    def _retire(self, done: list[int]) -> None:
        """Drop finished units, moving the last live ones into their slots (the live slots
        stay a prefix, so the decode step reads the cache without copying)."""
        if not done:
            return
        gone = set(done)
        n = len(self.units)
        keep_n = n - len(gone)
        holes = [u for u in sorted(gone) if u < keep_n]
        movers = [u for u in range(keep_n, n) if u not in gone]
        order = list(range(n))
        for h, m in zip(holes, movers, strict=True):
            self.units[h] = self.units[m]
            order[h] = m
            for sd, ss in zip(self._slots_of(h), self._slots_of(m), strict=True):
                self.cache.move(sd, ss, self.units[h].length)
                if self.seen is not None:
                    self.seen[sd] = self.seen[ss]
                if self.hist is not None:
                    self.hist[sd] = self.hist[ss]
        del self.units[keep_n:]
        keep_slots = [s for u in order[:keep_n] for s in self._slots_of(u)]
        idx = torch.tensor(keep_slots, dtype=torch.long, device=self.dev)
        if self.scores is not None:
            self.scores = self.scores[torch.tensor(order[:keep_n], dtype=torch.long,
                                                   device=self.dev)]
        self._next_tok = self._next_tok[idx]
        if self.progress:
            self.progress(len(gone))

    # ---- one step -----------------------------------------------------------------------

    def _choose(self) -> None:
        """Pick the next token of every live slot from ``self.logits``; finish units."""
        n = len(self.units) * self.width
        history = self._history if self.hist is not None and self.pipe.needs_history else None
        seen = self.seen[:n] if self.seen is not None else None
        if self.width > 1:
            tok = self._beam_step(n, seen, history)
        else:
            scores = self.pipe.adjust(self.logits.float(), seen, history)
            if self.greedy:
                tok = scores.argmax(-1)
            else:
                index = torch.tensor([u.index for u in self.units], device=self.dev)
                steps = torch.tensor([len(u.out) for u in self.units], device=self.dev)
                if self.seeds is None:
                    u = counter_uniforms(self.seed, index, steps)
                else:  # each prompt as if alone: its own seed, stream 0
                    u = counter_uniforms(self.seeds[index], torch.zeros_like(index), steps)
                tok = sample_from_logits(self.pipe.warp(scores), u)
        if self.seen is not None:
            self.seen[:n].scatter_(1, tok[:, None], True)
        if self.hist is not None:
            pos = torch.tensor([u.length for u in self.units for _ in range(self.width)],
                               device=self.dev)
            self.hist[torch.arange(n, device=self.dev), pos] = tok
        self._next_tok = tok
        toks = tok.tolist() if self.width == 1 else None
        done = []
        for j, u in enumerate(self.units):
            if toks is not None:
                t = toks[j]
                if t in self.stop_ids:
                    done.append(j)
                    self.results[u.index] = u.out
                    continue
                u.out.append(t)
            else:
                u.out.append(-1)  # beam tokens live in self.hist until the unit finishes
            if len(u.out) >= u.limit:
                done.append(j)
                if toks is not None:
                    self.results[u.index] = u.out
                else:
                    # the highest score wins (first slot on a tie, as the sorted order would)
                    best = j * self.width + int(self.scores[j].argmax())
                    self.results[u.index] = \
                        self.hist[best, u.prompt_len:u.prompt_len + u.limit].tolist()
        self._retire(done)

    def _beam_step(self, n: int, seen, history) -> torch.Tensor:
        """transformers' beam search step: log-softmax, processors, best ``width`` of
        ``width × vocab`` per prompt; moves the cache and histories; returns the tokens.

        A new beam goes to its parent's slot when it is the parent's first child, so only
        the other children copy a cache row, and only past the prompt (which every beam of a
        prompt shares). Beams within a prompt therefore sit in no particular order; the best
        one is found by score when the prompt finishes.
        """
        k, v = self.width, self.vocab
        g = len(self.units)
        logp = self.pipe.adjust(self.logits.float().log_softmax(-1), seen, history)
        total = (self.scores[:, :, None] + logp.view(g, k, v)).view(g, k * v)
        top, flat = torch.topk(total, k, dim=-1)
        parents = (flat // v).tolist()
        place = []  # place[u][j]: the slot (within the prompt's k) of the j-th best new beam
        for par in parents:
            slot_of = [-1] * k
            taken = [False] * k
            for j, p in enumerate(par):
                if not taken[p]:
                    slot_of[j], taken[p] = p, True
            free = iter(i for i in range(k) if not taken[i])
            place.append([s if s >= 0 else next(free) for s in slot_of])
        perm = torch.tensor(place, device=self.dev)            # [g, k]
        inv = torch.argsort(perm, dim=-1)                      # slot -> rank
        self.scores = top.gather(1, inv)
        tok = (flat % v).gather(1, inv).view(-1)
        base = torch.arange(g, device=self.dev)[:, None] * k
        src = (base + (flat // v).gather(1, inv)).view(-1)     # parent slot of each slot
        moved = (src != torch.arange(n, device=self.dev)).nonzero().flatten()
        if moved.numel():
            dst, frm = moved, src[moved]
            lo = min(u.prompt_len for u in self.units)
            upto = max(u.length for u in self.units)
            self.cache.copy_rows(dst, frm, lo, upto)
            if self.seen is not None:
                self.seen[dst] = self.seen[frm]
            self.hist[dst, lo:upto] = self.hist[frm, lo:upto]
        return tok

    def loop(self) -> list[list[int]]:
        queue = deque(range(len(self.prompts)))
        while queue or self.units:
            self._refill(queue)
            self._choose()
            if not self.units:
                self.logits = None
                continue
            pos = [u.length for u in self.units for _ in range(self.width)]
            window = max(pos) + 1
            tok = self._next_tok[:, None]
            pos_t = torch.tensor(pos, device=self.dev)[:, None]
            self.logits = self.decode(tok, pos_t, window).float()
            for u in self.units:
                u.length += 1
        return self.results  # type: ignore[return-value]


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_version(module: torch.nn.Module) -> tuple:
    # In-place updates (optimiser steps, load_state_dict) bump a tensor's _version.
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


def engine_for(module: torch.nn.Module, *, dtype: torch.dtype | None = None,
               **kwargs) -> GenerationEngine | None:
    """The engine for ``module`` (cached; rebuilt when its weights change), or ``None`` when
    the engine does not know the architecture.

    Args:
        dtype: the dtype to decode in; default the model's own on CPU, and bfloat16 for a
            float32 model on CUDA. ``torch.bfloat16`` on a CPU with native bf16 (AVX512-BF16,
            AMX) halves the weight traffic of memory-bound decoding (a copy of the weights).
        kwargs: :class:`GenerationEngine` options (then the engine is not cached).
    """
    if not Decoder.supports(module):
        return None
    p = next(module.parameters())
    if dtype is None and p.device.type == "cuda" and p.dtype == torch.float32:
        dtype = torch.bfloat16
    version = _weights_version(module)
    hits = _ENGINES.setdefault(module, {})
    hit = hits.get(dtype)
    if hit is not None and hit[0] == version and not kwargs:
        return hit[1]
    engine = GenerationEngine(Decoder.from_module(module, dtype=dtype), **kwargs)
    if not kwargs:
        hits[dtype] = (version, engine)
    return engine
