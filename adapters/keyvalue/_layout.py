"""Where one entity's rows and index members live, and how its fields are encoded.

``NS`` is the store option ``namespace`` followed by the URL's ``?prefix=``; ``E`` the
entity's table name; ``B`` a bucket number; ``K`` the hex of
``sharding.keys.encode_key(key)``, so a key holding ``{``, ``}``, ``:`` or ``*`` is
never read as syntax::

    {NS E:B}:r:K     one Redis hash per row: field name -> encoded value; absent = null
    {NS E:B}:idx     token index: members TTTTTTTTTTTTTTTT K (T: token hex), scores 0
    {NS E:B}:kidx    shard-key index: members S K LLLLLLLL (S: the ordered shard key,
                     L: the length of K in hex)
    {NS E:B}:m:H     an apply-once marker (H: SHA1 of the marker), beside its row
    NS__ps_meta      a hash: entity -> its layout (the bucket count), fixed at first ensure

A row's bucket is ``crc32(encoded key) % buckets``: the row, the index buckets that
list it and its markers share the hash tag ``{NS E:B}``, hence one cluster slot.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.base import TOKEN_FIELD, Row
from adapters.keyvalue._ordered import Unordered, ordered
from adapters.keyvalue._values import DECODE, ENCODE, TOKEN_WIDTH, token_from_hex, token_hex
from sharding.core.errors import QueryError
from sharding.core.model import EntitySchema, FieldSpec
from sharding.keys import encode_key
from sharding.keys import token as token_of

__all__ = ["KEY_FIELD", "TOKEN_NAME", "Cursor", "Layout", "Span", "buckets_of", "field_spec", "parse_member", "tags"]

KEY_FIELD: Final = b"_ps_k"
"""Hidden hash field: the row's ordered shard key, as listed in the shard-key index."""
TOKEN_NAME: Final = TOKEN_FIELD.encode()
"""The hash field of the row's token."""


def tags(prefix: str, entity: str, buckets: int) -> tuple[bytes, ...]:
    """``{NS E:B}`` for every bucket of an entity."""
    return tuple(f"{{{prefix}{entity}:{bucket}}}".encode() for bucket in range(buckets))


def buckets_of(meta: bytes) -> int:
    """The bucket count of an entity's entry in the meta hash."""
    return int(json.loads(meta)["buckets"])


