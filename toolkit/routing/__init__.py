"""The routing state: where each store's keys are read and written right now.

A store's routing is its current topology epoch (router, shards) plus, while a rebalance
moves it to the next epoch, that rebalance's ``Transition``: its target router and the
phase it published. ``RoutingState`` is that whole picture as one immutable object; the
repository asks it which shards a write goes to (``write``; None while the key is fenced),
which shards may hold a key (``read``), whether a row found on a shard is the real one
(``owns``) and whether a write must be logged for the rebalance (``WriteRoute.tracked``).
It never asks which phase a rebalance is in.

The catalog holds the state (``ps_store``, ``ps_directory`` and this package's
``ps_routing`` and ``ps_rebalance_touched``): ``sharding.rebalance`` writes it through
``Transitions``, every process reads it through a ``RoutingView``. This package is the
whole interface between the two.

Modules: ``_state`` (the pure state and its answers), ``_records`` (the tables and
``Transitions``), ``_view`` (``RoutingView``: the state kept in step with the catalog).
"""

from __future__ import annotations

from toolkit.routing._records import RoutingRow, Transitions
from toolkit.routing._state import Phase, RoutingState, Transition, WriteRoute, pinned_router
from toolkit.routing._view import RoutingView

__all__ = [
    "Phase",
    "RoutingRow",
    "RoutingState",
    "RoutingView",
    "Transition",
    "Transitions",
    "WriteRoute",
    "pinned_router",
]
