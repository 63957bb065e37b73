"""Ctrl-C ends ``pack`` with exit code 130, however many times it is pressed.

The first SIGINT is Python's KeyboardInterrupt: cleanup runs and the CLI's guard returns 130. A second one,
while that cleanup or the interpreter's shutdown runs (joining worker processes), used to end the process
by the signal itself; here it ends it at once with 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable

EXIT_INTERRUPTED = 130


def _exit_now(code: int) -> None:
    """Flush what was printed and end the process now, without the interpreter's teardown (after an
    interrupt the user wants to stop; outputs are atomic, cleanup blocks have run, workers are killed)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _stop_now(signum: int, frame: object) -> None:
    os.write(2, b"pack: interrupted again; stopped (finished zips and reports are intact)\n")
    os._exit(130)


def _first_interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, _stop_now)
    raise KeyboardInterrupt


def run(body: Callable[[], int], as_program: bool) -> int:
    """``body()``'s exit code, with Ctrl-C handled: the first is a KeyboardInterrupt (cleanup runs, the
    CLI's guard returns 130); a second, while that cleanup runs, ends the process at once with 130. As the
    program, an interrupted run then ends without the interpreter's teardown, where Python has put the
    default handler back and one more Ctrl-C would end it by the signal; called in-process (tests), the
    caller's handler is restored and the code returned."""
    if threading.current_thread() is not threading.main_thread():
        return body()
    previous = signal.signal(signal.SIGINT, _first_interrupt)
    try:
        code = body()
    except KeyboardInterrupt:  # outside the guard's reach (argument parsing, shell completion)
        if not as_program:
            raise
        code = EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, _stop_now if as_program else (previous or signal.SIG_DFL))
    if as_program and code == EXIT_INTERRUPTED:
        _exit_now(code)
    return code
