"""How a rebalance runs (``RebalanceOptions``) and what it did (``Summary``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MoveSummary", "RebalanceOptions", "Summary"]


@dataclass(frozen=True, slots=True)
class RebalanceOptions:
    """How a rebalance runs. Defaults suit a live application.

    ``settle``: seconds to wait after publishing a phase before acting on it. It must
    exceed the stores' poll interval (``POLYSTORE_POLL_MS``, 100 ms) plus the longest a
    single write may stay in flight; see the package docstring.
    ``verify_before_fence``: the full compare-and-repair (VDiff) while writes still
    flow, so that the fenced pass only replays the change log; without it the fenced
    pass is the full compare.
    ``retries``: how often a unit whose step failed (a transient backend error) is
    redone before the rebalance stops (it can still be resumed).
    """

    batch_size: int = 1000
    parallel: int = 1
    settle: float = 1.0
    verify_before_fence: bool = True
    retries: int = 3


@dataclass(slots=True)
class MoveSummary:
    """One move's counts, summed over its entities."""

    index: int
    source: str
    target: str
    span: str
    estimated: int
    copied: int = 0
    repaired: int = 0
    deleted: int = 0
    rows: int = 0
    checksum: str = ""


@dataclass(slots=True)
class Summary:
    """What a rebalance did, per move (summed over entities)."""

    id: str
    store: str
    state: str
    from_epoch: int
    moves: list[MoveSummary] = field(default_factory=list)
    seconds: float = 0.0
    fence_seconds: float = 0.0
    waited_seconds: float = 0.0
    """Of ``seconds``, how long this run slept for phases to settle (the protocol's fixed
    waits: fence and cleanup, and whatever of the ``dual`` settle the copy did not cover)."""
    error: str = ""

    @property
    def copied(self) -> int:
        return sum(move.copied for move in self.moves)

    @property
    def repaired(self) -> int:
        return sum(move.repaired for move in self.moves)

    @property
    def deleted(self) -> int:
        return sum(move.deleted for move in self.moves)
