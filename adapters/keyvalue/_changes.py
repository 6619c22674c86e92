"""``ChangeOps``: changes to one row on the server (increments, apply-once increments,
partial updates) and scripts run on a caller's behalf.

``increment`` is a Lua script: ``HINCRBY`` for int fields (exact 64-bit), double
arithmetic printed with ``%.17g`` for float fields (round-trips exactly); a missing row
raises NotFoundError and is not created.

``increment_once`` (APPLY_ONCE) is the same arithmetic in a script that also checks and
sets a marker key beside the row (same hash tag, so the same cluster slot): the marker
and the increment commit together, so a saga step that repeats it applies it exactly
once, and an undo that comes first leaves a tombstone a late ``do`` respects.

``update`` (PARTIAL_UPDATE) writes top-level fields with HSET/HDEL in one script; a
dotted path reads its json field, edits it in Python and writes it back with a
compare-and-set script, retried if that field changed in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from adapters._paths import set_path
from adapters.keyvalue import _scripts as lua
from adapters.keyvalue._errors import ERRORS
from adapters.keyvalue._layout import field_spec
from adapters.keyvalue._shard import RedisShard
from adapters.keyvalue._values import ENCODE, decode_json, jsonable, number_text
from sharding.core.errors import NotFoundError, QueryError, StoreError
from sharding.core.model import EntitySchema, FieldSpec

__all__ = ["ChangeOps"]

_CAS_ATTEMPTS: Final = 200
"""Compare-and-set rounds of one partial update before giving up (retryable)."""


class ChangeOps(RedisShard):
    """The server-side change half of ``KeyValueAdapter``."""

    # -- increments ------------------------------------------------------------------
    def increment(self, schema: EntitySchema, key: Any, field: str, amount: int | float) -> int | float:
        layout = self._get_layout(schema)
        spec = self._numeric_field(schema, field, amount)
        row_key, index_key, _ = layout.locate(key)
        with ERRORS.translating(self.store, self.shard, key):
            reply = self._script(
                lua.INCREMENT, (row_key, index_key), (field, spec.type, number_text(amount, spec.type))
            )
        if reply is None:
            raise self._no_row(schema, key)
        return int(reply) if spec.type == "int" else float(reply)

    def increment_once(
        self, schema: EntitySchema, key: Any, field: str, amount: int | float, *, marker: str, undo: bool = False
    ) -> int | float | None:
        """``increment`` tied to ``marker`` in one script (see the module docstring)."""
        layout = self._get_layout(schema)
        spec = self._numeric_field(schema, field, amount)
        keys = (layout.locate(key)[0], layout.marker_key(key, marker))
        text, negated = number_text(amount, spec.type), number_text(-amount, spec.type)
        args = (field, spec.type, text, "undo" if undo else "do", lua.MARKER_TTL * 1000, negated)
        with ERRORS.translating(self.store, self.shard, key):
            status, value = self._script(lua.INCREMENT_ONCE, keys, args)
        if int(status) == -1:
            raise self._no_row(schema, key)
        if not value:
            return None
        return int(value) if spec.type == "int" else float(value)

    def _no_row(self, schema: EntitySchema, key: Any) -> NotFoundError:
        return NotFoundError(f"{schema.name}: no row to increment", store=self.store, shard=self.shard, key=key)

    def _numeric_field(self, schema: EntitySchema, name: str, amount: int | float) -> FieldSpec:
        spec = field_spec(schema, name)
        if spec.type not in ("int", "float") or name in schema.key or name in schema.shard_key:
            raise QueryError(f"{schema.name}.{name}: increment needs a non-key int or float field")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise QueryError(f"{schema.name}.{name}: increment by a number, not {amount!r}")
        if spec.type == "int" and not isinstance(amount, int):
            raise QueryError(f"{schema.name}.{name} is int; increment it by an int, not {amount!r}")
        return spec

    # -- scripts ---------------------------------------------------------------------
    def run_script(self, script: str, keys: Sequence[bytes | str], args: Sequence[Any]) -> Any:
        """Run a caller's Lua script through this shard's client (by SHA1, loaded when
        the server does not know it). On a cluster, every key must be in one slot."""
        with ERRORS.translating(self.store, self.shard):
            return self._script(lua.Script(script), keys, args)

    # -- partial updates -------------------------------------------------------------
    def update(self, schema: EntitySchema, key: Any, changes: Mapping[str, Any]) -> bool:
        """Set top-level fields (HSET/HDEL) and dotted paths inside json fields.

        Top-level changes are blind writes in one script. A dotted path needs the json
        field's current value: it is read, changed in Python and written back by a
        compare-and-set script that fails if that field changed meanwhile (then the
        read is retried), so concurrent updates of different paths are all kept.
        """
        layout = self._get_layout(schema)
        paths = self._update_paths(schema, changes)
        row_key, _, _ = layout.locate(key)
        nested = [head for head, steps in paths if steps]
        heads = list(dict.fromkeys(nested))
        with ERRORS.translating(self.store, self.shard, key):
            for _ in range(_CAS_ATTEMPTS):
                current = cast(list[bytes | None], self.client.hmget(row_key, heads)) if heads else []
                values = self._apply(schema, paths, changes, dict(zip(heads, current, strict=True)))
                args = self._update_args(schema, heads, current, values)
                reply = int(self._script(lua.UPDATE, (row_key,), args))
                if reply != 0:  # 0: a json field changed since it was read; read again
                    return reply == 1
        raise StoreError(
            "the row kept changing during a partial update", store=self.store, shard=self.shard, key=key, retryable=True
        )

    @staticmethod
    def _update_paths(schema: EntitySchema, changes: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
        paths: list[tuple[str, list[str]]] = []
        for path in changes:
            head, dot, rest = path.partition(".")
            spec = field_spec(schema, head)
            if head in schema.key or head in schema.shard_key:
                raise QueryError(f"{schema.name}.{head} is part of the key or shard key; it cannot change")
            if dot and spec.type != "json":
                raise QueryError(f"{schema.name}.{head} is {spec.type}, not a nested field: {path!r}")
            paths.append((head, rest.split(".") if dot else []))
        return paths

    @staticmethod
    def _apply(
        schema: EntitySchema,
        paths: Sequence[tuple[str, list[str]]],
        changes: Mapping[str, Any],
        current: Mapping[str, bytes | None],
    ) -> dict[str, Any]:
        """The new value of every top-level field the changes touch, in change order."""
        values: dict[str, Any] = {}
        for (head, steps), (path, value) in zip(paths, changes.items(), strict=True):
            if not steps:
                values[head] = jsonable(value) if schema.field(head).type == "json" else value
                continue
            if head not in values:
                raw = current.get(head)
                values[head] = None if raw is None else decode_json(raw)
            values[head] = set_path(values[head], steps, value, path=path, convert=jsonable)
        return values

    @staticmethod
    def _update_args(
        schema: EntitySchema, heads: Sequence[str], current: Sequence[bytes | None], values: Mapping[str, Any]
    ) -> list[Any]:
        args: list[Any] = [len(heads)]
        for head, raw in zip(heads, current, strict=True):
            args += [head, b"0" if raw is None else b"1", b"" if raw is None else raw]
        sets = [(name, value) for name, value in values.items() if value is not None]
        deletes = [name for name, value in values.items() if value is None]
        args.append(len(sets))
        for name, value in sets:
            args += [name, ENCODE[schema.field(name).type](value)]
        args.append(len(deletes))
        args += deletes
        return args
