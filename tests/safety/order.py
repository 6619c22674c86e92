"""The property every order-preserving key encoding must have, shared by its tests."""

from __future__ import annotations

from typing import Any


def assert_sorts_like_values_and_prefix_free(a: Any, b: Any, ea: bytes, eb: bytes) -> None:
    """Encodings ``ea``, ``eb`` of ``a``, ``b`` compare as the values do, and neither is a
    prefix of the other (so a composite key's parts cannot run into each other)."""
    assert (ea < eb) == (a < b)
    assert (ea == eb) == (a == b)
    if ea != eb:
        assert not ea.startswith(eb)
        assert not eb.startswith(ea)
