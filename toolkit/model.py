"""The public spelling of polystore's entity model: ``sharding.core.model`` defines it (see there).

Applications import from here; the definitions live in the core layer so that the
adapters and routers below the toolkit can use them without loading the toolkit.
"""

from sharding.core.model import *  # noqa: F403 - the whole public API, as its __all__ says
from sharding.core.model import __all__ as __all__
