"""``ColumnOptions``: what ``[stores.NAME.options]`` may say to a Cassandra store.

Declared as a frozen model so that a typo (``consistensy``), a wrong type or a value
outside a fixed set (a consistency level the driver does not know, a replication map
that is not plain text) is refused when the configuration is loaded, instead of being
ignored or surfacing later as a driver error on the first ``ensure``. The same names may
also be given as URL parameters (``cassandra://h/ks?consistency=ONE``); the store's
options win over the URL's.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal, TypeAlias

from cassandra import ConsistencyLevel, ProtocolVersion
from pydantic import Field, field_validator

from adapters._options import AdapterOptions

__all__ = ["CQL_NAME", "ColumnOptions", "ConsistencyName"]

CQL_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
"""A keyspace or table name Cassandra accepts unquoted (letters, digits and _, at most 48)."""

ConsistencyName: TypeAlias = Literal[
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE"
]
"""The driver's consistency levels (``cassandra.ConsistencyLevel``), by name."""

_PLAIN: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_DEFAULT_REPLICATION: Final = {"class": "SimpleStrategy", "replication_factor": 1}


class ColumnOptions(AdapterOptions):
    """``[stores.NAME.options]`` of a Cassandra (or ScyllaDB) store."""

    consistency: ConsistencyName = "LOCAL_QUORUM"
    """The consistency level of every statement (any case): ``LOCAL_QUORUM`` reads what a
    ``LOCAL_QUORUM`` write acknowledged, in the local datacenter."""
    local_dc: str | None = None
    """The local datacenter for the driver's load balancing; the driver picks the first
    contact point's when unset."""
    request_timeout: float = Field(default=12.0, gt=0)
    """Seconds per statement before the driver gives up (``StoreTimeout``)."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to open a connection to a contact point."""
    protocol_version: int | None = None
    """A pinned native protocol version; unset, the driver negotiates it, highest first."""
    replication: dict[str, str | int] | None = None
    """The replication map of a keyspace that polystore creates (``{ class =
    "NetworkTopologyStrategy", dc1 = 3 }``); ``SimpleStrategy`` RF 1 when unset. It is
    written into the CQL text, so every name and value must be plain text."""

    @field_validator("consistency", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        """Level names in any case, as the driver's ``ConsistencyLevel`` attributes were read."""
        return value.upper() if isinstance(value, str) else value

    @field_validator("protocol_version")
    @classmethod
    def _known_protocol(cls, value: int | None) -> int | None:
        """Only a version this driver speaks (a typo would otherwise fail every connection)."""
        if value is not None and value not in ProtocolVersion.SUPPORTED_VERSIONS:
            known = ", ".join(str(version) for version in sorted(ProtocolVersion.SUPPORTED_VERSIONS))
            raise ValueError(f"protocol_version must be one of {known}")
        return value

    @field_validator("replication")
    @classmethod
    def _plain_map(cls, value: dict[str, str | int] | None) -> dict[str, str | int] | None:
        """A map with a 'class' whose parts are plain text, since it becomes CQL text."""
        if value is None:
            return None
        if "class" not in value:
            raise ValueError("replication must be a table with a 'class'")
        for name, part in value.items():
            if not _PLAIN.match(str(name)) or not _PLAIN.match(str(part)):
                raise ValueError(f"replication: {name!r} = {part!r} is not a plain value")
        return value

    @property
    def consistency_level(self) -> int:
        """``consistency`` as the driver's number."""
        return int(ConsistencyLevel.name_to_value[self.consistency])

    @property
    def replication_cql(self) -> str:
        """The replication map as a CQL literal (its parts were checked to be plain text)."""
        replication = self.replication or _DEFAULT_REPLICATION
        return "{" + ", ".join(f"'{name}': '{value}'" for name, value in replication.items()) + "}"
