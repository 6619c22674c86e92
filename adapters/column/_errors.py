"""cassandra-driver's exceptions as polystore's errors: one table (``ERRORS``).

Unavailability (no host, a closed or busy connection, too few replicas, an overloaded
or bootstrapping node, a socket error the driver lets through) and timeouts are
retryable; everything else (bad CQL, authentication, replica failures) is not.
"""

from __future__ import annotations

from typing import Final

import cassandra
import cassandra.connection
import cassandra.protocol
from cassandra.cluster import NoHostAvailable

from adapters._errors import ErrorTable, first_line
from sharding.core.errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["ERRORS", "message"]


def message(exc: BaseException) -> str:
    """The exception's class and the first line of its message: the driver's messages
    often say little without the class (``ReadTimeout``, ``Unavailable``)."""
    name = type(exc).__name__
    return f"{name}: {first_line(exc)}" if str(exc).strip() else name


ERRORS: Final = ErrorTable(
    "cassandra-driver",
    # (driver exception, toolkit error, retryable). First match wins: subclasses first.
    (
        (NoHostAvailable, StoreUnavailable, True),
        (cassandra.UnresolvableContactPoints, StoreUnavailable, True),
        (cassandra.connection.ConnectionShutdown, StoreUnavailable, True),
        (cassandra.connection.ConnectionBusy, StoreUnavailable, True),
        (cassandra.connection.ConnectionException, StoreUnavailable, True),
        (cassandra.Unavailable, StoreUnavailable, True),
        (cassandra.protocol.OverloadedErrorMessage, StoreUnavailable, True),
        (cassandra.protocol.IsBootstrappingErrorMessage, StoreUnavailable, True),
        (cassandra.OperationTimedOut, StoreTimeout, True),
        (cassandra.Timeout, StoreTimeout, True),  # ReadTimeout, WriteTimeout
        (cassandra.CoordinationFailure, StoreError, False),  # ReadFailure, WriteFailure: replica errors
        (cassandra.AuthenticationFailed, StoreError, False),
        (cassandra.Unauthorized, StoreError, False),
        (cassandra.InvalidRequest, StoreError, False),
        (cassandra.AlreadyExists, StoreError, False),
        (cassandra.ConfigurationException, StoreError, False),
        (cassandra.FunctionFailure, StoreError, False),
        (cassandra.RequestValidationException, StoreError, False),
        (cassandra.RequestExecutionException, StoreError, False),
        (cassandra.protocol.ErrorMessage, StoreError, False),  # SyntaxException, ServerError, ...
        (cassandra.DriverException, StoreError, False),
        (cassandra.connection.ProtocolError, StoreError, False),
        (OSError, StoreUnavailable, True),  # socket errors the driver lets through
    ),
    message=message,
)
"""Every driver exception class the adapter catches, and what it becomes."""
