"""Synapse internals the directory feature needs (R10).

Only the clock: Synapse's ``cached`` decorator (exported by ``synapse.module_api``)
builds its cache from the ``clock`` attribute of the object it decorates, and the
module API does not hand its clock out.
"""

from synapse.module_api import ModuleApi
from synapse.util.clock import Clock


def homeserver_clock(api: ModuleApi) -> Clock:
    """The homeserver's clock (``HomeServer.get_clock``), for module-level ``@cached`` caches."""
    return api._hs.get_clock()
