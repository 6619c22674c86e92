"""The public spelling of polystore's error tree: ``sharding.core.errors`` defines it (see there).

Applications import from here; the definitions live in the core layer so that the
adapters and routers below the toolkit can use them without loading the toolkit.
"""

from sharding.core.errors import *  # noqa: F403 - the whole public API, as its __all__ says
from sharding.core.errors import __all__ as __all__
