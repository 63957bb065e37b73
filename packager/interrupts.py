"""Ctrl-C ends ``pack`` with exit code 130 and SIGTERM with 143 (128 + the signal, the shell's convention),
however many times either comes.

The first signal is Python's KeyboardInterrupt (SIGTERM's is its subclass :class:`Terminated`): every
cleanup written for Ctrl-C runs (workers killed, temporaries removed, the lock released, finished outputs
intact) and the CLI's guard returns the signal's code. A second one, while that cleanup or the interpreter's
shutdown runs (joining worker processes), used to end the process by the signal itself; here it ends it at
once with the first one's code. SIGTERM is what ``kill``, ``timeout``, systemd and container runtimes send:
without a handler it ended pack by the signal, skipping all of that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
HANDLED = (signal.SIGINT, signal.SIGTERM)
REDELIVER_S = 0.05
"""How long after an interrupt Python swallowed it is sent again (see :meth:`_Handlers.swallowed`)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so the same cleanup runs."""

    exit_code = EXIT_TERMINATED


def exit_code(stop: KeyboardInterrupt) -> int:
    """The documented code of an interrupt: 143 for SIGTERM, 130 for Ctrl-C."""
    return getattr(stop, "exit_code", EXIT_INTERRUPTED)


def describe(stop: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"


def _exit_now(code: int) -> None:
    """Flush what was printed and end the process now, without the interpreter's teardown (after an
    interrupt the user wants to stop; outputs are atomic, cleanup blocks have run, workers are killed)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class _Handlers:
    """The handlers of one run: they act only in the process that installed them (a ``--jobs`` worker
    forked meanwhile inherits them, and must die by the signal as before, its parent cleaning up)."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.first: int | None = None  # the code of the first signal received
        self.previous_hook = sys.unraisablehook

    def _not_mine(self, signum: int) -> bool:
        if os.getpid() == self.owner:
            return False
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return True

    def first_signal(self, signum: int, frame: Any) -> None:
        if self._not_mine(signum):
            return
        self.first = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
        for handled in HANDLED:
            signal.signal(handled, self.again)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def swallowed(self, unraisable: Any) -> None:
        """``sys.unraisablehook``: the interrupt was raised where Python cannot pass it on (an at-fork
        callback such as logging's lock release while the pool forks a worker, a finalizer) and would be
        lost, the run going on as if no signal had come. It is delivered again, from a thread so that it
        arrives after this hook and the callback have returned."""
        if not isinstance(unraisable.exc_value, KeyboardInterrupt) or os.getpid() != self.owner:
            self.previous_hook(unraisable)
            return
        signum = signal.SIGTERM if self.first == EXIT_TERMINATED else signal.SIGINT
        for handled in HANDLED:
            signal.signal(handled, self.first_signal)
        timer = threading.Timer(REDELIVER_S, os.kill, (self.owner, signum))
        timer.daemon = True
        timer.start()

    def again(self, signum: int, frame: Any) -> None:
        if self._not_mine(signum):
            return
        os.write(2, b"pack: interrupted again; stopped (finished zips and reports are intact)\n")
        os._exit(self.first or (EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED))


def run(body: Callable[[], int], as_program: bool) -> int:
    """``body()``'s exit code, with Ctrl-C and SIGTERM handled: the first is a KeyboardInterrupt (cleanup
    runs, the CLI's guard returns 130 or 143); a second, while that cleanup runs, ends the process at once
    with the first one's code. As the program, an interrupted run then ends without the interpreter's
    teardown, where Python has put the default handlers back and one more signal would end it by the
    signal; called in-process (tests), the caller's handlers are restored and the code returned."""
    if threading.current_thread() is not threading.main_thread():
        return body()
    handlers = _Handlers()
    previous = {signum: signal.signal(signum, handlers.first_signal) for signum in HANDLED}
    sys.unraisablehook = handlers.swallowed
    try:
        code = body()
    except KeyboardInterrupt as stop:  # outside the guard's reach (argument parsing, shell completion)
        if not as_program:
            raise
        code = exit_code(stop)
    finally:
        sys.unraisablehook = handlers.previous_hook
        for signum in HANDLED:
            signal.signal(signum, handlers.again if as_program else (previous[signum] or signal.SIG_DFL))
    if as_program and code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        _exit_now(code)
    return code
