"""Errors of the saga coordinator: all ``ToolkitError``s, so the CLI prints one line."""

from __future__ import annotations

from toolkit.errors import ToolkitError

__all__ = ["AmbiguousEffect", "LeaseLost", "SagaDefinitionError", "SagaError", "SagaKeyConflict", "UnknownSaga"]


class SagaError(ToolkitError):
    """Something about a saga (its definition, its log, its lease) is wrong."""


class SagaDefinitionError(SagaError):
    """A saga is declared wrongly (no steps, two pivots, a step after the pivot that is not retriable...)."""


class SagaKeyConflict(SagaError):
    """An idempotency key was reused for a different saga or a different payload.

    Returning the first outcome for a different request would hide a bug in the caller
    (Stripe's idempotency keys behave the same way).
    """


class UnknownSaga(SagaError):
    """No saga with this id, or no definition for a saga name found in the log."""


class LeaseLost(SagaError):
    """This runner no longer holds the saga's lease: another process took it over.

    The runner stops at once, before any further effect; the new holder continues.
    """


class AmbiguousEffect(SagaError):
    """A crash left an effect in doubt on a backend that cannot record it atomically.

    Raised by ``increment_once`` on backends without an atomic marker (see
    ``toolkit.saga.effects``): it was announced but not confirmed, and the counter
    alone cannot tell whether it was applied. Not retryable: a person decides.
    """
