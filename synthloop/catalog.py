"""The step catalog: every pipeline step type synthloop ships, and the configuration loaders.

It stands above the pipeline and the capability rooms: importing it registers the steps of
curation (``curate``), verification, generation (``generate``) and the poisoning scan
(``poison``) with :func:`synthloop.pipeline.step.register`, so the pipeline itself stands on
``records`` alone and a new step type is added in its own room plus one line here.

    from synthloop.catalog import load_config
    from synthloop.pipeline import run_pipeline

    cfg, steps, base = load_config("examples/pipeline.yaml")
    result = run_pipeline(cfg, steps, "runs/example", base_dir=base)
"""

from __future__ import annotations

from pathlib import Path

import synthloop.curate.filters  # noqa: F401  (registers quality, dedup, mix, ... steps)
import synthloop.curate.verify  # noqa: F401  (judge, verify-* steps)
import synthloop.generate.copula  # noqa: F401  (privacy-filter)
import synthloop.generate.tables  # noqa: F401  (table-synth, table-copula)
import synthloop.generate.text  # noqa: F401  (generate, taxonomy-generate, self-instruct)
import synthloop.poison.step  # noqa: F401  (poison-scan)
from synthloop.errors import ConfigError
from synthloop.pipeline.config import PipelineConfig, validate_steps
from synthloop.pipeline.step import STEP_TYPES, Step
from synthloop.records.io import read_yaml

__all__ = ["build_steps", "load_config", "parse_config", "step_types"]


def step_types() -> dict[str, type[Step]]:
    """Every step type a configuration may name, by its ``type``."""
    return dict(sorted(STEP_TYPES.items()))


def build_steps(raw_steps: list[dict], source: str = "<config>") -> list[Step]:
    """Validate step mappings (``type`` plus parameters) into Step objects."""
    return validate_steps(raw_steps, source)


def parse_config(data: object, source: str = "<config>") -> tuple[PipelineConfig, list[Step]]:
    """Validate a configuration mapping (as loaded from YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    cfg = PipelineConfig.from_dict(data, source)
    return cfg, build_steps(cfg.steps, source)


def load_config(path: str | Path) -> tuple[PipelineConfig, list[Step], Path]:
    """Read and validate a pipeline YAML; returns the config, its steps and the folder that
    relative paths are resolved against (the YAML's folder)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    data = read_yaml(p, ConfigError)
    cfg, steps = parse_config(data, str(p))
    return cfg, steps, p.resolve().parent