def field_spec(schema: EntitySchema, name: str) -> FieldSpec:
    """The field ``name`` of ``schema``, or a QueryError listing the fields."""
    try:
        return schema.field(name)
    except KeyError:
        raise QueryError(f"{schema.name}: unknown field {name!r} (fields: {', '.join(schema.field_names)})") from None


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one entity's rows live, and how its fields are encoded."""

    schema: EntitySchema
    buckets: int
    tags: tuple[bytes, ...]
    """``{NS E:B}`` per bucket."""
    with_token: bool
    fields: tuple[FieldSpec, ...]
    names: tuple[bytes, ...]
    shard_types: tuple[str, ...]
    encoders: tuple[tuple[str, bytes, Callable[[Any], bytes]], ...] = field(init=False)
    """(field, hash field, encoder) per field: resolved once, not per row and field."""
    decoders: tuple[tuple[bytes, str, Callable[[bytes], Any]], ...] = field(init=False)
    """(hash field, field, decoder) per field, likewise (every read decodes with them)."""

    @classmethod
    def of(cls, prefix: str, schema: EntitySchema, buckets: int, with_token: bool) -> Layout:
        """The layout of ``schema`` under the key prefix ``prefix``."""
        return cls(
            schema=schema,
            buckets=buckets,
            tags=tags(prefix, schema.name, buckets),
            with_token=with_token,
            fields=schema.fields,
            names=tuple(spec.name.encode() for spec in schema.fields),
            shard_types=tuple(schema.field(name).type for name in schema.shard_key),
        )

    def __post_init__(self) -> None:
        pairs = tuple(zip(self.fields, self.names, strict=True))
        object.__setattr__(self, "encoders", tuple((spec.name, name, ENCODE[spec.type]) for spec, name in pairs))
        object.__setattr__(self, "decoders", tuple((name, spec.name, DECODE[spec.type]) for spec, name in pairs))

    def locate(self, key: Any) -> tuple[bytes, bytes, bytes]:
        """(row key, token index key, key hex) of a key."""
        encoded = encode_key(key)
        bucket = zlib.crc32(encoded) % self.buckets if self.buckets > 1 else 0
        keyhex = encoded.hex().encode()
        tag = self.tags[bucket]
        return tag + b":r:" + keyhex, tag + b":idx", keyhex

    def keys_of(self, key: Any) -> tuple[tuple[bytes, bytes, bytes], bytes, bytes]:
        """The (row, token index, shard-key index) keys of a key; key hex; member suffix."""
        row_key, index_key, keyhex = self.locate(key)
        suffix = keyhex + b"%08x" % len(keyhex)
        return (row_key, index_key, index_key[:-3] + b"kidx"), keyhex, suffix

    def marker_key(self, key: Any, marker: str) -> bytes:
        """The apply-once marker of ``marker`` on the row ``key``: beside the row, in its slot."""
        index_key = self.locate(key)[1]
        digest = hashlib.sha1(marker.encode(), usedforsecurity=False).hexdigest().encode()
        return index_key[:-3] + b"m:" + digest

    def row_key(self, bucket: int, keyhex: bytes) -> bytes:
        return self.tags[bucket] + b":r:" + keyhex

    def index_key(self, bucket: int) -> bytes:
        return self.tags[bucket] + b":idx"

    def key_index_key(self, bucket: int) -> bytes:
        return self.tags[bucket] + b":kidx"

    def ordered_shard_key(self, row: Row) -> bytes:
        try:
            return ordered(self.schema.shard_key_of(row))
        except Unordered as exc:
            raise QueryError(f"{self.schema.name}: shard key has no ordered encoding: {exc}") from None

    def encode(self, row: Row) -> tuple[list[bytes], bytes]:
        """Flat field/value pairs (nulls omitted) and the token hex of a row."""
        pairs: list[bytes] = []
        for name, stored, encode in self.encoders:
            try:
                value = row[name]
            except KeyError:
                raise QueryError(f"row for {self.schema.name} lacks field {name!r}") from None
            if value is not None:
                pairs += (stored, encode(value))
        token = row.get(TOKEN_FIELD)
        if token is None:
            token = token_of(self.schema.shard_key_of(row))
        tokenhex = token_hex(int(token))
        pairs += (TOKEN_NAME, tokenhex)
        return pairs, tokenhex

    def decode(self, raw: Mapping[bytes, bytes]) -> Row:
        row: Row = {}
        found = raw.get
        for stored, name, decode in self.decoders:
            value = found(stored)
            row[name] = None if value is None else decode(value)
        if self.with_token:
            token = found(TOKEN_NAME)
            if token is not None:
                row[TOKEN_FIELD] = token_from_hex(token)
        return row

    def decode_fields(self, specs: Sequence[FieldSpec], values: Sequence[bytes | None]) -> Row:
        return {
            spec.name: None if value is None else DECODE[spec.type](value)
            for spec, value in zip(specs, values, strict=True)
        }


@dataclass(frozen=True, slots=True)
class Span:
    """A ZRANGEBYLEX range (``[x``/``(x``/``-``/``+``) of the token or shard-key index."""

    low: bytes
    high: bytes
    by_key: bool = False


def parse_member(member: bytes, by_key: bool) -> tuple[bytes, bytes]:
    """(key hex, what the row must still say) of an index member."""
    if not by_key:
        return member[TOKEN_WIDTH:], member[:TOKEN_WIDTH]
    length = int(member[-8:], 16)
    return member[-8 - length : -8], member[: -8 - length]


@dataclass(slots=True)
class Cursor:
    """Keyset position of one bucket during a walk of the index."""

    bucket: int
    low: bytes
    done: bool = False
