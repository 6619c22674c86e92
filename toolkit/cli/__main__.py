"""``python -m toolkit.cli``: the ``polystore`` command without its console script."""

from __future__ import annotations

from toolkit.cli import main

if __name__ == "__main__":
    main()
