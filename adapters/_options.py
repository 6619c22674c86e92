"""Typed adapter options: what ``[stores.NAME.options]`` may say to a backend.

Each adapter class declares its options as a frozen pydantic model (``Adapter.Options``,
a subclass of ``AdapterOptions``). Unknown names and wrong types are refused when the
config is loaded (naming the file, store, shard and option, with the closest valid
name) and again when an adapter is built directly, instead of surfacing later as a
driver error or being silently ignored. The docs' options tables are checked against
these models.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sharding.core.errors import ConfigError

__all__ = ["NAMESPACE_PATTERN", "AdapterOptions", "parse_options"]

NAMESPACE_PATTERN = r"^[A-Za-z0-9_]*$"

OptionsT = TypeVar("OptionsT", bound="AdapterOptions")


class AdapterOptions(BaseModel):
    """The options every adapter understands; adapters subclass it with their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="", pattern=NAMESPACE_PATTERN)
    """A prefix for every table, key or label this store creates, so that several
    applications (or test runs) can share one database: letters, digits and _, because
    it becomes part of identifiers on every backend."""


def parse_options(
    model: type[OptionsT],
    raw: Mapping[str, Any] | AdapterOptions | None,
    *,
    store: str,
    shard: str | None = None,
    file: str | None = None,
) -> OptionsT:
    """``raw`` validated against ``model``, or a ``ConfigError`` naming what is wrong.

    The error's field is ``stores.STORE.options.NAME`` (with the shard the check was made
    for), and an unknown name comes with the closest valid one.
    """
    if isinstance(raw, model):
        return raw
    values = raw.model_dump() if isinstance(raw, AdapterOptions) else dict(raw or {})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"]) or "?"
        where = f"stores.{store}.options.{name}"
        for_shard = f" (shard {shard!r}, {model.__qualname__.split('.')[0]})" if shard else ""
        if error["type"] == "extra_forbidden":
            known = sorted(model.model_fields)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"unknown option{for_shard}{hint} (valid: {', '.join(known)})"
        else:
            message = f"{error['msg']}, not {error.get('input')!r}{for_shard}"
        raise ConfigError(message, file=file, field=where) from None
