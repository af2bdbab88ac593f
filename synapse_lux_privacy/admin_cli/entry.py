"""The ``synapse-lux-privacy`` executable and ``python -m synapse_lux_privacy``.

Importing the commands takes seconds (Synapse, ``rich``): a Ctrl-C meanwhile exits 130
with one line, like a Ctrl-C at any later moment (``errors.guarded``), not a traceback.
Nothing heavy is imported before the ``try`` (the package's ``__init__`` is lazy).
"""

import sys

EXIT_CTRL_C = 130


def main() -> int:
    try:
        from synapse_lux_privacy import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_CTRL_C
    return cli.main()
