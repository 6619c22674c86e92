"""The shop example on SQLite files: its stores, its routing, its checkout saga.

The same assertions (``tests.examples.shop_checks``) run on the real servers in
``test_shop_servers.py``; only the configuration differs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from examples.shop import build, embedded_config
from tests.examples.shop_checks import exercise
from tests.servers import ROOT
from toolkit import Toolkit
from toolkit.config import load_config


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
    embedded = load_config(ROOT / "examples" / "shop" / "polystore.toml")
    stack = load_config(ROOT / "examples" / "shop" / "polystore.stack.toml")
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
    done = subprocess.run(
        [sys.executable, "-m", "examples.shop", "--dir", str(tmp_path), "--customers", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "completed; customer 1 bought KIT-000, OFF-001" in done.stdout
    assert "compensated (step 2 (payment): PaymentDeclined" in done.stdout
    assert "after compensation: gone" in done.stdout
    assert (tmp_path / ".polystore" / "customers.s2.db").exists()


def test_the_stack_config_points_at_the_stacks_servers() -> None:
    """Every server the shop's stack config names is one stack/endpoints.toml declares."""
    import tomllib

    endpoints = (ROOT / "stack" / "endpoints.toml").read_text(encoding="utf-8")
    declared = set(re.findall(r"127\.0\.0\.1:\d+", endpoints))
    stack = load_config(ROOT / "examples" / "shop" / "polystore.stack.toml")
    used = {re.search(r"127\.0\.0\.1:\d+", shard.url).group(0) for s in stack.stores.values() for shard in s.shards}  # type: ignore[union-attr]
    assert used <= declared, used - declared
    assert tomllib.loads(endpoints)["postgres"]["catalog"] in stack.catalog.url
