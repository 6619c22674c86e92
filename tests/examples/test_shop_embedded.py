"""The shop example on SQLite files: its stores, its routing, its checkout saga.

The same assertions (``tests.examples.shop_checks``) run on the real servers in
``test_shop_servers.py``; only the configuration differs.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.examples.processes import run_ok
from tests.examples.shop_checks import exercise
from tests.servers import ROOT
from toolkit import Toolkit
from toolkit.config import load_config
from toolkit.demo import shop
from toolkit.demo.shop import EMBEDDED_CONFIG, STACK_CONFIG, build, embedded_config


def test_the_shop_runs_on_sqlite_files(tmp_path: Path) -> None:
    with Toolkit(embedded_config(tmp_path)) as toolkit:
        placements = exercise(build(toolkit), "emb")
    assert {p.store: p.kind for p in placements} == {
        "customers": "relational",
        "ledger": "relational",
        "sellers": "relational",
        "products": "document",
        "carts": "keyvalue",
        "inventory": "keyvalue",
        "events": "column",
        "social": "graph",
    }
    assert {p.store: p.router for p in placements}["ledger"] == "range"
    assert {p.store: p.router for p in placements}["sellers"] == "directory"
    assert all(url.startswith("sqlite:///") for url in _urls(tmp_path))


def _urls(directory: Path) -> list[str]:
    config = embedded_config(directory)
    return [shard.url for store in config.stores.values() for shard in store.shards]


def test_the_shop_runs_on_the_plain_embedded_default(tmp_path: Path) -> None:
    """No config at all: one SQLite shard per store, hash-routed. The code does not care."""
    with Toolkit.embedded(tmp_path / "data") as toolkit:
        placements = exercise(build(toolkit), "plain")
    assert all(list(p.shards) == ["s0"] for p in placements)


def test_the_two_configs_declare_the_same_stores() -> None:
    """ "Only the configuration changes": same stores, kinds, routers and shard names."""
    embedded = load_config(EMBEDDED_CONFIG)
    stack = load_config(STACK_CONFIG)
    assert embedded.stores.keys() == stack.stores.keys()
    for name, store in embedded.stores.items():
        other = stack.stores[name]
        assert (store.kind, store.router, list(store.shard_urls)) == (
            other.kind,
            other.router,
            list(other.shard_urls),
        ), name
        assert {url.split(":", 1)[0] for url in other.shard_urls.values()} != {"sqlite"}, name


def test_python_m_examples_shop(tmp_path: Path) -> None:
    out = run_ok([sys.executable, "-m", "examples.shop", "--dir", str(tmp_path), "--customers", "40"], ROOT)
    assert "completed; customer 1 bought KIT-000, OFF-001" in out
    assert "compensated (step 2 (payment): PaymentDeclined" in out
    assert "after compensation: gone" in out
    assert (tmp_path / ".polystore" / "customers.s2.db").exists()


def test_the_stack_config_points_at_the_stacks_servers() -> None:
    """Every server the shop's stack config names is one stack/endpoints.toml declares."""
    import tomllib

    endpoints = (ROOT / "stack" / "endpoints.toml").read_text(encoding="utf-8")
    declared = set(re.findall(r"127\.0\.0\.1:\d+", endpoints))
    stack = load_config(STACK_CONFIG)
    used = {re.search(r"127\.0\.0\.1:\d+", shard.url).group(0) for s in stack.stores.values() for shard in s.shards}  # type: ignore[union-attr]
    assert used <= declared, used - declared
    assert tomllib.loads(endpoints)["postgres"]["catalog"] in stack.catalog.url


def test_the_shop_uses_only_the_public_api() -> None:
    """The shipped shop is an application like yours: it imports polystore's public
    packages (``toolkit``, ``toolkit.saga``, ``toolkit.config``) and itself, nothing else."""
    public = {"toolkit", "toolkit.saga", "toolkit.config"}
    for path in Path(shop.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.split(".")[0] in ("toolkit", "adapters", "sharding"):
                    assert name in public or name.startswith("toolkit.demo.shop"), (path.name, name)
