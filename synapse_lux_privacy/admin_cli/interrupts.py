"""Ctrl-C during a request whose answer the command needs in order to undo it (the
``POST /sweeps`` that starts a sweep, R1-R12): it takes effect once the request has
ended, so that the sweep it started is known and can be cancelled; a second Ctrl-C
leaves at once.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from synapse_lux_privacy.admin_cli.errors import say


@contextmanager
def deferred(doing: str) -> Iterator[None]:
    """Hold back a first Ctrl-C until the block has ended, then raise KeyboardInterrupt.

    Without effect outside the main thread (signals go there) or when Ctrl-C is not the
    default KeyboardInterrupt (ignored, or handled by the caller)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pressed: list[bool] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)
        say(f"interrupted: {doing}; stopping when the server has answered (Ctrl-C again: now)")

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt
