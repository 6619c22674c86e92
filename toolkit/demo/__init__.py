"""The demo application that ships with polystore: the shop (``toolkit.demo.shop``).

It lives inside the distribution, not in ``examples/``, so that ``polystore demo`` (the
command line, ``toolkit.cli``, narrates it) works from an installed wheel with no
source checkout. The application uses only the public API, as one of yours would.
"""

from __future__ import annotations

__all__: list[str] = []
