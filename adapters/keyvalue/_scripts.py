"""The adapter's Lua scripts, and how they run: by SHA1, reloaded when the server lost them.

Every write that must keep a row and its index entries in step is one script, because
Redis Cluster runs a script atomically only within one slot, and a row, its index
buckets' members and its apply-once markers share a hash tag. Scripts run with
``EVALSHA`` of the SHA1 computed here (Redis names a script by the SHA1 of its text);
after a restart or ``SCRIPT FLUSH`` a ``NOSCRIPT`` reply loads the script (on every
primary of a cluster) and runs the call again, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import redis.exceptions as rex

from adapters.keyvalue._connection import Client

__all__ = [
    "CLEAN",
    "DELETE",
    "INCREMENT",
    "INCREMENT_ONCE",
    "MARKER_TTL",
    "PUT",
    "UPDATE",
    "Call",
    "Script",
    "run",
    "run_many",
]

CHUNK: Final = 500
"""Commands per pipeline round trip for writes and key lookups."""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and the SHA1 Redis knows it by."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest())


Call: TypeAlias = tuple[Script, Sequence[bytes | str], Sequence[Any]]
"""(script, keys, args): one script call of a pipelined batch."""


# KEYS[1] is the row hash, KEYS[2] its bucket's token index, KEYS[3] its bucket's
# shard-key index: all in one slot (hash tag). A token member is token hex .. ARGV[1]
# (key hex); a shard-key member is ordered shard key .. ARGV[2] (key hex, its length).

PUT: Final = Script("""
local old = redis.call('HMGET', KEYS[1], '_ps_token', '_ps_k')
if old[1] and old[1] ~= ARGV[3] then redis.call('ZREM', KEYS[2], old[1] .. ARGV[1]) end
if old[2] and old[2] ~= ARGV[4] then redis.call('ZREM', KEYS[3], old[2] .. ARGV[2]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
redis.call('ZADD', KEYS[2], 0, ARGV[3] .. ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[4] .. ARGV[2])
return 1
""")
"""Replace a row (ARGV[6:]: field/value pairs; ARGV[5]: PEXPIRE milliseconds or 0) and
move its index members when its token (ARGV[3]) or ordered shard key (ARGV[4]) changed."""

DELETE: Final = Script("""
local old = redis.call('HMGET', KEYS[1], '_ps_token', '_ps_k')
if not old[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], old[1] .. ARGV[1])
if old[2] then redis.call('ZREM', KEYS[3], old[2] .. ARGV[2]) end
return 1
""")
"""Delete a row and its index members: 1 if it existed."""

CLEAN: Final = Script("""
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
""")
"""Remove an index member (ARGV[1]) unless the row's field ARGV[2] still says ARGV[3]."""

_ADD: Final = """
local function add(delta)
  if ARGV[2] == 'int' then
    redis.call('HINCRBY', KEYS[1], ARGV[1], delta)
    return redis.call('HGET', KEYS[1], ARGV[1])
  end
  local current = redis.call('HGET', KEYS[1], ARGV[1])
  local value = (current and tonumber(current) or 0) + tonumber(delta)
  local text = string.format('%.17g', value)
  redis.call('HSET', KEYS[1], ARGV[1], text)
  return text
end
"""
# Add ``delta`` to field ARGV[1] (of type ARGV[2]) of the row KEYS[1]: HINCRBY for int
# fields (exact 64-bit), double arithmetic printed with %.17g for floats (round-trips).

INCREMENT: Final = Script(
    _ADD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return add(ARGV[3])
"""
)
"""Add ARGV[3] to a field of an existing row; false (None) if there is no row."""

INCREMENT_ONCE: Final = Script(
    _ADD
    + """
local state = redis.call('GET', KEYS[2])
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if ARGV[4] == 'do' then
  if state then return {0, current} end
  if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
  redis.call('SET', KEYS[2], 'applied', 'PX', ARGV[5])
  return {1, add(ARGV[3])}
end
if state == 'applied' then
  redis.call('SET', KEYS[2], 'undone', 'PX', ARGV[5])
  if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
  return {1, add(ARGV[6])}
end
if not state then redis.call('SET', KEYS[2], 'undone', 'PX', ARGV[5]) end
return {0, current}
"""
)
"""APPLY_ONCE: KEYS[2] is the marker (same hash tag as the row). ``do`` (ARGV[4]) adds
ARGV[3] unless the marker exists; ``undo`` adds ARGV[6] (the negated amount) only if
the marker says ``applied``, and otherwise leaves an ``undone`` tombstone so that a late
``do`` does nothing. Markers expire after ARGV[5] ms. Returns {applied?, value} (-1:
no row to increment)."""

MARKER_TTL: Final = 30 * 24 * 3600
"""Seconds an apply-once marker is kept (a saga older than this is not replayed)."""

UPDATE: Final = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if ARGV[i + 1] == '0' then
    if current then return 0 end
  elseif current ~= ARGV[i + 2] then
    return 0
  end
  i = i + 3
end
local sets = tonumber(ARGV[i])
i = i + 1
for _ = 1, sets do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local deletes = tonumber(ARGV[i])
i = i + 1
for _ = 1, deletes do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
return 1
""")
"""Compare-and-set of some hash fields: -1 no row, 0 a checked field changed, 1 done."""


def run(client: Client, script: Script, keys: Sequence[bytes | str], args: Sequence[Any]) -> Any:
    """Run one script; load it and run again if the server does not know it."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except rex.NoScriptError:
        client.script_load(script.source)
        return client.evalsha(script.sha, len(keys), *keys, *args)


def run_many(client: Client, pipeline: Callable[[], Any], calls: Sequence[Call]) -> list[Any]:
    """Run many script calls pipelined, in chunks; load and retry those that met NOSCRIPT."""
    results: list[Any] = []
    for start in range(0, len(calls), CHUNK):
        chunk = calls[start : start + CHUNK]
        pending = list(range(len(chunk)))
        done: list[Any] = [None] * len(chunk)
        for attempt in range(2):
            pipe = pipeline()
            for index in pending:
                script, keys, args = chunk[index]
                # execute_command: redis-py's cluster pipeline blocks the evalsha helper
                # (it cannot know the keys), but routes EVALSHA by its keys correctly.
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
            retry = []
            for index, reply in zip(pending, replies, strict=True):
                if isinstance(reply, rex.NoScriptError) and attempt == 0:
                    retry.append(index)
                elif isinstance(reply, BaseException):
                    raise reply
                else:
                    done[index] = reply
            if not retry:
                break
            for script in {chunk[index][0] for index in retry}:
                client.script_load(script.source)
            pending = retry
        results.extend(done)
    return results
