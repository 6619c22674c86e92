"""Which failures are retried, and the caller's say over non-idempotent operations.

An adapter marks an error retryable (``StoreUnavailable``, ``StoreTimeout``, a
transient server code) when the same call may succeed if repeated unchanged. That is
safe to act on only if repeating the call cannot apply it twice: an upsert, a read or a
delete can be repeated, an ``increment`` cannot (the first attempt may have been applied
before its answer was lost). A caller that knows better, because the operation is keyed
(a saga step's ``step_key``) or because it checks before it writes, says so with
``retry_safe``::

    with retry_safe(ctx.step_key):
        repository.increment(key, "stock", -1)

The mark is a ``contextvars.ContextVar``: it holds in the current thread (and asyncio
task) for the ``with`` block, and never leaks into other callers.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from toolkit.errors import BulkheadFull, CircuitOpen, RateLimited, ToolkitError

__all__ = ["REFUSALS", "is_retryable", "retry_safe", "retry_safe_reason"]

_SAFE: contextvars.ContextVar[str | None] = contextvars.ContextVar("polystore_retry_safe", default=None)

REFUSALS: Final = (CircuitOpen, RateLimited, BulkheadFull)
"""The guard's own answers: retryable for a caller that waits (a saga step's backoff),
never repeated by the guard itself, where the next attempt would meet the same answer."""


def is_retryable(error: BaseException) -> bool:
    """Whether the same call, repeated unchanged, may succeed: the ``retryable`` flag of
    toolkit errors (``StoreUnavailable``, ``StoreTimeout``, a transient server code).

    Anything that is not a ``ToolkitError`` (a bug in a step, a ValueError) is not
    retryable: retrying a deterministic failure only delays the compensation.
    """
    return isinstance(error, ToolkitError) and bool(error.retryable)


@contextmanager
def retry_safe(reason: str) -> Iterator[None]:
    """Within the block, non-idempotent operations (``increment``) are retried too.

    ``reason`` says why repeating is harmless (a saga's step key, "read-modify-write
    checked"); it is kept for logs and is the value of ``retry_safe_reason()``.
    """
    token = _SAFE.set(reason or "caller")
    try:
        yield
    finally:
        _SAFE.reset(token)


def retry_safe_reason() -> str | None:
    """Why the current context allows retrying non-idempotent calls, or None."""
    return _SAFE.get()
