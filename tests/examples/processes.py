"""Running the examples as a person does: a real process, to its end."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_ok(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300) -> str:
    """Run ``command`` in ``cwd``; its stdout, or a failure showing what it printed."""
    done = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout
