"""The root ``semcom`` command: combines one sub-command per file."""

from __future__ import annotations

import typer

from semcom_cli import __version__
from semcom_cli.cli import (
    align,
    compress,
    decode,
    encode,
    evaluate,
    finetune,
    guide,
    info,
    kb,
    rate_table,
    registries,
    scenes,
    transmit,
)

app = typer.Typer(
    name="semcom",
    help="Semantic communication with an LLM over simulated wireless channels.\n\n"
    "Stages chain through .safetensors files or pipes ('-'): encode → transmit → decode.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (align, finetune, encode, transmit, decode, evaluate, rate_table, compress, scenes, guide, info,
               registries):
    app.command(name=module.NAME, help=module.__doc__)(module.run)
app.add_typer(kb.app, name=kb.NAME)


def _version(value: bool):
    if value:
        print(f"semcom {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """Semantic communication with an LLM over simulated wireless channels."""

def main() -> None:
    """Entry point: usage errors become one line too, like every other bad input."""
    import sys
    import warnings

    try:  # typer >= 0.21 carries its own parser; older releases (the ones Flower pins) use click's
        from typer.exceptions import TyperException as UsageProblem
    except ImportError:
        from click.exceptions import ClickException as UsageProblem

    from semcom_cli.cli.common import interrupted
    from semcom_cli.core.processes import handle_sigterm

    handle_sigterm()  # SIGTERM unwinds like Ctrl-C: staging removed, child process groups ended
    # Libraries' deprecation notices are for their developers, not for semcom's users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        code = app(standalone_mode=False)
    except UsageProblem as err:
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `semcom`: show the help
            print(message, file=sys.stderr)
        else:
            print(f"semcom: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        sys.exit(interrupted(err))
    _flush_stdout()
    sys.exit(code if isinstance(code, int) else 0)


def _flush_stdout() -> None:
    """Flush stdout now; if its reader is gone or it is full, say so once, and keep Python's own exit-time
    flush from printing a traceback."""
    import os
    import sys

    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as err:
        from semcom_cli.core.files import stdout_error

        print(f"semcom: error: {stdout_error(err)}", file=sys.stderr)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        sys.exit(2)
