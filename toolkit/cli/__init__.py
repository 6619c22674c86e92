"""The ``polystore`` command line: thin wiring of plain functions to typer.

One private module per command group, and shared helpers that import no command:

==========================  ===============================================================
``_main``                   the app, ``polystore init`` and ``main`` (the console script)
``_status``                 ``polystore status`` and ``polystore route``
``_saga``                   ``polystore saga list / show / recover``
``_rebalance``              ``polystore rebalance [--to FILE] / status / resume / abort``
``_demo``                   ``polystore demo``: the shipped shop (``toolkit.demo.shop``), narrated
``_common``                 consoles, ``--config``, how a ToolkitError is shown (one line, exit 1)
``_reports``                what status and route show, as plain data (tests call these)
``_render``, ``_rebalance_view``  drawing: tables, bars and progress bars (no logic)
==========================  ===============================================================

A ``ToolkitError`` is one red line and exit code 1, a usage error exit code 2, and
neither ever prints a traceback.
"""

from __future__ import annotations

from toolkit.cli._demo import REBALANCED_STORE, run_demo
from toolkit.cli._main import app, main
from toolkit.cli._rebalance_view import plan_table, summary_table
from toolkit.cli._reports import KEY_TYPES, Route, ShardStatus, StoreStatus, explain_route, parse_key, store_status
from toolkit.cli._saga import load_definitions, saga_table, timeline_table

__all__ = [
    "KEY_TYPES",
    "REBALANCED_STORE",
    "Route",
    "ShardStatus",
    "StoreStatus",
    "app",
    "explain_route",
    "load_definitions",
    "main",
    "parse_key",
    "plan_table",
    "run_demo",
    "saga_table",
    "store_status",
    "summary_table",
    "timeline_table",
]
