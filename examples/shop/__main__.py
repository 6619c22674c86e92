"""``python -m examples.shop [--config FILE]``: the shipped shop's ``python -m toolkit.demo.shop``."""

from __future__ import annotations

from toolkit.demo.shop.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m examples.shop"))
