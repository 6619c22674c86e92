"""polystore.toml -> typed, validated configuration objects.

The file describes the catalog and every store::

    data_dir = ".polystore"                # where embedded SQLite files go (relative to this file)

    [catalog]
    url = "sqlite:///.polystore/catalog.db"

    [stores.users]
    kind = "relational"                    # relational | document | keyvalue | column | graph
    [stores.users.shards]
    s0 = "postgresql://app:${PG_PASSWORD}@db0:5432/users"
    s1 = "postgresql://app:${PG_PASSWORD}@db1:5432/users"
    [stores.users.router]
    type = "hash"                          # hash | range | directory, plus the router's options
    [stores.users.resilience.breaker]      # optional: breaker, bulkhead, throttle, retry
    failures = 5                           # (see toolkit.resilience for every field)

Every string may use ``${NAME}`` or ``${NAME:-default}`` to read the environment, so
secrets stay out of the file. Every error is a ``ConfigError`` whose message starts
with the file and the dotted field, e.g. ``polystore.toml: stores.users.kind: ...``.

With no file at all, ``Config.embedded()`` is the default: the catalog and every store
live in SQLite files under one directory, so an application runs with no server.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from adapters.base import parse_options
from adapters.registry import adapter_class, known_schemes, scheme_of
from sharding.factories import router_from_config
from toolkit.errors import ConfigError, DriverMissingError, ToolkitError
from toolkit.resilience._policy import (
    BreakerPolicy,
    BulkheadPolicy,
    PolicyError,
    ResiliencePolicy,
    RetryPolicy,
    ThrottlePolicy,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_DATA_DIR",
    "KINDS",
    "CatalogConfig",
    "Config",
    "RouterConfig",
    "ShardConfig",
    "StoreConfig",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_FILE: Final = "polystore.toml"
DEFAULT_DATA_DIR: Final = ".polystore"
KINDS: Final = ("relational", "document", "keyvalue", "column", "graph")
ROUTER_TYPES: Final = ("hash", "range", "directory")

_P = TypeVar("_P")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """One shard of a store: its name and the URL of the database that holds it."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The router type and its type-specific options (validated by ``sharding``)."""

    type: str = "hash"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """A store: a name, a kind, its shards (in order) and how keys are routed to them."""

    name: str
    kind: str
    shards: tuple[ShardConfig, ...]
    router: RouterConfig = field(default_factory=RouterConfig)
    options: Mapping[str, Any] = field(default_factory=dict)
    resilience: ResiliencePolicy = field(default_factory=ResiliencePolicy)
    """The guard in front of the store's adapters (``[stores.NAME.resilience]``)."""

    @property
    def shard_urls(self) -> dict[str, str]:
        return {shard.name: shard.url for shard in self.shards}


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    url: str


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration. ``source`` is the file it came from (None if built in code)."""

    catalog: CatalogConfig
    stores: Mapping[str, StoreConfig]
    data_dir: Path
    source: str | None = None

    @property
    def embedded(self) -> bool:
        """True for the no-file default: undeclared stores are created as SQLite files."""
        return self.source is None and not self.stores

    @classmethod
    def embedded_default(cls, data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> Config:
        """The configuration used when there is no polystore.toml."""
        root = Path(data_dir).resolve()
        return cls(catalog=CatalogConfig(sqlite_url(root / "catalog.db")), stores={}, data_dir=root)

    def embedded_store(self, name: str, shards: int = 1) -> StoreConfig:
        """The store an undeclared entity gets under the embedded default."""
        return StoreConfig(
            name=name,
            kind="relational",
            shards=tuple(
                ShardConfig(f"s{index}", sqlite_url(self.data_dir / f"{name}.s{index}.db")) for index in range(shards)
            ),
        )


def sqlite_url(path: Path) -> str:
    """An absolute SQLite URL for a file path."""
    return f"sqlite:///{path.resolve()}"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read a config file; with no path, ``./polystore.toml`` or the embedded default.

    ``POLYSTORE_CONFIG`` in the environment names the file when no path is given.
    """
    if path is None:
        path = os.environ.get("POLYSTORE_CONFIG")
        if path is None:
            if not Path(DEFAULT_CONFIG_FILE).exists():
                return Config.embedded_default()
            path = DEFAULT_CONFIG_FILE
    file = Path(path)
    name = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file (run `polystore init` to write an example)", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=name) from None
    return parse_config(text, file=name, base_dir=file.resolve().parent)


