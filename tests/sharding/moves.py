"""What every router's ``moves_to`` must satisfy, shared by the hash-ring and range tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sharding import Router
from sharding.base import DirectoryKeys, Move


def assert_one_move_iff_owner_changes(before: Router, after: Router, moves: Sequence[Move], key: Any, at: Any) -> None:
    """``key`` (found in a move's span as ``at``: its token or itself) is covered by no move
    when its owner stays, and by exactly one, from the old owner to the new, when it changes.
    For hash and range routers only: a directory's moves name keys, not spans to look into."""
    spans = [(move, move.span) for move in moves]
    assert not any(isinstance(span, DirectoryKeys) for _, span in spans)
    covering = [move for move, span in spans if not isinstance(span, DirectoryKeys) and at in span]
    if before.shard_for(key) == after.shard_for(key):
        assert covering == []
    else:
        assert len(covering) == 1
        assert (covering[0].source, covering[0].target) == (before.shard_for(key), after.shard_for(key))
