"""Network peers the harness plays itself: a server that never answers, and the
FastAGI health probe (used by every place that starts callroute-fastagi)."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tests.harness.procs import spawn, stop_popen, wait_until

HEALTH_REQUEST = b"agi_network: yes\nagi_network_script: health\n\n"
HEALTH_ANSWER = b'SET VARIABLE CALLROUTE_HEALTH "OK"'


class Blackhole:
    """Accepts TCP connections on a loopback port and never answers: a hung Redis.

    Port 0 picks a free port (read it back from `.port`). Connections are held open
    until `close()`, so a client sees neither data nor EOF.
    """

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.1)
        self.port: int = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                self.held.append(self.server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.server.close()
        for conn in self.held:
            conn.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Something listens on host:port (a TCP connection is accepted)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def fastagi_healthy(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if callroute-fastagi answers a `health` request with CALLROUTE_HEALTH=OK.

    Asterisk's side of the exchange: the environment, then `200 result=1` to the
    command, so the server finishes its session cleanly.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(HEALTH_REQUEST)
            reply = sock.makefile("rb").readline()
            sock.sendall(b"200 result=1\n")
    except OSError:
        return False
    return reply.startswith(HEALTH_ANSWER)


def start_fastagi(executable: Path, host: str, port: int, env: Mapping[str, str], log: Path,
                  *extra_args: str, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """callroute-fastagi listening on host:port, returned once it answers `health`.

    Raises RuntimeError (with its log) if it exits while starting; one that never
    answers is stopped before the TimeoutError reaches the caller.
    """
    proc = spawn([executable, "--listen", f"{host}:{port}", *extra_args], log, env)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"callroute-fastagi exited at start-up (rc {proc.returncode}): "
                               f"{log.read_text(errors='replace')[-500:]}")
        return fastagi_healthy(host, port)

    try:
        wait_until(ready, timeout, f"callroute-fastagi on {host}:{port}")
    except BaseException:
        stop_popen(proc)
        raise
    return proc
