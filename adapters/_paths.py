"""Dotted paths inside JSON values, the way every adapter with PARTIAL_UPDATE sets them.

``resolve_path`` (in ``adapters.base``) reads a path; ``set_path`` here writes one. The
semantics are the contract's: intermediate objects that are missing or null are created,
and a path through a non-object is a ``QueryError`` naming the path and the step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sharding.core.errors import QueryError

__all__ = ["set_path"]


def set_path(
    document: Any,
    steps: Sequence[str],
    value: Any,
    *,
    path: str,
    copy: bool = False,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """``document`` with ``value`` at ``steps`` (the path below the field).

    ``copy`` leaves ``document`` and its nested objects untouched and returns new ones;
    otherwise they are changed in place. ``convert`` turns the value into what the
    backend stores (JSON-able). A missing or null object on the way is created; any
    other non-object is refused.
    """
    root: Any = {} if document is None else (dict(document) if copy and isinstance(document, Mapping) else document)
    node = root
    for index, step in enumerate(steps):
        if not isinstance(node, dict):
            where = ".".join([path.split(".")[0], *steps[:index]])
            raise QueryError(f"{path}: {where} holds a {type(node).__name__}, not an object")
        if index == len(steps) - 1:
            node[step] = convert(value) if convert is not None else value
            break
        child = node.get(step)
        if child is None:
            child = {}
        elif copy and isinstance(child, Mapping):
            child = dict(child)
        node[step] = child
        node = child
    return root
