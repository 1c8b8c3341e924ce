"""Command line: one thin module per command group over the library's public functions.

``synthloop`` (the console script) is :func:`main`; ``python -m synthloop.cli`` runs it too.
Importing a group's module registers its commands; the order here is ``--help``'s.
"""
# isort: skip_file

from synthloop.cli.app import app, console
from synthloop.cli import collapse  # noqa: F401
from synthloop.cli import selfplay  # noqa: F401
from synthloop.cli import audit  # noqa: F401
from synthloop.cli import monitor  # noqa: F401
from synthloop.cli import pipeline  # noqa: F401
from synthloop.cli import poison  # noqa: F401
from synthloop.cli import compliance  # noqa: F401
from synthloop import __version__


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()


__all__ = ["app", "main"]
