"""Load a ``bench/<name>.py`` script as a module, for the smoke tests that run the benchmarks.

The scripts are not a package (they are run by hand as files), so every smoke test
imports them by path; one loader keeps that in one place. The module is registered in
``sys.modules`` while the test runs, as dataclasses need it to resolve their (postponed)
annotations.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``bench/<name>.py`` as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module
