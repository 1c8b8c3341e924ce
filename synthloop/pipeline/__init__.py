"""Pipelines: Steps over shards of records, executors (local, Ray), checkpoints, stats.

    from synthloop.pipeline import load_config, run_pipeline
    cfg, steps, base = load_config("examples/pipeline.yaml")
    result = run_pipeline(cfg, steps, "runs/example", base_dir=base)
    result.summary["synthetic_share"]
"""

from synthloop.pipeline.config import PipelineConfig, build_steps, load_config, parse_config
from synthloop.pipeline.runner import RunResult, run_pipeline, summarize
from synthloop.pipeline.step import Filter, Scorer, Step, StepContext, StepOutput, register

__all__ = ["Filter", "PipelineConfig", "RunResult", "Scorer", "Step", "StepContext",
           "StepOutput", "build_steps", "load_config", "parse_config", "register",
           "run_pipeline", "summarize"]
