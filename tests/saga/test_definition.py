"""Saga declarations are checked when built; policies compute the documented schedules."""

from __future__ import annotations

import pytest

from toolkit.errors import NotFoundError, StoreTimeout, StoreUnavailable
from toolkit.saga import LeasePolicy, RetryPolicy, Saga, SagaDefinitionError, Step, is_retryable


def noop(ctx: object) -> None:
    return None


def test_forward_from_is_after_the_pivot() -> None:
    saga = Saga("s", [Step("a", noop, noop), Step("p", noop, pivot=True), Step("r", noop, retriable=True)])
    assert saga.forward_from == 2
    assert saga.compensatable(1)
    assert not saga.compensatable(2)


def test_without_pivot_the_first_retriable_step_is_the_point_of_no_return() -> None:
    saga = Saga("s", [Step("a", noop, noop), Step("r", noop, retriable=True), Step("q", noop, retriable=True)])
    assert saga.forward_from == 1
    assert Saga("plain", [Step("a", noop)]).forward_from == 1


@pytest.mark.parametrize(
    "steps",
    [
        [],
        [Step("a", noop), Step("a", noop)],
        [Step("p", noop, pivot=True), Step("q", noop, pivot=True)],
        [Step("p", noop, pivot=True), Step("after", noop)],
        [Step("r", noop, retriable=True), Step("p", noop, pivot=True), Step("x", noop, retriable=True)],
        [Step("r", noop, retriable=True), Step("c", noop)],
    ],
)
def test_bad_declarations_fail_when_built(steps: list[Step]) -> None:
    with pytest.raises(SagaDefinitionError):
        Saga("s", steps)


def test_a_step_is_not_both_pivot_and_retriable() -> None:
    with pytest.raises(SagaDefinitionError):
        Step("x", noop, pivot=True, retriable=True)


def test_backoff_is_exponential_capped_and_jittered_downwards() -> None:
    policy = RetryPolicy(max_attempts=10, initial_interval=0.1, backoff_coefficient=2, max_interval=1.0, jitter=0.5)
    assert [policy.backoff(n, 0.0) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    assert policy.backoff(2, 1.0) == pytest.approx(0.1)
    assert policy.backoff(9, 0.999) >= 0.5


def test_only_retryable_errors_are_retried_unless_retry_all() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(StoreUnavailable("down"), 1)
    assert policy.should_retry(StoreTimeout("slow"), 2)
    assert not policy.should_retry(StoreTimeout("slow"), 3)
    assert not policy.should_retry(NotFoundError("gone"), 1)
    assert not policy.should_retry(ValueError("bug"), 1)
    assert RetryPolicy(retry_all=True).should_retry(ValueError("bug"), 1)
    assert not is_retryable(ValueError())
    assert is_retryable(StoreUnavailable("x"))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"backoff_coefficient": 0.5}, {"jitter": 2}, {"timeout": 0}, {"initial_interval": -1}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_lease_heartbeat_must_beat_within_the_ttl() -> None:
    with pytest.raises(ValueError):
        LeasePolicy(ttl=1, heartbeat=2)
