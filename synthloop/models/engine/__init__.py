"""The generation engine: static KV cache, batched chunked prefill, continuous refill,
sampling/greedy/beam search, CUDA-graph decode on GPUs."""

from synthloop.models.engine.decoder import Decoder
from synthloop.models.engine.engine import GenerationEngine, engine_for

__all__ = ["Decoder", "GenerationEngine", "engine_for"]
