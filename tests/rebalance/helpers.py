"""Configs, entities and a full-comparison check shared by the rebalance tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.backends import options_toml
from toolkit import Entity, Toolkit
from toolkit.config import Config, parse_config


class Item(Entity, store="items", key="id"):
    """The entity every rebalance test moves: a scalar, a number and a JSON field."""

    id: int
    name: str
    version: int = 0
    tags: list[str] = []


def config_text(
    shards: Mapping[str, str],
    *,
    router: str = "hash",
    router_options: str = "",
    catalog: str = "sqlite:///catalog.db",
    store: str = "items",
    kind: str = "relational",
    options: str | Mapping[str, Any] = "",
) -> str:
    lines = [f'[catalog]\nurl = "{catalog}"', f'[stores.{store}]\nkind = "{kind}"', f"[stores.{store}.shards]"]
    lines += [f'{name} = "{url}"' for name, url in shards.items()]
    lines.append(f'[stores.{store}.router]\ntype = "{router}"\n{router_options}')
    if options:
        rendered = options if isinstance(options, str) else options_toml(dict(options))
        lines.append(f"[stores.{store}.options]\n{rendered}")
    return "\n".join(lines) + "\n"


def sqlite_shards(count: int, prefix: str = "s", start: int = 0) -> dict[str, str]:
    return {f"{prefix}{i}": f"sqlite:///{prefix}{i}.db" for i in range(start, start + count)}


def write_config(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load(directory: Path, text: str) -> Config:
    return parse_config(text, file="test.toml", base_dir=directory)


def item(i: int, version: int = 0) -> dict[str, Any]:
    return {"id": i, "name": f"item-{i}", "version": version, "tags": [f"t{i % 7}", "x"]}


def digest(row: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def physical_rows(toolkit: Toolkit, entity: type[Entity] = Item) -> dict[str, list[dict[str, Any]]]:
    """Every row on every shard the current topology names, straight from the adapters."""
    repository = toolkit.repository(entity)
    store = repository.store
    store.refresh()
    found: dict[str, list[dict[str, Any]]] = {}
    for shard in store.router.shards:
        rows: list[dict[str, Any]] = []
        for batch in store.ensure(repository.schema, shard).scan(repository.schema):
            for row in batch:
                row.pop("_ps_token", None)
                rows.append(row)
        found[str(shard)] = rows
    return found


def compare(toolkit: Toolkit, reference: Mapping[int, Mapping[str, Any]], entity: type[Entity] = Item) -> list[str]:
    """Problems between the store and ``reference`` (key -> row): lost, duplicated,
    misplaced, corrupted or resurrected rows. Empty means identical."""
    repository = toolkit.repository(entity)
    repository.store.refresh()
    router = repository.store.router
    problems: list[str] = []
    seen: dict[Any, str] = {}
    for shard, rows in physical_rows(toolkit, entity).items():
        for row in rows:
            key = row["id"]
            if key in seen:
                problems.append(f"duplicated {key} on {seen[key]} and {shard}")
            seen[key] = shard
            if router.shard_for(key) != shard:
                problems.append(f"misplaced {key} on {shard}, owner {router.shard_for(key)}")
            expected = reference.get(key)
            if expected is None:
                problems.append(f"resurrected or unknown {key}")
            elif digest(row) != digest(expected):
                problems.append(f"corrupted {key}: {row} != {expected}")
    problems += [f"lost {key}" for key in reference if key not in seen]
    return problems


def reference_of(rows: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: dict(row) for row in rows}
