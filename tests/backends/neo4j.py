"""The stack's two Neo4j servers: shards alternate between them, each with a label prefix.

Shard ``sN`` adds ``sN_`` to the label namespace through the URL's ``?prefix=``, so
shards that land on the same server never see each other's nodes.

The namespace (``t<hex>_``) is fresh per test *process*, not per test: tests in one
process run one after another, and each test's cleanup deletes every node of the
namespace, so tests stay isolated (and runs sharing the servers never meet). Keeping
label names stable lets Neo4j reuse its query plans and the adapter's constraints and
indexes across tests; planning every query afresh for a new label costs tens of
milliseconds each and dominated the suite. The constraints and indexes go at exit.
"""

from __future__ import annotations

import atexit
import os
import uuid
from contextlib import closing
from pathlib import Path

import neo4j

from tests.backends import Backend, shard_index
from tests.servers import endpoints, require


def neo4j_urls() -> list[str]:
    """The Bolt URLs of the stack's Neo4j servers (or POLYSTORE_NEO4J_URL twice)."""
    override = os.environ.get("POLYSTORE_NEO4J_URL")
    if override:
        return [override, override]
    return list(endpoints()["neo4j"]["shards"])


_NAMESPACE = f"t{uuid.uuid4().hex[:10]}_"
_USED: set[str] = set()
"""Server URLs this process wrote to: their schema is swept at exit."""


def sweep(url: str, prefix: str, *, schema: bool = True) -> None:
    """Delete every node of labels starting with ``prefix`` (and their constraints and indexes)."""
    driver = neo4j.GraphDatabase.driver(url.split("?")[0], auth=None)
    try:
        with driver.session() as session:
            labels = [r["label"] for r in session.run("CALL db.labels() YIELD label RETURN label")]
            for label in labels:
                if label.startswith(prefix):
                    escaped = label.replace("`", "``")
                    query = f"MATCH (n:`{escaped}`) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS c"
                    while session.run(query).single(strict=True)["c"]:
                        pass
            if not schema:
                return
            for kind, drop in (("CONSTRAINTS", "CONSTRAINT"), ("INDEXES", "INDEX")):
                for record in session.run(f"SHOW {kind} YIELD name, labelsOrTypes RETURN name, labelsOrTypes"):
                    if any(str(label).startswith(prefix) for label in record["labelsOrTypes"] or []):
                        name = record["name"].replace("`", "``")
                        session.run(f"DROP {drop} `{name}` IF EXISTS").consume()
    finally:
        driver.close()


def require_neo4j(urls: list[str]) -> None:
    """Every server verifies connectivity, or the test fails naming it."""

    def probe() -> None:
        for url in dict.fromkeys(urls):
            with closing(neo4j.GraphDatabase.driver(url, auth=None, connection_timeout=5)) as driver:
                driver.verify_connectivity()

    require("neo4j", probe)


class Neo4j(Backend, name="neo4j", scheme="bolt", kind="graph", marker="neo4j"):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.prefix = _NAMESPACE

    def connect(self) -> None:
        self.urls = neo4j_urls()
        require_neo4j(self.urls)

    def _url(self, shard: str) -> str:
        """Servers are reused round-robin; every shard gets its own label prefix."""
        return f"{self.urls[shard_index(shard) % len(self.urls)]}?prefix={shard}_"

    def cleanup(self) -> None:
        for url in dict.fromkeys(self.urls):
            if not _USED:
                atexit.register(_sweep_all)
            _USED.add(url)
            sweep(url, self.prefix, schema=False)


def _sweep_all() -> None:
    """Best effort at exit: a server that went away keeps a few empty indexes, nothing more."""
    for url in _USED:
        try:
            sweep(url, _NAMESPACE)
        except Exception as exc:  # exiting: report and move on
            print(f"neo4j test backend: could not drop {_NAMESPACE}* on {url}: {type(exc).__name__}")
