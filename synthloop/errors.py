"""User-facing errors.

A :class:`SynthloopError` is a problem with the user's input or environment (a bad file, a missing
model, a bad flag). The CLI prints it as one line and exits non-zero, without a traceback; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class SynthloopError(Exception):
    """An error the user can fix; its message names the file, row or field at fault.

    ``fields``: the parameter names the message mentions, as a Python or YAML user wrote
    them (``n``, ``text_field``). A front end may show them its own way — the CLI as flags
    (``--n``, ``--text-field``), in one place: :func:`flag_message`.
    """

    def __init__(self, message: str = "", *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class InputError(SynthloopError):
    """Malformed or unusable input data (file, row, field)."""


class ConfigError(SynthloopError):
    """A bad option, flag or configuration value."""


class ModelNotFoundError(SynthloopError):
    """A model that was asked for is not installed or not readable."""


def flag_text(text: str, fields: tuple[str, ...]) -> str:
    """``text`` with each of ``fields`` (its first whole-word use) written as a CLI flag:
    ``n must be ≥ 1`` → ``--n must be ≥ 1``; a nested field is the flag of its last part
    (``decoding.temperature`` → ``--temperature``). The one place fields become flags."""
    import re

    for name in fields:
        flag = "--" + name.rsplit(".", 1)[-1].replace("_", "-")
        text = re.sub(rf"(?<![-\w'\"/.]){re.escape(name)}(?![\w/-])", flag, text, count=1)
    return text


def flag_message(error: SynthloopError) -> str:
    """The error's message with the fields it names written as CLI flags
    (:func:`flag_text`)."""
    return flag_text(str(error), getattr(error, "fields", ()))

