"""Ctrl-C anywhere in a command, start-up included, ends it with status 130 and one line.

Each ``__main__`` calls ``install(name)`` before its heavy imports. A KeyboardInterrupt
that no code catches (during imports, a build, a handshake, a report) would otherwise
print a traceback and kill the interpreter by SIGINT (status -2 to a parent). The hook
prints one line, runs the atexit handlers (weakref finalizers among them: the emulator's
QEMU is stopped there), and exits 130. A KeyboardInterrupt raised where Python cannot
propagate it (a weakref callback of the import machinery, a ``__del__``) would only be
reported as "Exception ignored" and the command would run on; the unraisable hook ends
those the same way. And C code that runs Python code and clears whatever it raised (a
dictionary lookup's ``__eq__``, a C-level hasattr) can drop the KeyboardInterrupt itself:
a full CI run once trained to the end through a Ctrl-C sent during set-up. So the handler
also records the signal, and ``check`` (called where a command moves to its next phase,
and by ``run`` when the command returns) ends a command whose Ctrl-C was dropped. Last,
a command that got a Ctrl-C never leaves through the interpreter's own shutdown: CPython
marks a KeyboardInterrupt raised in code that C ran through PyRun_String (Ray's core
does) as unhandled even once it was caught, and then ends a ``python -m`` process by
SIGINT whatever its exit status - status -2 to a parent, as seen under load from train
at start-up and from hil. This module imports nothing heavy, so it is cheap to import
first.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

EXIT_STATUS = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C

_received = False


def _on_sigint(signum, frame) -> None:
    global _received
    _received = True
    raise KeyboardInterrupt


def received() -> bool:
    """Whether a Ctrl-C reached this process through ``install``'s handler."""
    return _received


def check(name: str, why: str = "") -> None:
    """End the command as ``interrupted`` would if a Ctrl-C came and was dropped."""
    if _received:
        interrupted(name, why)


def install(name: str) -> None:
    # A runner that ignores SIGINT (a background job) keeps it ignored.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)

    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        interrupted(name)

    sys.excepthook = hook

    previous_unraisable = sys.unraisablehook

    def unraisable(info) -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            interrupted(name)
        previous_unraisable(info)

    sys.unraisablehook = unraisable


def interrupted(name: str, why: str = "") -> None:
    """Say so in one line (``why`` appended), clean up, exit 130 (never returns)."""
    try:
        print(f"{name}: interrupted{why}", file=sys.stderr, flush=True)
    except (OSError, ValueError, KeyboardInterrupt):
        pass
    _exit_now(EXIT_STATUS)


def _exit_now(status: int) -> None:
    """Flush, run the atexit handlers, and exit with ``status`` past the interpreter's
    shutdown (never returns)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, KeyboardInterrupt):
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:  # a second Ctrl-C during clean-up: still exit
        pass
    os._exit(status)


def run(main, name: str) -> None:
    """``sys.exit(main())``, with a KeyboardInterrupt turned into one line and 130."""
    install(name)
    try:
        status = main()
    except KeyboardInterrupt:
        interrupted(name)
    if _received:
        if status != EXIT_STATUS:  # the Ctrl-C was dropped and the command ran on
            interrupted(name)
        _exit_now(status)
    sys.exit(status)