def parse_config(
    text: str,
    *,
    file: str = DEFAULT_CONFIG_FILE,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate TOML text. ``base_dir`` anchors relative SQLite paths."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    return _Parser(file, base_dir or Path.cwd(), os.environ if env is None else env).config(raw)


class _Parser:
    """Walks the TOML document; every error names the file and the dotted field."""

    def __init__(self, file: str, base_dir: Path, env: Mapping[str, str]) -> None:
        self.file = file
        self.base_dir = base_dir
        self.env = env

    def error(self, field_path: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, field=field_path)

    def table(self, value: Any, path: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a table, found {type(value).__name__}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.error(
                        f"{path}.{key}" if path else key,
                        f"unknown field (expected one of: {', '.join(allowed)})",
                    )
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, found {type(value).__name__}")
        return self.interpolate(value, path)

    def interpolate(self, value: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = self.env.get(name)
            if found is None:
                if default is None:
                    raise self.error(path, f"environment variable {name} is not set (use ${{{name}:-default}})")
                return default
            return found

        return _ENV.sub(replace, value)

    def interpolate_all(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.interpolate(value, path)
        if isinstance(value, dict):
            return {key: self.interpolate_all(item, f"{path}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [self.interpolate_all(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    def url(self, value: Any, path: str) -> str:
        url = self.string(value, path)
        try:
            scheme = scheme_of(url)
        except ToolkitError as exc:
            raise self.error(path, str(exc)) from None
        if scheme not in known_schemes():
            raise self.error(
                path, f"no adapter for URL scheme {scheme!r} (known: {', '.join(sorted(known_schemes()))})"
            )
        if scheme == "sqlite":
            url = self.anchor_sqlite(url)
        return url

    def anchor_sqlite(self, url: str) -> str:
        """Make a relative SQLite path relative to the config file, not the cwd."""
        rest = url.split(":///", 1)[1] if ":///" in url else ""
        if rest in ("", ":memory:") or rest.startswith("/"):
            return url
        return sqlite_url(self.base_dir / rest)

    def config(self, raw: dict[str, Any]) -> Config:
        self.table(raw, "", ("data_dir", "catalog", "stores"))
        data_dir = self.base_dir / self.string(raw.get("data_dir", DEFAULT_DATA_DIR), "data_dir")
        catalog_raw = self.table(raw.get("catalog", {}), "catalog", ("url",))
        if "url" in catalog_raw:
            catalog = CatalogConfig(self.url(catalog_raw["url"], "catalog.url"))
        else:
            catalog = CatalogConfig(sqlite_url(data_dir / "catalog.db"))
        stores_raw = self.table(raw.get("stores", {}), "stores")
        stores = {name: self.store(name, value) for name, value in stores_raw.items()}
        return Config(catalog=catalog, stores=stores, data_dir=data_dir.resolve(), source=self.file)

    def store(self, name: str, raw: Any) -> StoreConfig:
        path = f"stores.{name}"
        if not _NAME.match(name):
            raise self.error(path, "store names are letters, digits and _ (at most 63)")
        body = self.table(raw, path, ("kind", "shards", "router", "options", "resilience"))
        kind = self.string(body.get("kind", "relational"), f"{path}.kind")
        if kind not in KINDS:
            raise self.error(f"{path}.kind", f"expected one of {', '.join(KINDS)}, found {kind!r}")
        if "shards" not in body:
            raise self.error(f"{path}.shards", "missing: a table of shard name = URL")
        shards_raw = self.table(body["shards"], f"{path}.shards")
        if not shards_raw:
            raise self.error(f"{path}.shards", "a store needs at least one shard")
        shards = []
        for shard_name, url in shards_raw.items():
            if not _NAME.match(shard_name):
                raise self.error(f"{path}.shards.{shard_name}", "shard names are letters, digits and _")
            shards.append(ShardConfig(shard_name, self.url(url, f"{path}.shards.{shard_name}")))
        router = self.router(body.get("router", {}), f"{path}.router", [shard.name for shard in shards])
        options = self.interpolate_all(self.table(body.get("options", {}), f"{path}.options"), f"{path}.options")
        self.check_options(name, shards, options)
        resilience = self.resilience(body.get("resilience", {}), f"{path}.resilience")
        return StoreConfig(
            name=name, kind=kind, shards=tuple(shards), router=router, options=options, resilience=resilience
        )

    def check_options(self, store: str, shards: list[ShardConfig], options: Mapping[str, Any]) -> None:
        """Each shard's adapter accepts ``options`` (its typed ``Options``): an unknown name or a
        wrong type is refused here, naming the file, store, shard and option, not at first use.
        A shard whose driver is not installed is checked when it is (its first use says which
        extra to install)."""
        for shard in shards:
            try:
                cls = adapter_class(scheme_of(shard.url))
            except DriverMissingError:
                continue
            parse_options(cls.Options, options, store=store, shard=shard.name, file=self.file)

    def resilience(self, raw: Any, path: str) -> ResiliencePolicy:
        """``[stores.NAME.resilience]``: ``enabled`` and the breaker, bulkhead, throttle and
        retry sub-tables, each field checked by type here and by value by its policy."""
        body = self.table(raw, path, ("enabled", "breaker", "bulkhead", "throttle", "retry"))
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.error(f"{path}.enabled", f"expected true or false, found {type(enabled).__name__}")
        return ResiliencePolicy(
            enabled=enabled,
            breaker=self.policy(BreakerPolicy, body.get("breaker", {}), f"{path}.breaker"),
            bulkhead=self.policy(BulkheadPolicy, body.get("bulkhead", {}), f"{path}.bulkhead"),
            throttle=self.policy(ThrottlePolicy, body.get("throttle", {}), f"{path}.throttle"),
            retry=self.policy(RetryPolicy, body.get("retry", {}), f"{path}.retry"),
        )

    def policy(self, cls: type[_P], raw: Any, path: str) -> _P:
        """A frozen policy dataclass from a TOML table whose keys are its field names."""
        hints = typing.get_type_hints(cls)
        names = tuple(item.name for item in dataclasses.fields(cls))  # type: ignore[arg-type]
        body = self.table(raw, path, names)
        values = {name: self.policy_value(value, hints[name], f"{path}.{name}") for name, value in body.items()}
        try:
            return cls(**values)
        except PolicyError as exc:
            raise self.error(f"{path}.{exc.field}", exc.message) from None

    def policy_value(self, value: Any, hint: Any, path: str) -> Any:
        """Check one TOML value against a policy field's type (bool, int, float, a choice)."""
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        options = tuple(option for option in options if option is not type(None))
        expected = options[0]
        if expected is bool:
            if not isinstance(value, bool):
                raise self.error(path, f"expected true or false, found {type(value).__name__}")
            return value
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(path, f"expected a whole number, found {type(value).__name__}")
            return value
        if expected is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(path, f"expected a number, found {type(value).__name__}")
            return float(value)
        choices = typing.get_args(expected)  # a Literal of strings
        text = self.string(value, path)
        if text not in choices:
            raise self.error(path, f"expected one of {', '.join(choices)}, found {text!r}")
        return text

    def router(self, raw: Any, path: str, shard_names: list[str]) -> RouterConfig:

        body = self.table(raw, path)
        router_type = self.string(body.get("type", "hash"), f"{path}.type")
        if router_type not in ROUTER_TYPES:
            raise self.error(f"{path}.type", f"expected one of {', '.join(ROUTER_TYPES)}, found {router_type!r}")
        options = self.interpolate_all({key: value for key, value in body.items() if key != "type"}, path)
        try:
            router_from_config(router_type, shard_names, options)
        except ToolkitError as exc:
            message = str(exc)
            # Routers name the option ("router.weights.s9: ..."); anchor it under this store.
            if message.startswith("router."):
                option, _, rest = message.partition(": ")
                raise self.error(f"{path}.{option.removeprefix('router.')}", rest) from None
            raise self.error(path, message) from None
        return RouterConfig(type=router_type, options=options)
