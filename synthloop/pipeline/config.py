"""Pipeline configuration: a YAML file validated into a :class:`PipelineConfig` and its steps.

```yaml
name: austen-continuations
seed: 0
input: seeds.jsonl            # or: taxonomy: taxonomy/   (paths relative to this file)
shard_size: 16
executor: local               # or ray
workers: 1
steps:
  - type: generate
    backend: {model: smollm2-135m}
    template: "Continue this passage.\\n\\n{{ text }}"
  - type: quality
  - type: minhash-dedup
    threshold: 0.8
  - type: mix
    policy: real-share:0.5
```

Errors name the file, the step (index and type) and the field. Loading a YAML file and the
shipped step types are :mod:`synthloop.catalog`'s; this module knows only registered types.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from synthloop.configs import Config, config_error
from synthloop.errors import ConfigError
from synthloop.pipeline.step import STEP_TYPES, Step


class PipelineConfig(Config):
    """Everything a run needs except where to write it."""

    name: str = "pipeline"
    seed: int = 0
    input: str | None = None
    taxonomy: str | None = None
    shard_size: int = Field(64, ge=1, le=10_000_000)
    executor: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1, le=1024)
    steps: list[dict] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_input(self):
        if (self.input is None) == (self.taxonomy is None):
            raise ValueError("give exactly one of 'input' (a dataset) and 'taxonomy' (a folder)")
        return self


def validate_steps(raw_steps: list[dict], source: str = "<config>") -> list[Step]:
    """Validate step mappings (``type`` plus parameters) into Step objects of the types
    registered so far (:func:`synthloop.pipeline.step.register`; the shipped ones are
    registered by :mod:`synthloop.catalog`)."""
    steps = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, dict) or "type" not in raw:
            raise ConfigError(f"{source}: steps[{i}]: a step is a mapping with a 'type' field")
        params = dict(raw)
        kind = params.pop("type")
        cls = STEP_TYPES.get(kind)
        if cls is None:
            raise ConfigError(f"{source}: steps[{i}]: unknown step type '{kind}' (known: "
                              f"{', '.join(sorted(STEP_TYPES))})")
        try:
            steps.append(cls.model_validate(params))
        except ValidationError as e:
            raise config_error(e, f"{source}: steps[{i}] ({kind})") from None
        except ConfigError as e:
            raise ConfigError(f"{source}: steps[{i}] ({kind}): {e}") from None
    labels = [s.label for s in steps]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{source}: two steps are called '{label}'; give one a 'name'")
    return steps


def fingerprint(cfg: PipelineConfig, steps: list[Step]) -> str:
    """Hash of what determines a run's output: input, seed, sharding and every step."""
    d = {"input": cfg.input, "taxonomy": cfg.taxonomy, "seed": cfg.seed,
         "shard_size": cfg.shard_size, "steps": [s.fingerprint() for s in steps]}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()
