"""The two router factories: a router from a store's config table, or from a catalog spec.

Callers use these and the ``Router`` protocol, never a router class by name. Every error
names the offending option or field (``router.weights.s9: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from sharding.base import Router
from sharding.core.errors import InvalidKeyError, TopologyError
from sharding.directory import DirectoryRouter
from sharding.hashring import DEFAULT_SLOTS, HashRouter
from sharding.keys import encode_key, key_from_json
from sharding.range import RangeRouter

__all__ = ["ROUTER_TYPES", "router_from_config", "router_from_spec"]

ROUTER_TYPES: Final = ("hash", "range", "directory")
_OPTIONS: Final = {
    "hash": ("slots", "weights"),
    "range": ("ranges", "bounded"),
    "directory": ("fallback", "entries"),
}


def router_from_spec(spec: Mapping[str, Any], *, directory_entries: Mapping[bytes, str] | None = None) -> Router:
    """The router a catalog spec (``Router.to_spec()``) describes.

    A directory router's entries are not part of its spec; pass them (encoded key ->
    shard, as loaded from the catalog) in ``directory_entries``.
    """

    if not isinstance(spec, Mapping):
        raise TopologyError(f"spec: expected a router spec table, not {spec!r}")
    kind = spec.get("type")
    if kind == "hash":
        return HashRouter.from_spec(spec)
    if kind == "range":
        return RangeRouter.from_spec(spec)
    if kind == "directory":
        return DirectoryRouter.from_spec(spec, directory_entries)
    raise TopologyError(f"type: expected one of {', '.join(ROUTER_TYPES)}, not {kind!r}")


def router_from_config(type: str, shards: Sequence[str], options: Mapping[str, Any]) -> Router:
    """A fresh router for a store from its ``[stores.X.router]`` options.

    ``hash``: ``slots`` (power of two, default 16384), ``weights`` (shard -> positive
    number, default 1 each). ``range``: ``ranges`` (``[{shard, upto}, ...]``),
    ``bounded``. ``directory``: ``fallback`` (a nested router table with its own
    ``type``, default hash over every shard) and ``entries`` (either a table of
    ``"key" = "shard"`` for string keys, or a list of ``{key, shard}`` for typed keys).
    """
    return _build(type, shards, options, "router")


def _build(kind: object, shards: Sequence[str], options: Mapping[str, Any], where: str) -> Router:

    if kind not in _OPTIONS:
        raise TopologyError(f"{where}.type: expected one of {', '.join(ROUTER_TYPES)}, not {kind!r}")
    if isinstance(shards, str) or not shards:
        raise TopologyError(f"{where}: a store needs at least one shard, not {shards!r}")
    names = [str(name) for name in shards]
    if len(set(names)) != len(names):
        raise TopologyError(f"{where}: shard names must be unique, not {', '.join(names)}")
    listed = ", ".join(names)
    if not isinstance(options, Mapping):
        raise TopologyError(f"{where}: expected a table of options, not {options!r}")
    allowed = _OPTIONS[str(kind)]
    for option in options:
        if option != "type" and option not in allowed:
            raise TopologyError(
                f"{where}.{option}: unknown option for a {kind} router (expected: {', '.join(allowed)})"
            )
    try:
        if kind == "hash":
            return _hash(names, listed, options, where)
        if kind == "range":
            return RangeRouter(options.get("ranges", ()), bounded=options.get("bounded", False), shards=names)
        return _directory(names, listed, options, where)
    except TopologyError as exc:
        message = str(exc)
        if message.startswith(f"{where}."):
            raise
        raise TopologyError(f"{where}.{message}") from exc


def _hash(names: list[str], listed: str, options: Mapping[str, Any], where: str) -> HashRouter:

    weights = options.get("weights", {})
    if not isinstance(weights, Mapping):
        raise TopologyError(f"{where}.weights: expected a table of shard = weight, not {weights!r}")
    for name in weights:
        if name not in names:
            raise TopologyError(f"{where}.weights.{name}: unknown shard {name!r} (shards: {listed})")
    return HashRouter.create({name: weights.get(name, 1) for name in names}, slots=options.get("slots", DEFAULT_SLOTS))


def _directory(names: list[str], listed: str, options: Mapping[str, Any], where: str) -> DirectoryRouter:

    nested = options.get("fallback", {"type": "hash"})
    if not isinstance(nested, Mapping):
        raise TopologyError(f"{where}.fallback: expected a router table with a type, not {nested!r}")
    nested_kind = nested.get("type", "hash")
    fallback = _build(nested_kind, names, {k: v for k, v in nested.items() if k != "type"}, f"{where}.fallback")
    raw = options.get("entries", {})
    pins: dict[bytes, str] = {}
    if isinstance(raw, Mapping):
        items = [(key, shard, f"{where}.entries.{key}") for key, shard in raw.items()]
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        items = []
        for index, item in enumerate(raw):
            if not isinstance(item, Mapping) or set(item) != {"key", "shard"}:
                raise TopologyError(f"{where}.entries[{index}]: expected {{key = ..., shard = ...}}, not {item!r}")
            items.append((item["key"], item["shard"], f"{where}.entries[{index}]"))
    else:
        raise TopologyError(f"{where}.entries: expected a table of key = shard, not {raw!r}")
    for key, shard, field in items:
        if shard not in names:
            raise TopologyError(f"{field}: unknown shard {shard!r} (shards: {listed})")
        try:
            encoded = encode_key(key_from_json(key))
        except InvalidKeyError as exc:
            raise TopologyError(f"{field}: {exc}") from exc
        if encoded in pins:
            raise TopologyError(f"{field}: key {key!r} is pinned twice")
        pins[encoded] = shard
    return DirectoryRouter(pins, fallback, names)
