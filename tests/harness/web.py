"""A real `callroute-web` process on a free loopback port, for tests, the bench and the PBX."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.harness.procs import free_port, stop_popen, wait_until


def _healthy(url: str) -> bool:
    try:
        # The probe only asks "is it serving?": a test's self-signed certificate is fine.
        context = ssl._create_unverified_context() if url.startswith("https:") else None
        with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code == 503  # serving, even if its Redis is down
    except OSError:
        return False


class WebServer:
    """`callroute-web` as a subprocess, its output in `log`; stopped by PID (SIGTERM)."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None,
                 args: tuple[str, ...] = ()):
        self.env = env
        self.log = Path(log)
        self.port = port or free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        scheme = "https" if "--tls-cert" in self.args else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> WebServer:
        script = Path(sys.executable).parent / "callroute-web"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(script), "--listen", f"127.0.0.1:{self.port}", *self.args],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        try:
            wait_until(lambda: self.proc.poll() is not None or _healthy(self.url), timeout,
                       f"callroute-web on port {self.port}")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"callroute-web exited {self.proc.returncode}: "
                               f"{self.log.read_text()[-2000:]}")
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM; the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        stop_popen(self.proc, timeout)
        code = self.proc.returncode
        self.proc = None
        return code

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
