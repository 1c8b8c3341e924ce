"""User-facing errors.

A :class:`SynthloopError` is a problem with the user's input or environment (a bad file, a missing
model, a bad flag). The CLI prints it as one line and exits non-zero, without a traceback; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class SynthloopError(Exception):
    """An error the user can fix; its message names the file, row or field at fault."""


class InputError(SynthloopError):
    """Malformed or unusable input data (file, row, field)."""


class ConfigError(SynthloopError):
    """A bad option, flag or configuration value."""


class ModelNotFoundError(SynthloopError):
    """A model that was asked for is not installed or not readable."""
