"""Polling for a condition a homeserver reaches in the background."""

import time
from collections.abc import Callable


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> float:
    """Poll until ``check()``; the seconds it took."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - began
