"""CUDA-graph capture of the decode step.

A decode step of a small model is a few hundred tiny kernels; launched one by one from Python
the GPU idles between them. Captured once as a CUDA graph, the step replays with one launch.
Graphs are captured lazily per (batch bucket, key-window bucket): batches round up to a power
of two, windows up to a multiple of ``WINDOW_STEP``, so a run captures a handful of graphs.
Rows that only pad a bucket read and write the cache's scratch position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

WINDOW_STEP = 128


def _bucket(n: int, cap: int) -> int:
    b = 1
    while b < n:
        b *= 2
    return min(b, cap)


class _Captured:
    """Static input buffers and the graph that reads them. Off CUDA there is no graph: the
    same static-shape step runs eagerly on the same buffers (what CPU tests exercise)."""

    def __init__(self, batch: int, window: int, device: torch.device):
        self.tok = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.window = window
        self.graph = torch.cuda.CUDAGraph() if device.type == "cuda" else None
        self.out: torch.Tensor | None = None

    def replay(self, step) -> torch.Tensor:
        if self.graph is None:
            self.out = step(self.tok, self.pos, self.window)
        else:
            self.graph.replay()
        return self.out


class GraphedDecode:
    """Replays ``step(tok [b, 1], pos [b, 1], window) -> logits [b, vocab]`` from captured
    graphs. ``slots`` caps the batch; ``scratch`` is the cache position padding rows use;
    ``max_window`` caps the key window."""

    def __init__(self, step: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], *,
                 slots: int, scratch: int, max_window: int, device: torch.device):
        self.step = step
        self.slots = slots
        self.scratch = scratch
        self.max_window = max_window
        self.device = device
        self.pool = torch.cuda.graph_pool_handle() if device.type == "cuda" else None
        self.graphs: dict[tuple[int, int], _Captured] = {}

    def _capture(self, batch: int, window: int) -> _Captured:
        c = _Captured(batch, window, self.device)
        c.pos.fill_(self.scratch)
        if c.graph is None:
            return c
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (allocator, kernel choice)
            for _ in range(2):
                self.step(c.tok, c.pos, window)
        torch.cuda.current_stream(self.device).wait_stream(side)
        with torch.cuda.graph(c.graph, pool=self.pool):
            c.out = self.step(c.tok, c.pos, window)
        return c

    def __call__(self, tok: torch.Tensor, pos: torch.Tensor, window: int) -> torch.Tensor:
        n = tok.shape[0]
        batch = _bucket(n, self.slots)
        win = min(self.max_window, -(-window // WINDOW_STEP) * WINDOW_STEP)
        key = (batch, win)
        c = self.graphs.get(key)
        if c is None:
            c = self.graphs[key] = self._capture(batch, win)
        c.tok[:n].copy_(tok)
        c.pos[:n].copy_(pos)
        if n < batch:
            c.pos[n:].fill_(self.scratch)
        # a copy: the next replay overwrites the graph's static output
        return c.replay(self.step)[:n].clone()
