"""A redis-server of the test's own, to kill and restart: the shared stack is never touched.

The stack's servers are used by other test runs at the same time, so an outage is
played on a private ``redis-server`` on a free port instead. It is ready when it says
so on its log (``Ready to accept connections``), which this helper reads: no polling of
the port, no sleeps. The saga tests use it too (a stock server stopped mid-saga), and
``bench/resilience_outage.py`` measures outages with it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import IO

__all__ = ["REDIS_SERVER", "PrivateRedis", "free_port"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
READY = "Ready to accept connections"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS's choice of an ephemeral one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _drain(log: IO[str]) -> None:
    """Read the server's log to its end, so a full pipe never blocks the server."""
    for _ in log:
        pass


class PrivateRedis:
    """A redis-server of this test alone: ``kill()`` it (SIGKILL) or ``stop()`` it (SIGTERM)
    and ``start()`` it again on the same port, as an operator restarting a crashed shard.

    ``persistent``: an append-only file fsynced at every write in ``workdir``, so the data
    survives a restart (a stock counter that must come back); otherwise nothing is kept.
    """

    def __init__(self, workdir: Path, *, persistent: bool = False) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(f"{REDIS_SERVER} is missing: stack/stack installs it")
        self.port = free_port()
        self.workdir = workdir
        self.persistent = persistent
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        process = subprocess.Popen(
            [*command, "--save", "", *durability],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        self.process = process
        for line in process.stdout:
            if READY in line:
                threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
                return
        self.process = None
        raise RuntimeError(f"redis-server on port {self.port} exited before it was ready (code {process.wait()})")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the append-only file is complete."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): connections drop, nothing is flushed."""
        self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> None:
        if self.process is not None:
            self.process.send_signal(how)
            self.process.wait(20)
            self.process = None

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
