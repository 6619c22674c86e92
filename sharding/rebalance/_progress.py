"""Progress reporting: a one-method protocol, so the executor never imports rich.

The CLI passes a callable that draws bars; tests pass a list's ``append``; the
default does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Progress", "ProgressEvent", "quiet"]

EventKind = Literal["phase", "rows", "unit"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """``phase``: a step starts (``total`` rows expected, 0 if unknown). ``rows``: that
    many more rows were handled in the current step. ``unit``: one (move, entity) of the
    step finished."""

    kind: EventKind
    phase: str
    rows: int = 0
    total: int = 0
    move: int | None = None
    entity: str | None = None
    message: str = ""


class Progress(Protocol):
    def __call__(self, event: ProgressEvent) -> None: ...


def quiet(event: ProgressEvent) -> None:
    """The default: report nothing."""
