"""The scan as a pipeline step: flagged records go to the exclusions with their reasons."""

from __future__ import annotations

from synthloop.pipeline.step import Step, StepContext, StepOutput, register, split, text_column
from synthloop.poison.scan import ScanConfig, scan


@register
class PoisonScan(Step):
    """Drop records the poisoning scan flags (``field``, or ``prompt_field`` + ``field`` for
    instruction data); the reasons name the detector and, for triggers, the trigger."""

    kind = "poison-scan"
    scope = "global"

    field: str = "text"
    prompt_field: str | None = None
    embeddings: bool = False

    def apply(self, table, ctx: StepContext) -> StepOutput:
        if table.num_rows == 0:
            return StepOutput(table)
        texts = text_column(table, self.field, self.label)
        prompts = text_column(table, self.prompt_field, self.label) if self.prompt_field \
            else None
        res = scan(texts, prompts=prompts, cfg=ScanConfig(embeddings=self.embeddings,
                                                          seed=ctx.seed % 2**31))
        return split(table, ["poison: " + "; ".join(r) if r else None for r in res.reasons])
