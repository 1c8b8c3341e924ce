"""The table synthesizers by name (:func:`table_synthesizer`) and the pipeline steps that fit
one on the whole input and sample rows: ``table-synth`` (any model, ``auto`` by default) and
``table-copula`` (the Gaussian copula or SDV: the fast baseline, under the name older pipelines
use)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
from pydantic import Field

from synthloop.errors import ConfigError
from synthloop.generate.autoregressive import AutoregressiveTable
from synthloop.generate.copula import GaussianCopula, SDVSynthesizer, content_frame
from synthloop.pipeline.step import Step, StepContext, StepOutput, register
from synthloop.records.schema import Generator, synthetic_records

TABLE_MODELS = ("auto", "autoregressive", "gaussian-copula", "sdv:NAME")
AUTO_COPULA_BELOW = 100  # rows: fewer are too few to train and validate a network on


def resolve_table_model(name: str, n_rows: int, *, private: bool = False) -> str:
    """The synthesizer ``name`` stands for on a table of ``n_rows`` rows: ``auto`` is
    ``gaussian-copula`` below :data:`AUTO_COPULA_BELOW` rows, else ``autoregressive``
    (measured better or equal on every benchmark table: docs/tables.md), and always
    ``autoregressive`` when ``private`` (an ε is given: only it has a DP fit); other names
    are themselves, checked."""
    if name == "auto":
        return "gaussian-copula" if n_rows < AUTO_COPULA_BELOW and not private \
            else "autoregressive"
    if name in ("autoregressive", "gaussian-copula") or (
            name.startswith("sdv:") and len(name) > 4):
        return name
    raise ConfigError(f"unknown table model '{name}' (one of {', '.join(TABLE_MODELS)})",
                      fields=("model",))


def table_synthesizer(name: str, n_rows: int, *, column_types: dict[str, str] | None = None,
                      constraints: list[str] = (), fixed_combinations: list[list[str]] = (),
                      **options):
    """An unfitted table synthesizer: ``name`` one of :data:`TABLE_MODELS`
    (:func:`resolve_table_model`), for a table of ``n_rows`` rows. ``options`` go to
    :class:`~synthloop.generate.autoregressive.AutoregressiveTable` (``max_seconds``,
    ``n_bins``, ...); the copula and SDV take none, nor fixed combinations."""
    name = resolve_table_model(name, n_rows, private=options.get("epsilon") is not None)
    if name == "autoregressive":
        return AutoregressiveTable(column_types, constraints,
                                   fixed_combinations=fixed_combinations, **options)
    extra = sorted(options) + (["fixed_combinations"] if fixed_combinations else [])
    if extra:
        raise ConfigError(f"model {name}: option '{extra[0]}' is only for the autoregressive "
                          f"model", fields=(extra[0],))
    if name == "gaussian-copula":
        return GaussianCopula(column_types, constraints)
    if constraints:
        raise ConfigError(f"model {name}: constraints are only for synthloop's models",
                          fields=("constraints",))
    return SDVSynthesizer(name.split(":", 1)[1])


@register
class TableSynth(Step):
    """Fit a table synthesizer on the whole input and sample ``n`` rows (default: as many as
    the input). ``engine``: ``auto`` (default), ``autoregressive``, ``gaussian-copula`` or
    ``sdv:NAME`` (:func:`table_synthesizer`); ``rebalance`` ``{column: {category: share}}`` and
    ``options`` (:class:`~synthloop.generate.autoregressive.AutoregressiveTable` parameters)
    are for the autoregressive model. Each row's parent is the fingerprint of the dataset it
    was fitted on (``dataset:<sha256 of sorted ids>``); the generator's name is the model that
    ran (``auto`` resolved)."""

    kind = "table-synth"
    scope = "global"

    n: int | None = Field(None, ge=1)
    engine: str = "auto"
    column_types: dict[str, str] = {}
    constraints: list[str] = []
    fixed_combinations: list[list[str]] = []
    rebalance: dict[str, dict[str, float]] = {}
    options: dict[str, float | int | str | dict | None] = {}

    def preflight(self, base_dir) -> None:
        try:  # engine and options checked before any data is read (an ε ≤ 0, a typo)
            table_synthesizer(self.engine, AUTO_COPULA_BELOW, column_types=self.column_types,
                              constraints=self.constraints,
                              fixed_combinations=self.fixed_combinations, **self.options)
        except ConfigError as e:
            raise ConfigError(f"step {self.label}: {e}") from None
        except TypeError as e:
            raise ConfigError(f"step {self.label}: options: {e}") from None

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        df = content_frame(table)
        try:
            model = table_synthesizer(self.engine, len(df), column_types=self.column_types,
                                      constraints=self.constraints,
                                      fixed_combinations=self.fixed_combinations,
                                      **self.options)
        except TypeError as e:  # an unknown option name
            raise ConfigError(f"step {self.label}: options: {e}") from None
        name = resolve_table_model(self.engine, len(df),
                                   private=self.options.get("epsilon") is not None)
        if self.rebalance and name != "autoregressive":
            raise ConfigError(f"step {self.label}: rebalance needs the autoregressive model "
                              f"(engine is {name})")
        if name == "autoregressive":
            model.fit(df, seed=ctx.seed, progress=ctx.progress)
        else:
            model.fit(df, seed=ctx.seed)
        n = self.n or len(df)
        sample = (model.sample(n, seed=ctx.seed + 1, rebalance=self.rebalance) if self.rebalance
                  else model.sample(n, seed=ctx.seed + 1))
        ids = sorted(table.column("id").to_pylist())
        parent = "dataset:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()
        depth = int(max(table.column("generation").to_pylist(), default=0)) + 1
        params = {"constraints": self.constraints, "rows_fitted": len(df)}
        if name == "autoregressive":
            params.update(fixed_combinations=self.fixed_combinations,
                          rebalance=self.rebalance, epochs=model.epochs,
                          val_loss=None if model.val_loss is None else round(model.val_loss, 6))
            if model.privacy is not None:  # ε and δ travel with every record
                params["differential_privacy"] = model.privacy.to_dict()
        gen = Generator(name, model.fingerprint(), params, ctx.seed)
        content = pa.Table.from_pandas(sample, preserve_index=False)
        return StepOutput(synthetic_records(content, generator=gen, parents=[[parent]] * n,
                                            generations=[depth] * n, run_id=ctx.run_id,
                                            created_at=ctx.created_at))


@register
class TableCopula(TableSynth):
    """``table-synth`` with the Gaussian copula (or ``sdv:NAME``) as its engine: the fast
    baseline, kept under its own name for the pipelines that name it."""

    kind = "table-copula"
    engine: str = "gaussian-copula"

    def preflight(self, base_dir) -> None:
        if not (self.engine == "gaussian-copula" or self.engine.startswith("sdv:")):
            raise ConfigError(f"step {self.label}: unknown engine '{self.engine}' (use "
                              f"gaussian-copula or sdv:NAME; other models: step table-synth)")
        super().preflight(base_dir)
