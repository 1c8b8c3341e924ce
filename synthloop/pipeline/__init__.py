"""Pipelines: Steps over shards of records, executors (local, Ray), checkpoints, stats.

    from synthloop.catalog import load_config     # the shipped step types, YAML loading
    from synthloop.pipeline import run_pipeline
    cfg, steps, base = load_config("examples/pipeline.yaml")
    result = run_pipeline(cfg, steps, "runs/example", base_dir=base)
    result.summary["synthetic_share"]
"""

from synthloop.pipeline.config import PipelineConfig, validate_steps
from synthloop.pipeline.folder import RunFolder, dataset_lineage
from synthloop.pipeline.runner import RunResult, run_pipeline
from synthloop.pipeline.step import Filter, Scorer, Step, StepContext, StepOutput, register

__all__ = ["Filter", "PipelineConfig", "RunFolder", "RunResult", "Scorer", "Step", "StepContext",
           "StepOutput", "dataset_lineage", "register", "run_pipeline", "validate_steps"]
