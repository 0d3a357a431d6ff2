"""Ctrl-C (or SIGTERM) stops a run between two steps, never in the middle of one.

A KeyboardInterrupt raised inside an update or a sim step would leave the run's state
half-advanced (an environment stepped but not counted, an update half-applied), and a
checkpoint of that state would not resume exactly. So the first signal only asks the loop
to stop; the loop saves at the next step boundary. A second one stops at once, leaving the
last complete checkpoint on disk as it was.
"""

from __future__ import annotations

import signal
import sys
import threading

from train import sigint

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager; ``requested`` turns true at the first SIGINT/SIGTERM."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping after this step and saving (press Ctrl-C again to stop at once, "
            "without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        self.requested = sigint.received()  # a Ctrl-C during set-up that was dropped
        if threading.current_thread() is threading.main_thread():  # signals reach it only
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
