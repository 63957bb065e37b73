"""How the pipeline talks to a person: a small interface with a rich implementation and a silent one.

The pipeline only calls :class:`UI` methods, so tests and ``--json`` runs stay quiet and the terminal
rendering lives in one place.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


class UI:
    """Silent base: every method is a no-op. Subclasses render."""

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        yield

    def info(self, message: str) -> None:
        return None

    def warn(self, message: str) -> None:
        return None

    def download_progress(self, description: str, done: int, total: int | None) -> None:
        return None


class RichUI(UI):
    """Spinners per stage, a byte progress bar for downloads, and coloured results, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        with self.console.status(f"[bold]{description}[/bold]"):
            try:
                yield
            except BaseException:
                self.console.print(f"[red]✗[/red] {description}")
                raise
        self.console.print(f"[green]✓[/green] {description}")

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    def download_progress(self, description: str, done: int, total: int | None) -> None:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        if self._progress is None:
            self._progress = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        if description not in self._tasks:
            self._tasks[description] = self._progress.add_task(description, total=total)
        self._progress.update(self._tasks[description], completed=done, total=total)
        if total is not None and done >= total:
            self._progress.remove_task(self._tasks.pop(description))
            if not self._tasks:
                self._progress.stop()
                self._progress = None


def make_ui(quiet: bool) -> UI:
    """The rich UI on a terminal or CI log, the silent one for ``--json`` / ``--quiet``."""
    return UI() if quiet or not sys.stderr else RichUI()
