"""Where the command line writes: results on stdout (a table, or JSON with --json), everything else
(logs, progress, errors) on stderr, so `aurl preprocess --json | jq` always gets clean JSON.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aurl.errors import DataError

ProgressCallback = Callable[[int, int], None]
_REFRESH_S = 0.1  # redraw the bar at most this often: rendering is not free at 1000 files/s


@dataclass
class _Session:
    """Switches the global options set for one invocation, and its stderr console.

    Logs and progress bars share that one console, so that a log line printed while a bar is
    shown appears above the bar instead of through it.
    """

    verbose: bool = False
    quiet: bool = False
    stderr: Console = field(default_factory=lambda: Console(stderr=True))


session = _Session()


class PartialSuccess(Exception):
    """Raised by a command after printing a result in which some inputs were rejected (exit code 3).

    The message is one line saying how many, for stderr; the result itself lists each with its reason.
    """

    exit_code = 3


def configure(*, verbose: bool, quiet: bool) -> None:
    """Set the global options and route aurl's logging to stderr through rich.

    `verbose` shows debug messages (and tracebacks of errors), `quiet` only warnings and errors,
    and no progress bars.
    """
    session.verbose, session.quiet = verbose, quiet
    logger = logging.getLogger("aurl")
    for handler in [h for h in logger.handlers if getattr(h, "_aurl_cli", False)]:
        logger.removeHandler(handler)
    handler = RichHandler(console=session.stderr, show_time=False, show_path=False, markup=False)
    handler._aurl_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def emit(result: BaseModel, *, as_json: bool) -> None:
    """Print a `*Result`: its JSON alone with `as_json`, else tables for a person.

    Scalar fields form one two-column table labelled by each field's title; a list of models (such
    as the rejected files) gets a table of its own, one row per item.
    """
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
        sys.stdout.flush()
        return
    console = Console(soft_wrap=False)
    summary = Table(title=_title(result), show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    lists: list[tuple[str, list[BaseModel]]] = []
    for name, info in type(result).model_fields.items():
        value = getattr(result, name)
        label = info.title or name.replace("_", " ")
        if isinstance(value, list) and all(isinstance(item, BaseModel) for item in value):
            lists.append((label, value))
        else:
            summary.add_row(label, _cell(value))
    console.print(summary)
    for label, items in lists:
        if items:
            console.print(_item_table(label, items))


def _title(result: BaseModel) -> str:
    return type(result).__name__.removesuffix("Result").lower() or "result"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _item_table(label: str, items: list[BaseModel]) -> Table:
    table = Table(title=f"{label} ({len(items)})", title_justify="left")
    columns = list(type(items[0]).model_fields)
    for column in columns:
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*(_cell(getattr(item, column)) for column in columns))
    return table


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback]:
    """A progress bar on stderr, drawn only on a terminal and not with --quiet.

    Yields:
        `on_progress(done, total)` to pass to a library function.

    The bar redraws from the callback itself, never from a background thread, so a library
    function may fork worker processes while the bar is shown.
    """
    console = session.stderr
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        transient=True,
        redirect_stdout=False,  # stdout is for results only
        redirect_stderr=False,
        disable=session.quiet or not console.is_terminal,
    )
    with progress:
        task = progress.add_task(label, total=None)
        last = 0.0

        def on_progress(done: int, total: int) -> None:
            nonlocal last
            progress.update(task, completed=done, total=total)
            now = time.monotonic()
            if now - last >= _REFRESH_S or done == total:
                progress.refresh()
                last = now

        yield on_progress


def conclude(*, ok: int, rejected: int, noun: str = "files") -> None:
    """After a result is printed: raise what makes the command exit 1 (none ok) or 3 (some rejected).

    Raises:
        DataError: nothing could be processed.
        PartialSuccess: some inputs were rejected.
    """
    if rejected and not ok:
        raise DataError(f"none of the {rejected} {noun} could be read; each is listed with its reason")
    if rejected:
        raise PartialSuccess(f"{rejected} of {ok + rejected} {noun} rejected; each is listed with its reason")
