"""How the pipeline talks to a person: a small interface with a rich implementation and a silent one.

The pipeline only calls :class:`UI` methods, so tests and ``--json`` runs stay quiet and the terminal
rendering lives in one place.

Every string handed to the terminal is wrapped in :func:`plain` (a ``rich.text.Text``): rich never reads
markup (``[gpu]`` in ``pip install 'weightpack[gpu]'``, ``[inputs]``) or emoji codes in it, and printed with
``soft_wrap`` so a long message is not broken by inserted newlines. Styling is applied to whole spans.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def plain(text: object, style: str = "") -> Text:
    """``text`` as rich shows it: exactly these characters (no markup, no emoji codes), in ``style``."""
    from rich.text import Text

    return Text(str(text), style=style)


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

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        from rich.text import Text

        with self.console.status(plain(description, "bold")):
            try:
                yield
            except BaseException:
                self._line(Text.assemble(("✗", "red"), " ", plain(description)))
                raise
        self._line(Text.assemble(("✓", "green"), " ", plain(description)))

    def info(self, message: str) -> None:
        self._line(plain(message))

    def warn(self, message: str) -> None:
        from rich.text import Text

        self._line(Text.assemble(("warning:", "yellow"), " ", plain(message)))

    def _line(self, text: Text) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def download_progress(self, description: str, done: int, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                TaskProgressColumn(),
                TimeRemainingColumn(),
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
