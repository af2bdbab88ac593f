"""How every operator command fails: one line on stderr and an exit status, never a
traceback (the admin API commands: sweeps R1-R12, reports R14).

A command raises ``CliError`` (or a subclass: ``client.AdminApiError``) with a sentence
the operator can act on; ``guarded`` runs the command, prints ``error: <sentence>``
and returns 2. Ctrl-C at any moment returns 130; a command that has something to undo
(a sweep to cancel) catches ``KeyboardInterrupt`` itself first. A command added later
gets all of this by being run through ``guarded`` (``cli.main`` does it for every
subcommand).
"""

import os
import sys
from collections.abc import Callable

EXIT_FAILED = 2
EXIT_CTRL_C = 130

# The longest error line printed: a server can put anything in an answer.
_MAX_LINE = 600


class CliError(Exception):
    """A failure the operator can act on: printed as one line, exit status 2."""


def one_line(text: str) -> str:
    """``text`` as one printable line: whitespace runs become one space, other control
    characters (a terminal's escape sequences from a hostile server) are shown escaped."""
    flat = " ".join(text.split())
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return shown if len(shown) <= _MAX_LINE else shown[: _MAX_LINE - 3] + "..."


def say(text: str) -> None:
    """One line on stderr."""
    print(one_line(text), file=sys.stderr, flush=True)


def guarded(command: Callable[[], int]) -> int:
    """Run a command; its exit status, 2 with one line for any failure, 130 for Ctrl-C."""
    try:
        return command()
    except CliError as e:
        say(f"error: {e}")
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_CTRL_C
    except BrokenPipeError:
        # The reader of the output went away (``| head``): nothing more can be written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as e:  # the last line of defence: a bug, still not a traceback
        say(f"error: unexpected {type(e).__name__}: {e} (a bug: please report it)")
    return EXIT_FAILED
