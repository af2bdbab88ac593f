"""Streaming a file on disk as the response of an admin API request (R14 archives).

Twisted's ``FileSender`` writes the file to the connection as the client reads it
(a 64 KiB buffer at a time, paused while the socket is full), so the process's
memory does not grow with the file. The handler then returns None: the response
is already written.
"""

import logging
from typing import Any, BinaryIO

from synapse.module_api import SynapseRequest, make_deferred_yieldable
from twisted.protocols.basic import FileSender

logger = logging.getLogger(__name__)


async def send_file(
    request: SynapseRequest, source: BinaryIO, size: int, content_type: str, filename: str
) -> None:
    """Write ``source`` (``size`` bytes) as a 200 download named ``filename``."""
    request.setResponseCode(200)
    headers = {
        b"Content-Type": content_type.encode("ascii"),
        b"Content-Length": str(size).encode("ascii"),
        b"Content-Disposition": f'attachment; filename="{filename}"'.encode("ascii"),
    }
    for name, value in headers.items():
        request.responseHeaders.setRawHeaders(name, [value])
    sender: Any = FileSender()  # untyped in Twisted
    try:
        await make_deferred_yieldable(sender.beginFileTransfer(source, request))
    except Exception as e:  # the client went away: nothing left to answer
        logger.info("lux_privacy: download of %s stopped: %r", filename, e)
        return
    try:
        request.finish()
    except RuntimeError as e:
        logger.info("lux_privacy: connection closed before %s was sent: %r", filename, e)
