"""The root ``semcom`` command: combines one sub-command per file."""

from __future__ import annotations

import typer

from .. import __version__
from . import align, decode, encode, evaluate, finetune, info, transmit

app = typer.Typer(
    name="semcom",
    help="Semantic communication with an LLM over simulated wireless channels.\n\n"
    "Stages chain through .safetensors files or pipes ('-'): encode → transmit → decode.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (align, finetune, encode, transmit, decode, evaluate, info):
    app.command(name=module.NAME, help=module.__doc__)(module.run)


def _version(value: bool):
    if value:
        print(f"semcom {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """Semantic communication with an LLM over simulated wireless channels."""


def main() -> None:
    app()
