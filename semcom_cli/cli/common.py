"""What every command shares: one-line errors, the stderr console, progress bars, parsing."""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from semcom_cli.core.errors import SemcomError, one_line

__all__ = ["console", "fail_cleanly", "interrupted", "progress_bar", "spinner", "parse_floats", "parse_names",
           "checkpoint_option", "checkpoint_folder", "device_option", "print_json", "print_out", "write_json",
           "task_list", "default_checkpoints", "checkpoint_default", "SCENES_CHECKPOINT_NAME"]

# Progress, tables and errors go to stderr so stdout stays free for piped semantic files.
# No markup: file names, task names and header fields are printed as they are ("[/x]" is not a tag).
console = Console(stderr=True, markup=False)


def fail_cleanly(fn):
    """Turn a SemcomError (and a few OS errors) into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SemcomError as err:
            print(f"semcom: error: {err}", file=sys.stderr)
            raise typer.Exit(2)
        except OSError as err:  # a file the command could not read or write
            where = f"{err.filename}: " if err.filename else ""
            print(f"semcom: error: {one_line(f'{where}{err.strerror or err}')}", file=sys.stderr)
            raise typer.Exit(2)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (core.processes.Terminated): cleanup has run
            raise typer.Exit(interrupted(err))
        finally:
            from semcom_cli.core.outputs import release_claims

            release_claims()  # the outputs this command was writing are free for the next one

    return wrapper


def interrupted(err: KeyboardInterrupt) -> int:
    """Say how the command was stopped; the exit code for it (130: Ctrl-C, 143: SIGTERM)."""
    from semcom_cli.core.processes import Terminated

    terminated = isinstance(err, Terminated)
    print(f"semcom: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    return 143 if terminated else 130


@contextmanager
def progress_bar(description: str, total: int, show: bool = True):
    """Yields update(done, total, info) for a rich progress bar on stderr; with ``show`` false
    (the other processes under torchrun) an update that does nothing."""
    if not show:
        yield lambda *args, **kwargs: None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        task = progress.add_task(description, total=total, info="")

        def update(done: int, total_: int | None = None, info: str = "") -> None:
            progress.update(task, completed=done, total=total_ or total, info=info)

        yield update


@contextmanager
def spinner(message: str):
    with console.status(message, spinner="dots"):
        yield lambda text: console.log(text)


def parse_floats(text: str) -> list[float]:
    """A comma list of SNRs in dB, each finite."""
    from semcom_cli.channel.base import check_snr

    values = [v.strip() for v in str(text).split(",") if v.strip()]
    if not values:
        raise SemcomError("SNR needs at least one value")
    return [check_snr(v) for v in values]


def parse_names(text: str) -> list[str]:
    return [v.strip() for v in str(text).split(",") if v.strip()]


# Help texts are built when the command line loads: they name the reconstruct checkpoint's folder here instead
# of importing semcom_cli.reconstruct.model (torch) for its SCENES_CHECKPOINT_NAME (a test keeps the two equal).
SCENES_CHECKPOINT_NAME = "semcom-scenes"


def task_list(where=None) -> str:
    """The registered tasks' names (those whose task passes ``where``) for a help text, so a task registered
    later is listed with nothing else to edit."""
    from semcom_cli.tasks import TASKS

    return ", ".join(TASKS.names(where))


def default_checkpoints() -> dict[str, list[str]]:
    """The shipped checkpoint (folder name) a command reads for each registered task when no --checkpoint
    is given, with the tasks that read it: a task whose receiver gives an image (reconstruct) is served by
    the reconstruct checkpoint, as encode and decode route it; every other task by the LLM checkpoint."""
    from semcom_cli.core.resources import DEFAULT_CHECKPOINT_NAME
    from semcom_cli.tasks import TASKS

    out: dict[str, list[str]] = {DEFAULT_CHECKPOINT_NAME: []}
    for name, task in TASKS.items():
        out.setdefault(SCENES_CHECKPOINT_NAME if task.output == "image" else DEFAULT_CHECKPOINT_NAME, []).append(name)
    return out


def checkpoint_default() -> str:
    """--checkpoint's default as help shows it, per task: "checkpoints/semcom-smollm2; task reconstruct:
    checkpoints/semcom-scenes"."""
    (main, _), *others = default_checkpoints().items()
    return "; ".join([f"checkpoints/{main}", *(f"task {', '.join(tasks)}: checkpoints/{name}"
                                               for name, tasks in others if tasks)])


def checkpoint_option(per_task: bool = False):
    """``--checkpoint``; ``per_task``: the command serves every task, so help shows each task's default."""
    from semcom_cli.core.resources import DEFAULT_CHECKPOINT_NAME

    if per_task:
        return typer.Option(None, "--checkpoint", "-c", help="Checkpoint folder; without it, the shipped one for "
                                                             "the task.", show_default=checkpoint_default())
    return typer.Option(None, "--checkpoint", "-c", help="Checkpoint folder; without it, the shipped one.",
                        show_default=f"checkpoints/{DEFAULT_CHECKPOINT_NAME}")


def checkpoint_folder(checkpoint: Path | None) -> Path:
    """The checkpoint a command reads: the one given, or the shipped one."""
    from semcom_cli.core.resources import default_checkpoint

    return checkpoint if checkpoint is not None else default_checkpoint()


def device_option():
    # a "[default: …]" written into a help text is read as rich markup and vanishes: defaults go to show_default
    return typer.Option(None, "--device", help="Where the model runs: cpu, cuda or cuda:N.",
                        show_default="the preset's; cpu")


def print_json(data) -> None:
    print_out(json.dumps(data, indent=2, sort_keys=True))


def print_out(text: str) -> None:
    """A result line on stdout; a closed or full stdout is one error line, not a traceback."""
    from semcom_cli.core.files import write_stdout

    write_stdout((text + "\n").encode())


def write_json(path: Path, data) -> None:
    from semcom_cli.core.files import write_json as write

    write(path, data)
