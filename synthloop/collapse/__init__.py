"""The collapse lab: recursive training on a model's own output, per data policy."""

from synthloop.collapse.experiment import CollapseConfig, CollapseResult, run_collapse
from synthloop.curate.policies import DataPolicy, mix, parse_policies, parse_policy

__all__ = ["CollapseConfig", "CollapseResult", "DataPolicy", "mix", "parse_policies",
           "parse_policy", "run_collapse"]
