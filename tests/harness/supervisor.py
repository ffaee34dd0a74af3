"""Which processes of the test PBX run, recorded by PID in a state file.

The state is a JSON file, so `scripts/testpbx down` works from another process and
after a crash. A record is `{"pid": ..., "start": ...}`: the kernel start time tells
our process apart from another that reused its PID, so nothing else is ever stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.harness.procs import start_time, stop_pid, stop_popen


def is_ours(record: dict[str, Any] | None) -> bool:
    """The recorded process still runs (and is the one we started)."""
    return bool(record) and start_time(record["pid"]) == record["start"]


class Supervisor:
    """The state file of one PBX home, its lock, and the processes it records."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state_file = home / "state.json"
        # Children started by this object: a same-process stop() reaps them via their
        # Popen (no zombie, no "still running" ResourceWarning).
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def save(self, state: dict[str, Any]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def update(self, **changes: Any) -> None:
        self.save({**(self.load() or {}), **changes})

    def forget(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def adopt(self, name: str, proc: subprocess.Popen[bytes], **extra: Any) -> None:
        """Record a process we just started under `name` (with extra fields, e.g. a URL)."""
        self._children[name] = proc
        self.update(**{name: {"pid": proc.pid, "start": start_time(proc.pid), **extra}})

    def running(self, name: str) -> bool:
        return is_ours((self.load() or {}).get(name))

    def pids(self) -> dict[str, int]:
        """PID of every recorded process that still runs, by name."""
        state = self.load() or {}
        return {name: record["pid"] for name, record in state.items()
                if isinstance(record, dict) and "pid" in record and is_ours(record)}

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """Stop the recorded process `name` if it still runs (ours only, by PID)."""
        record = (self.load() or {}).get(name)
        if not is_ours(record):
            return
        proc = self._children.pop(name, None)
        if proc is not None and proc.pid == record["pid"]:
            stop_popen(proc, timeout)
        else:
            stop_pid(record["pid"], timeout)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One up/down at a time per checkout (parallel test sessions, two shells)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
