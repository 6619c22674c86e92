"""Declaring a saga: a name and an ordered list of steps (action + compensation).

    checkout = Saga("checkout", [
        Step("order", create_order, compensation=delete_order),
        Step("stock", reserve_stock, compensation=release_stock),
        Step("charge", charge_card, pivot=True),
        Step("email", send_receipt, retriable=True),
    ])

Step kinds follow Garcia-Molina and Salem's "Sagas" and the later pivot/retriable
vocabulary: *compensatable* steps (the default) can be undone; the *pivot* is the
point of no return (if it fails, the steps before it are compensated; once it is
done, the saga can only go forward); *retriable* steps come after the pivot and are
retried until they succeed (forward recovery), and are never compensated. Without a
pivot, the first retriable step marks the point of no return.

Actions and compensations are plain functions of one ``StepContext`` (see
``toolkit.saga.context``). An action's return value (JSON-able) is recorded in the log
and visible to later steps and to its own compensation as ``ctx.results``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from toolkit.resilience import RetryPolicy
from toolkit.saga._errors import SagaDefinitionError
from toolkit.saga._policy import DEFAULT_COMPENSATION_POLICY, DEFAULT_RETRY_POLICY

if TYPE_CHECKING:
    from toolkit.saga._context import StepContext

__all__ = ["Action", "Saga", "Step"]

Action: TypeAlias = "Callable[[StepContext], Any]"


@dataclass(frozen=True, slots=True)
class Step:
    """One step: an action, its compensation (None: nothing to undo), and its policies."""

    name: str
    action: Callable[[StepContext], Any]
    compensation: Callable[[StepContext], Any] | None = None
    pivot: bool = False
    retriable: bool = False
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    compensation_retry: RetryPolicy = DEFAULT_COMPENSATION_POLICY

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise SagaDefinitionError(f"a step needs a name, not {self.name!r}")
        if self.pivot and self.retriable:
            raise SagaDefinitionError(f"step {self.name!r}: a step is either the pivot or retriable, not both")
        if not callable(self.action) or (self.compensation is not None and not callable(self.compensation)):
            raise SagaDefinitionError(f"step {self.name!r}: action and compensation must be callables")


@dataclass(frozen=True, slots=True)
class Saga:
    """A named, ordered list of steps. Names identify definitions in the log: keep them stable."""

    name: str
    steps: Sequence[Step]
    forward_from: int = field(init=False)
    """Index of the first step that is forward-only (len(steps) if none is)."""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str) or len(self.name) > 120:
            raise SagaDefinitionError(f"a saga needs a name of 1..120 characters, not {self.name!r}")
        steps = tuple(self.steps)
        object.__setattr__(self, "steps", steps)
        if not steps:
            raise SagaDefinitionError(f"saga {self.name!r} has no steps")
        names = [step.name for step in steps]
        if len(set(names)) != len(names):
            raise SagaDefinitionError(f"saga {self.name!r}: step names must be unique ({', '.join(names)})")
        pivots = [index for index, step in enumerate(steps) if step.pivot]
        if len(pivots) > 1:
            raise SagaDefinitionError(f"saga {self.name!r}: at most one pivot step, found {len(pivots)}")
        retriables = [index for index, step in enumerate(steps) if step.retriable]
        if pivots:
            forward_from = pivots[0] + 1
            for index in range(forward_from, len(steps)):
                if not steps[index].retriable:
                    raise SagaDefinitionError(
                        f"saga {self.name!r}: step {steps[index].name!r} follows the pivot, so it can only go "
                        "forward: mark it retriable=True"
                    )
            if any(index < pivots[0] for index in retriables):
                raise SagaDefinitionError(f"saga {self.name!r}: retriable steps come after the pivot")
        elif retriables:
            forward_from = retriables[0]
            if retriables != list(range(forward_from, len(steps))):
                raise SagaDefinitionError(f"saga {self.name!r}: retriable steps must be the last steps")
        else:
            forward_from = len(steps)
        object.__setattr__(self, "forward_from", forward_from)

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def compensatable(self, index: int) -> bool:
        """Whether step ``index`` may still be undone (it lies before the point of no return)."""
        return index < self.forward_from
