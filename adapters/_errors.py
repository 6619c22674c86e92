"""One table per driver that turns its exceptions into polystore's errors.

Every adapter declares an ``ErrorTable`` (driver exception class -> toolkit error class,
retryable or not; the first ``isinstance`` match wins, so subclasses come before their
bases) and wraps each driver call in ``table.translating(store, shard, key)``. Writing
the table down, instead of ``except`` clauses spread over a module, is what lets a test
check that every driver exception has a home and a retry decision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sharding.core.errors import StoreError

__all__ = ["ErrorRule", "ErrorTable", "first_line"]

ErrorRule: TypeAlias = tuple[type[BaseException], type[StoreError], bool]
"""(driver exception class, toolkit error class, retryable)."""

Refine: TypeAlias = Callable[[BaseException, str], "tuple[type[StoreError], bool] | None"]
"""A driver-specific second look at one exception and its message: a better (error class,
retryable) than the table's row, or None to keep the row."""


def first_line(exc: BaseException) -> str:
    """The first line of a driver message (drivers append server traces and hints)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@dataclass(frozen=True, slots=True)
class ErrorTable:
    """How one driver's exceptions become ``StoreError`` subclasses."""

    driver: str
    """The driver's name, for messages and tests (``"redis"``, ``"pymongo"``...)."""
    rules: Sequence[ErrorRule]
    refine: Refine | None = None
    message: Callable[[BaseException], str] = first_line

    @property
    def caught(self) -> tuple[type[BaseException], ...]:
        """Every exception class the table translates (what ``translating`` catches)."""
        return tuple(rule[0] for rule in self.rules)

    def translate(self, exc: BaseException, *, store: str, shard: str, key: Any = None) -> StoreError:
        """The toolkit error for ``exc``: the first matching row, refined if the table says so."""
        text = self.message(exc)
        for driver_class, error_class, retryable in self.rules:
            if isinstance(exc, driver_class):
                chosen: tuple[type[StoreError], bool] | None = (error_class, retryable)
                if self.refine is not None:
                    chosen = self.refine(exc, text) or chosen
                assert chosen is not None
                return chosen[0](text, store=store, shard=shard, key=key, retryable=chosen[1])
        return StoreError(text, store=store, shard=shard, key=key, retryable=False)

    @contextlib.contextmanager
    def translating(self, store: str, shard: str, key: Any = None) -> Iterator[None]:
        """Re-raise any exception of the table as its toolkit error (the driver's as cause)."""
        try:
            yield
        except StoreError:
            raise
        except self.caught as exc:
            raise self.translate(exc, store=store, shard=shard, key=key) from exc
