"""One configuration style for the whole library.

Every configuration object (decoding and training parameters, the audits, the collapse lab,
the poisoning scan, self-play, the sandbox's limits, watermark specs, pipeline steps) is a
pydantic model that forbids unknown fields and is frozen. A bad value raises one
:class:`~synthloop.errors.ConfigError` whose message names the field as a Python or YAML user
wrote it (``decoding.temperature: must be > 0``) and whose ``fields`` let a front end show the
field its own way (the CLI as a flag, in :func:`synthloop.errors.flag_message`).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic._internal._model_construction import ModelMetaclass

from synthloop.errors import ConfigError


def field_path(loc: tuple) -> str:
    """A pydantic error location as a dotted path (``steps.0.sampling.top_p``)."""
    return ".".join(str(x) for x in loc) or "(top level)"


def _message(err: dict) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err.get("type") not in ("missing", "extra_forbidden") and err["loc"] \
            and "input" in err:
        shown = repr(err["input"])
        msg = f"{msg} (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    return msg


def config_error(error: ValidationError, where: str = "") -> ConfigError:
    """The first problem of a pydantic ``ValidationError`` as one :class:`ConfigError` line,
    ``WHERE: field.path: message``, with the field path in ``fields``."""
    err = error.errors()[0]
    prefix = f"{where}: " if where else ""
    if not err["loc"]:  # a check across fields names them itself
        return ConfigError(f"{prefix}{_message(err)}")
    path = field_path(err["loc"])
    # a field in a file is shown as written there; a bare one may be a front end's option
    return ConfigError(f"{prefix}{path}: {_message(err)}", fields=() if where else (path,))


class _ConfigMeta(ModelMetaclass):
    """Turns a failed construction ``Cls(**values)`` into one :class:`ConfigError` (nested
    configs are validated by pydantic, not constructed, so their errors keep their path)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as e:
            raise config_error(e) from None


class Config(BaseModel, metaclass=_ConfigMeta):
    """Base of every synthloop configuration: unknown fields are errors, instances are
    frozen, and a bad value is a :class:`ConfigError` naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _partial_nested(cls, data: Any) -> Any:
        """A mapping given for a field whose default is itself a config fills only the
        fields it names; the rest keep that default's values (so ``sampling: {top_p: 0.9}``
        keeps the step's own temperature)."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            spec = cls.model_fields.get(name)
            if spec is not None and isinstance(value, dict) and isinstance(spec.default, Config):
                out[name] = {**spec.default.model_dump(), **value}
        return out

    @classmethod
    def from_dict(cls, data: object, where: str = "") -> Self:
        """Validate a mapping (from YAML or JSON); errors name ``where`` and the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where or cls.__name__}: expected a mapping, "
                              f"got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise config_error(e, where or cls.__name__) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what ``from_dict`` reads back)."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied."""
        return type(self)(**{**self.model_dump(), **changes})
