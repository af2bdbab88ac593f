"""Synapse's own reading of configuration files and of its duration syntax.

Used by ``check-config`` and the native-setting checks so that they read
homeserver.yaml exactly as Synapse does.
"""

from collections.abc import Sequence

from synapse.config._base import Config, find_config_files


def config_files(paths: Sequence[str]) -> list[str]:
    """The files Synapse would read for these ``-c`` arguments (folders expanded)."""
    return list(find_config_files(list(paths)))


def synapse_duration_ms(value: object) -> int:
    """A Synapse duration setting in milliseconds, parsed as Synapse parses it."""
    return int(Config.parse_duration(value))  # type: ignore[arg-type]
