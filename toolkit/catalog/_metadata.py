"""The catalog's one ``MetaData`` and the one way to talk to the catalog database.

Every part of polystore that keeps state in the catalog declares its tables with
``catalog_table`` in its own module, next to the code that reads and writes them:

=======================  ==========================================  ============================
table                    what                                        defined in
=======================  ==========================================  ============================
ps_store, ps_topology    epochs: the topology history of each store  ``toolkit.catalog._topology``
ps_directory             the directory router's key -> shard pins    ``toolkit.catalog._topology``
ps_entity_schema         the entities each store holds               ``toolkit.catalog._entities``
ps_routing,              a rebalance in flight, as every process     ``toolkit.routing._records``
ps_rebalance_touched     routes by it; the keys written meanwhile
ps_rebalance,            the rebalance journal: steps and units      ``sharding.rebalance._journal``
ps_rebalance_unit
ps_saga, ps_saga_event,  the saga log and apply-once markers         ``toolkit.saga._log``
ps_saga_effect
=======================  ==========================================  ============================

``Catalog`` creates every registered table with one ``create_all`` when it opens. The
owners register on import, and importing ``toolkit`` imports them all (``toolkit.facade``
names them in ``CATALOG_PARTS``), so no catalog opens before its tables are known.

Schema history (issue 15) goes here the same way: its module registers ``ps_schema_history``
with ``catalog_table`` and is added to ``CATALOG_PARTS``; the table above it is where its
versions get compared.

``CatalogAccess`` is the one error translation: whichever part fails, the message is
``catalog <url without password>: cannot <what>: <first line of the driver's message>``,
a ``CatalogError`` whose cause is the SQLAlchemy error (callers look at it for
``IntegrityError``: a lost insert race).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from adapters._errors import first_line
from adapters.registry import redact_url
from toolkit.errors import CatalogError

__all__ = ["METADATA", "CatalogAccess", "catalog_table", "optional", "required", "utcnow"]

METADATA = sa.MetaData()
"""Every catalog table, whichever part owns it (see the module docstring)."""

_CREATE_ATTEMPTS = 5


def catalog_table(name: str, *columns: Any) -> sa.Table:
    """Declare a catalog table (columns, indexes, constraints) on the catalog's ``METADATA``."""
    return sa.Table(name, METADATA, *columns)


def required(**types: Any) -> list[sa.Column[Any]]:
    """NOT NULL columns, name=type, in order: the plain columns of a table, one line for several."""
    return [sa.Column(name, type_, nullable=False) for name, type_ in types.items()]


def optional(**types: Any) -> list[sa.Column[Any]]:
    """Nullable columns, name=type, in order."""
    return [sa.Column(name, type_, nullable=True) for name, type_ in types.items()]


def utcnow() -> dt.datetime:
    """The time stamps catalog rows carry: aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class CatalogAccess:
    """Reads and writes on the catalog's engine, every failure a ``CatalogError``.

    ``url`` is how messages name the catalog (without its password); by default the
    engine's URL.
    """

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self.engine = engine
        self.where = f"catalog {redact_url(url if url is not None else str(engine.url))}"

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Translate what SQLAlchemy raises inside into ``CatalogError`` (retryable when the
        database was unreachable or locked)."""
        try:
            yield
        except SQLAlchemyError as exc:
            error = CatalogError(f"{self.where}: cannot {doing}: {first_line(getattr(exc, 'orig', None) or exc)}")
            error.retryable = isinstance(exc, OperationalError)
            raise error from exc

    @contextmanager
    def reading(self, doing: str) -> Iterator[Connection]:
        """A connection for reads (no transaction kept open after the block)."""
        with self.errors(doing), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def writing(self, doing: str) -> Iterator[Connection]:
        """A connection in one transaction, committed when the block ends."""
        with self.errors(doing), self.engine.begin() as connection:
            yield connection

    def create_tables(self) -> None:
        """CREATE every registered table that is missing, tolerating a racing process.

        ``checkfirst`` is a read then a write: two processes opening a new catalog at once
        can both see no table, and one CREATE then fails ("already exists", or a unique
        violation in PostgreSQL's own catalog). Checking again finds the winner's tables.
        """
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                METADATA.create_all(self.engine, checkfirst=True)
                return
            except SQLAlchemyError:
                if attempt == _CREATE_ATTEMPTS - 1 or not self._reachable():
                    with self.errors("create the catalog tables"):
                        raise
                time.sleep(0.05 * (attempt + 1))

    def _reachable(self) -> bool:
        """Whether a connection opens: an unreachable catalog is not worth another try."""
        try:
            with self.engine.connect():
                return True
        except SQLAlchemyError:
            return False
