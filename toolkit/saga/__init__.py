"""The saga coordinator: cross-store writes that either complete or are compensated.

No database offers a transaction across PostgreSQL, MongoDB, Redis, Cassandra and
Neo4j. A saga (Garcia-Molina and Salem, 1987) replaces it: an ordered list of steps,
each with a compensation; either every step completes, or the steps that completed are
compensated, also when the process running it dies at any instant. ::

    from toolkit.saga import Saga, Step

    def reserve(ctx):  ctx.increment_once(Stock, ctx.payload["sku"], "units", -ctx.payload["qty"])
    def release(ctx):  ctx.undo_increment(Stock, ctx.payload["sku"], "units", -ctx.payload["qty"])

    checkout = Saga("checkout", [Step("reserve", reserve, compensation=release), ...])
    outcome = toolkit.sagas.run(checkout, {"sku": "A-1", "qty": 2}, key="order-17")
    toolkit.sagas.recover([checkout])        # after a crash, in any process

Modules: ``_definition`` (Saga, Step), ``_policy`` (default step policies, LeasePolicy),
``_log`` (the tables in the catalog), ``_coordinator`` (run, idempotency keys,
recovery), ``_runner`` (driving one saga: steps, retries, compensations), ``_lease``
(the heartbeat), ``_context`` and ``_effects`` (idempotent step helpers). The retry
policy, the clock and ``is_retryable`` are ``toolkit.resilience``'s, re-exported here:
a step retries with the same policy the guard retries an adapter call with.
"""

from __future__ import annotations

from toolkit.saga._context import StepContext
from toolkit.saga._coordinator import RecoveryReport, SagaCoordinator
from toolkit.saga._definition import Saga, Step
from toolkit.saga._effects import exactly_once
from toolkit.saga._errors import (
    AmbiguousEffect,
    LeaseLost,
    SagaDefinitionError,
    SagaError,
    SagaKeyConflict,
    UnknownSaga,
)
from toolkit.saga._log import ACTIVE, TERMINAL, SagaEvent, SagaLog, SagaRecord, SagaState
from toolkit.saga._policy import (
    DEFAULT_COMPENSATION_POLICY,
    DEFAULT_RETRY_POLICY,
    Clock,
    Jitter,
    LeasePolicy,
    RetryPolicy,
    SystemClock,
    is_retryable,
)
from toolkit.saga._runner import FaultHook, SagaOutcome

__all__ = [
    "ACTIVE",
    "DEFAULT_COMPENSATION_POLICY",
    "DEFAULT_RETRY_POLICY",
    "TERMINAL",
    "AmbiguousEffect",
    "Clock",
    "FaultHook",
    "Jitter",
    "LeaseLost",
    "LeasePolicy",
    "RecoveryReport",
    "RetryPolicy",
    "Saga",
    "SagaCoordinator",
    "SagaDefinitionError",
    "SagaError",
    "SagaEvent",
    "SagaKeyConflict",
    "SagaLog",
    "SagaOutcome",
    "SagaRecord",
    "SagaState",
    "Step",
    "StepContext",
    "SystemClock",
    "UnknownSaga",
    "exactly_once",
    "is_retryable",
]
