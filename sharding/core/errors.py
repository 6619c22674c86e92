"""One exception hierarchy for everything polystore raises.

Callers catch ``ToolkitError`` (or one branch of it) and never a driver's exception:
adapters translate those at their boundary with ``raise ... from exc``. Every error
carries the context a person needs to act (file and field, store and shard, key) and
says whether retrying can help::

    ToolkitError
    ├── ConfigError             a polystore.toml (or the embedded default) is wrong: file, table, field
    ├── EntityError             an entity declaration or instance is invalid: entity, field
    │   └── ValidationError     a value is invalid or cannot be stored exactly: entity, dotted field
    ├── InvalidKeyError         a key of a type that cannot be encoded
    ├── QueryError              a filter, order or scan names an unknown field or operator
    ├── RoutingError            no shard can own a key (range gap, unknown directory shard)
    ├── TopologyError           a topology is inconsistent (unknown shard, overlapping ranges)
    ├── CatalogError            the metadata store cannot be read or written
    ├── DriverMissingError      the driver for a URL scheme is not installed: names the extra
    └── StoreError              a backend call failed: store, shard, key, retryable
        ├── StoreUnavailable    cannot reach the backend (retryable)
        │   └── CircuitOpen     the shard's circuit breaker is open: failing fast (retry_after)
        ├── StoreTimeout        the backend did not answer in time (retryable)
        ├── RateLimited         the store's throttle refused the call (retry_after)
        ├── BulkheadFull        no concurrency slot of the store freed up in time
        ├── DuplicateKeyError   an insert-only write met an existing key
        ├── NotFoundError       an operation that needs an existing row found none
        ├── UnsupportedCapability  the adapter does not offer what was asked
        └── CrossShardError     an operation needs two entities that live on different shards

The CLI prints any ``ToolkitError`` as one line (``str(error)``) and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFull",
    "CatalogError",
    "CircuitOpen",
    "ConfigError",
    "CrossShardError",
    "DriverMissingError",
    "DuplicateKeyError",
    "EntityError",
    "InvalidKeyError",
    "NotFoundError",
    "QueryError",
    "RateLimited",
    "RoutingError",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "ToolkitError",
    "TopologyError",
    "UnsupportedCapability",
    "ValidationError",
]


def _located(message: str, separator: str, *parts: str | None) -> str:
    """``message`` prefixed with where it happened (the parts that are known, joined)."""
    where = separator.join(part for part in parts if part)
    return f"{where}: {message}" if where else message


class ToolkitError(Exception):
    """The root of every error polystore raises on purpose."""

    retryable: bool = False
    """Whether the same call may succeed if tried again unchanged."""


class ConfigError(ToolkitError):
    """A configuration file (or value) is invalid.

    The message always starts with the file and the dotted path of the field, e.g.
    ``polystore.toml: stores.users.router.type: expected one of hash, range, directory``.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        self.file = file
        self.field = field
        super().__init__(_located(message, ": ", file, field))


class EntityError(ToolkitError):
    """An entity class is declared wrongly, or an instance fails validation."""

    def __init__(self, message: str, *, entity: str | None = None, field: str | None = None) -> None:
        self.entity = entity
        self.field = field
        super().__init__(_located(message, ".", entity, field))


class ValidationError(EntityError):
    """An entity's value is invalid, or is one that the backend cannot store exactly.

    Raised before anything is written, so a value that ``put`` accepts always reads back
    equal (see ``sharding.core.limits``). ``field`` is the dotted path of the value inside
    the entity (``address.city``, ``tags.3``), and the message says which limit it breaks.
    """


class InvalidKeyError(ToolkitError):
    """A key (or shard key) value has a type that has no canonical encoding."""


class QueryError(ToolkitError):
    """A filter, order or scan is malformed (unknown field, operator or value)."""


class RoutingError(ToolkitError):
    """No shard can own a key under the current topology."""


class TopologyError(ToolkitError):
    """A topology is inconsistent: unknown shard, overlapping or unordered ranges..."""


class CatalogError(ToolkitError):
    """The catalog (metadata store) cannot be read or written."""


class DriverMissingError(ToolkitError):
    """The Python driver for a URL scheme is not installed."""

    def __init__(self, scheme: str, module: str, extra: str) -> None:
        self.scheme = scheme
        self.extra = extra
        super().__init__(f"the {scheme!r} adapter needs the {module!r} driver: pip install 'polystore[{extra}]'")


class StoreError(ToolkitError):
    """A backend call failed. Carries the store, the shard and (when known) the key."""

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        shard: str | None = None,
        key: object = None,
        retryable: bool | None = None,
    ) -> None:
        self.store = store
        self.shard = shard
        self.key = key
        if retryable is not None:
            self.retryable = retryable
        text = _located(message, "/", store, shard)
        if key is not None:
            text += f" (key {key!r})"
        super().__init__(text)


class StoreUnavailable(StoreError):
    """The backend cannot be reached (connection refused, DNS, broken pipe)."""

    retryable = True


class StoreTimeout(StoreError):
    """The backend did not answer in time."""

    retryable = True


class CircuitOpen(StoreUnavailable):
    """The shard's circuit breaker is open: the call was refused without touching the backend.

    Raised by the resilience guard (``toolkit.resilience``) after the shard failed often
    enough to count as down; ``retry_after`` is the number of seconds until it lets a probe
    call through. Retrying sooner only fails fast again.
    """

    def __init__(self, message: str, *, store: str | None = None, shard: str | None = None, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message, store=store, shard=shard)


class RateLimited(StoreError):
    """The store's throttle refused the call; ``retry_after`` seconds until it may be admitted."""

    retryable = True

    def __init__(self, message: str, *, store: str | None = None, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message, store=store)


class BulkheadFull(StoreError):
    """Every concurrency slot of the store stayed taken for the bulkhead's whole wait.

    The store is slow or overloaded; refusing the call keeps this thread free for the
    other stores instead of queueing it behind the slow one. ``limit`` is the store's
    configured number of concurrent calls.
    """

    retryable = True

    def __init__(self, message: str, *, store: str | None = None, limit: int) -> None:
        self.limit = limit
        super().__init__(message, store=store)


class DuplicateKeyError(StoreError):
    """An insert-only write met an existing key."""


class NotFoundError(StoreError):
    """An operation that needs an existing row (update, conditional delete) found none."""


class UnsupportedCapability(StoreError):
    """The adapter behind a store does not offer the capability asked for."""


class CrossShardError(StoreError):
    """An operation (a graph relationship, a transaction) spans shards; it must not.

    Co-locate the entities with a shared shard key, or use a saga across shards.
    """
