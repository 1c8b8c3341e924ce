"""The Typer application, its consoles and the one-line error wrapper every command uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from synthloop.errors import SynthloopError, flag_message

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="synthloop: train on synthetic data without collapse.")
console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error as one red line and exit 2; Ctrl-C exits 130 with a resume hint."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SynthloopError as e:
            err_console.print(f"[bold red]error:[/] {flag_message(e)}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def write_outputs(result: Any, out: Any, json_path: Any) -> None:
    """Write ``result``'s HTML report to ``out`` and its JSON to ``json_path`` (each when
    given) and say where."""
    if out:
        result.to_html(out)
        console.print(f"report: {out}")
    if json_path:
        result.to_json(json_path)
        console.print(f"json:   {json_path}")
