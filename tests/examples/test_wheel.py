"""``polystore demo`` from an installed wheel: the distribution carries everything it needs.

The wheel is built from a copy of the sources (the build's ``build/`` and ``*.egg-info``
never land in the checkout), installed into a fresh venv in a temporary directory, with
its dependencies from the package index (pip's cache makes a second run fast) and no
access to the checkout's venv or site packages, and the demo runs from a working
directory outside the checkout. ``examples/`` is not in the wheel, so this fails if the
demo needs anything from a source checkout.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.examples.processes import run_ok
from tests.servers import ROOT

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "README.md", "toolkit", "adapters", "sharding")
"""What the build reads (pyproject's packages, and the README it names as readme)."""
BIN = "Scripts" if os.name == "nt" else "bin"


def _wheel(tmp: Path) -> Path:
    source = tmp / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, source / name)
    run_ok([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), "."], source, timeout=600)
    (wheel,) = (tmp / "dist").glob("polystore-*.whl")
    return wheel


def test_the_demo_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT)
    wheel = _wheel(tmp_path)
    venv = tmp_path / "venv"
    # No pip inside the venv (ensurepip is the slow part of making one): this
    # interpreter's pip installs into it, with its own cache.
    run_ok([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / BIN / "python"
    run_ok([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)], tmp_path, timeout=600)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / BIN}{os.pathsep}{env.get('PATH', '')}", COLUMNS="120", NO_COLOR="1")
    where = run_ok([str(python), "-c", "import toolkit; print(toolkit.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.strip()).resolve().is_relative_to(venv.resolve()), where

    data = tmp_path / "data"
    out = run_ok([str(venv / BIN / "polystore"), "demo", "--customers", "60", "--data-dir", str(data)], elsewhere, env)
    assert "1. What was written where" in out
    assert "checkout:demo-1 · completed: order ✓ → stock ✓ → payment ✓" in out
    assert "checkout:demo-2 · compensated" in out
    assert "customers before · epoch 1" in out
    assert "customers after · epoch 2" in out
    assert "\nNext: read " in out
    assert (data / ".polystore" / "customers.added.db").exists()
