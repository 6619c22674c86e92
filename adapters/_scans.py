"""The argument checks every adapter's scans share, so that each backend refuses a bad
scan with the same ``QueryError`` and the same words (the contract tests compare them).
"""

from __future__ import annotations

from sharding.base import TokenRange
from sharding.core.errors import QueryError

__all__ = ["check_batch_size", "check_token_scan"]


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size below one: a scan (or a batched delete) pages by it."""
    if batch_size < 1:
        raise QueryError(f"batch_size must be positive, not {batch_size}")


def check_token_scan(entity: str, tokens: TokenRange | None, *, with_token: bool) -> None:
    """Refuse a token range over rows that do not carry their token: only a hash-routed
    store's rows do, so a range-routed one has nothing to compare the range with."""
    if tokens is not None and not with_token:
        raise QueryError(f"{entity}: a token range scan needs a hash-routed store")
