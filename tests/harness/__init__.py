"""Integration-test harness: real PostgreSQL and Synapse processes plus a Matrix client.

* :class:`PostgresCluster` - a throw-away PostgreSQL server (or ``LUX_TEST_POSTGRES``).
* :class:`SynapseServer` - a Synapse homeserver process, optionally with the module.
* :class:`MatrixClient` - a small ``requests``-based client-server API client.
* :class:`Database` - direct SQL access to a homeserver's database.
* :func:`uid` - short unique strings for localparts, room names, etc.
* :func:`wait_for` - poll until a condition holds.
"""

from .client import MatrixClient, MatrixError
from .database import Database
from .ids import uid
from .ports import free_port
from .postgres import PostgresCluster
from .synapse_server import SynapseServer
from .waiting import wait_for

__all__ = [
    "Database",
    "MatrixClient",
    "MatrixError",
    "PostgresCluster",
    "SynapseServer",
    "free_port",
    "uid",
    "wait_for",
]
