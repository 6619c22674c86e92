"""``GuardedAdapter``: the adapter contract, and nothing else, sent through a ``ShardGuard``.

Its methods are generated from ``adapters.base.CONTRACT``, the table that says how the
guard runs each public method of ``Adapter``:

==============  ==========================================================================
``IDEMPOTENT``  ``guard.call(method, True, ...)``: guarded, retried on retryable errors
``ONCE``        ``guard.call(method, False, ...)``: guarded, retried only in ``retry_safe``
``STREAM``      ``guard.stream(method, ...)``: each batch fetched under the guard, no retry
``DIRECT``      the wrapped adapter's method itself (status reports, ``close``, ``require``)
==============  ==========================================================================

So a method added to the contract is guarded as soon as it has a row, and nothing that
is not in the contract (a driver handle, an adapter's private helper) can be reached
through the proxy: no ``__getattr__``. Every instance binds its methods once, as
``functools.partial`` objects over the guard's entry points, so a call costs one C-level
partial and the guard itself, no extra Python frame; the class carries the same
methods (for ``Adapter``'s abstract methods, introspection, and unbound calls).
"""

from __future__ import annotations

import abc
import functools
import threading
from collections.abc import Callable
from typing import Any, Final, cast

from adapters.base import CONTRACT, Adapter, Call
from toolkit.resilience._guard import ShardGuard

__all__ = ["GuardedAdapter", "guard_adapter"]


def _bind(guard: ShardGuard, method: Callable[..., Any], call: Call) -> Callable[..., Any]:
    """What one contract method of one proxy is: ``method`` (the wrapped adapter's) behind ``guard``."""
    if call is Call.IDEMPOTENT:
        return functools.partial(guard.call, method, True)
    if call is Call.ONCE:
        return functools.partial(guard.call, method, False)
    if call is Call.STREAM:
        return functools.partial(guard.stream, method)
    return method


class GuardedAdapter(Adapter):
    """An ``Adapter`` that sends every method of the contract through a ``ShardGuard``.

    Idempotent operations (upserts, reads, deletes, ``update``, ``relate``, DDL,
    ``increment_once``) are retried on retryable errors; ``increment`` and ``run_script``
    only inside ``retry_safe``. ``scan`` and its kin guard each batch they fetch (a
    half-read generator cannot be retried). ``describe``, ``close`` and the capability
    questions bypass the guard: a status report must see a down shard as down, not as
    an open circuit, and closing must always work. ``guard_adapter`` builds one
    subclass per adapter class, so ``capabilities`` stays what the wrapped class declares.
    """

    def __init__(self, inner: Adapter, guard: ShardGuard) -> None:
        # No super().__init__: the options are parsed and the connections held by ``inner``.
        self.inner = inner
        self.guard = guard
        self.url = inner.url
        self.store = inner.store
        self.shard = inner.shard
        self.options = inner.options
        for name, call in CONTRACT.items():
            setattr(self, name, _bind(guard, getattr(inner, name), call))

    def __repr__(self) -> str:
        return f"<guarded {self.inner!r}>"


def _method(name: str, call: Call) -> Callable[..., Any]:
    """The class-level form of contract method ``name`` (instances shadow it with a bound partial)."""

    def method(self: GuardedAdapter, /, *args: Any, **kwargs: Any) -> Any:
        return _bind(self.guard, getattr(self.inner, name), call)(*args, **kwargs)

    # The contract's name, docs and signature (``__wrapped__``), not its abstract flag.
    functools.update_wrapper(method, getattr(Adapter, name), assigned=("__name__", "__doc__"), updated=())
    method.__qualname__ = f"GuardedAdapter.{name}"
    return method


for _name, _call in CONTRACT.items():
    setattr(GuardedAdapter, _name, _method(_name, _call))
# Adapter's abstract methods now have their guarded forms: the class can be instantiated
# (mypy cannot see methods set here, hence the cast).
abc.update_abstractmethods(cast("type[Any]", GuardedAdapter))

_CLASSES: Final[dict[type[Adapter], type[GuardedAdapter]]] = {}
_CLASSES_LOCK: Final = threading.Lock()


def guard_adapter(adapter: Adapter, guard: ShardGuard) -> GuardedAdapter:
    """``adapter`` behind ``guard``, as an ``Adapter`` with the same capabilities and options type."""
    cls = type(adapter)
    guarded = _CLASSES.get(cls)
    if guarded is None:
        with _CLASSES_LOCK:
            guarded = _CLASSES.get(cls)
            if guarded is None:
                namespace = {"capabilities": cls.capabilities, "Options": cls.Options, "__module__": __name__}
                guarded = type(f"Guarded{cls.__name__}", (GuardedAdapter,), namespace)
                _CLASSES[cls] = guarded
    return guarded(adapter, guard)
