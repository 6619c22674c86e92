"""``StepContext``: what an action or a compensation receives.

It gives the step the Toolkit's repositories, the saga's payload, the results of the
steps before it, and a stable *step key* (``<saga id>:<step index>``) that stays the
same across retries and recovery, so writes derived from it are idempotent. The
helpers ``put``, ``delete_if_present``, ``increment_once`` and ``undo_increment`` are
the idempotent forms of the common writes (see ``toolkit.saga._effects``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from toolkit.model import Entity, schema_of
from toolkit.repository import Repository
from toolkit.saga._effects import Mode, increment_once

if TYPE_CHECKING:
    from toolkit.facade import Toolkit
    from toolkit.saga._log import SagaLog

__all__ = ["StepContext"]

E = TypeVar("E", bound=Entity)


@dataclass(frozen=True, slots=True)
class StepContext:
    """One attempt of one step (or of its compensation)."""

    toolkit: Toolkit
    saga_id: str
    saga: str
    payload: Mapping[str, Any]
    step: str
    index: int
    attempt: int
    compensating: bool
    results: Mapping[str, Any]
    """Results of the steps done so far, by step name (a compensation sees its own step's, if it finished)."""
    _log: SagaLog

    @property
    def step_key(self) -> str:
        """``<saga id>:<step index>``: the same in every attempt, retry and recovery of this step."""
        return f"{self.saga_id}:{self.index}"

    @property
    def result(self) -> Any:
        """This step's own recorded result (for a compensation), or None."""
        return self.results.get(self.step)

    def key(self, suffix: str = "") -> str:
        """A deterministic key for a row this step writes (``step_key`` + suffix)."""
        return f"{self.step_key}{suffix}"

    def repository(self, entity: type[E]) -> Repository[E]:
        return self.toolkit.repository(entity)

    def put(self, entity: type[E], data: E | Mapping[str, Any]) -> E:
        """Upsert one entity: idempotent because the key is deterministic.

        If ``data`` is a mapping without the entity's (single, str) key field, the key
        is ``step_key``.
        """
        if isinstance(data, Mapping):
            schema = schema_of(entity)
            if len(schema.key) == 1 and schema.key[0] not in data and schema.field(schema.key[0]).type == "str":
                data = {**data, schema.key[0]: self.step_key}
        return self.toolkit.repository(entity).put(data)

    def delete_if_present(self, entity: type[Entity], key: Any, *, shard_key: Any = None) -> bool:
        """Delete a row if it exists; True if it did. Never fails because it is missing."""
        return self.toolkit.repository(entity).delete(key, shard_key=shard_key)

    def increment_once(
        self, entity: type[Entity], key: Any, field: str, amount: int | float, *, tag: str = "", shard_key: Any = None
    ) -> int | float | None:
        """Add ``amount`` to a numeric field once per step (and ``tag``), however often the step runs.

        Returns the value after the increment (the current value when it was applied
        before). Exactly-once where the store offers APPLY_ONCE (SQLite, PostgreSQL,
        Redis); see ``toolkit.saga._effects`` for the other backends. Use ``tag`` to tell
        apart several increments in one step.
        """
        return self._increment(entity, key, field, amount, tag, shard_key, "do")

    def undo_increment(
        self, entity: type[Entity], key: Any, field: str, amount: int | float, *, tag: str = "", shard_key: Any = None
    ) -> int | float | None:
        """Reverse this step's ``increment_once`` (same ``amount`` and ``tag``) if it was applied.

        Safe when the increment never happened (it then never will: a tombstone is
        left) and when the compensation runs twice.
        """
        return self._increment(entity, key, field, amount, tag, shard_key, "undo")

    def _increment(
        self, entity: type[Entity], key: Any, field: str, amount: int | float, tag: str, shard_key: Any, mode: Mode
    ) -> int | float | None:
        """The step's marker is ``step_key`` (``/tag``): the same in every attempt of the step."""
        marker = f"{self.step_key}/{tag}" if tag else self.step_key
        repository = self.toolkit.repository(entity)
        return increment_once(repository, key, field, amount, marker, mode=mode, log=self._log, shard_key=shard_key)
