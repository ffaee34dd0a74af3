"""Processes, ports and /proc: the one place the harness starts, stops and reads them.

Every process the harness starts is stopped by its own PID (never by name), and every
figure read from /proc (state, start time, CPU, memory, threads) goes through
`proc_stat` / `proc_status`, so the field offsets of stat(5) live in one place.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_port_free(host: str, port: int) -> bool:
    """Nothing listens there (connections lingering in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def udp_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def udp_bound(port: int, hosts: Sequence[str] = ("127.0.0.1",)) -> bool:
    """Whether something has bound UDP host:port, read from /proc/net/udp.

    Unlike `udp_port_free` it never binds, so polling it can't steal the port from
    the process that is starting: a bind is the only reliable "SIPp is ready" signal.
    """
    wanted = {f"{_hex_ip(host)}:{port:04X}" for host in hosts}
    try:
        with open("/proc/net/udp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return False
    return any(len(row) > 1 and row[1] in wanted for row in rows)


def _hex_ip(host: str) -> str:
    """127.0.0.1 -> 0100007F, the little-endian form /proc/net/udp uses."""
    return "".join(f"{int(part):02X}" for part in reversed(host.split(".")))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- /proc ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcStat:
    """What the harness needs from /proc/PID/stat, in seconds where it is time."""

    state: str
    start_time: str  # in clock ticks since boot: tells a reused PID apart
    cpu_s: float  # utime + stime
    children_cpu_s: float  # cutime + cstime: reaped children (process-AGI calls)

    @property
    def alive(self) -> bool:
        """A zombie (exited, not yet reaped) counts as gone."""
        return self.state not in ("Z", "X")


def proc_stat(pid: int | None) -> ProcStat | None:
    """/proc/PID/stat parsed, or None if there is no such process."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Counted after the ")" that ends the command name (which may hold spaces):
            # field 3 of stat(5) is fields[0] here.
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ProcStat(fields[0].decode(), fields[19].decode(), (utime + stime) / TICK,
                    (cutime + cstime) / TICK)


def proc_status(pid: int | None) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads from /proc/PID/status; {} if it is gone."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {key: int(rest.split()[0]) for key, _, rest in
            (line.partition(":") for line in text.splitlines())
            if key in ("VmRSS", "VmHWM", "Threads")}


def pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie counts as gone."""
    stat = proc_stat(pid)
    return stat is not None and stat.alive


def start_time(pid: int) -> str | None:
    """Kernel start time of a live process, None if it is gone or a zombie."""
    stat = proc_stat(pid)
    return stat.start_time if stat is not None and stat.alive else None


# ---- start and stop ------------------------------------------------------------------

def run(args: Sequence[str | os.PathLike[str]], timeout: float, what: str,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run with a hard timeout, and a RuntimeError that shows the output.
    Stdin is empty unless `input=` gives it (a secret, never in argv)."""
    if "input" not in kwargs:
        kwargs["stdin"] = subprocess.DEVNULL
    try:
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, check=False, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what}: timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}"[-2000:])
    return proc


def spawn(args: Sequence[str | os.PathLike[str]], log: Path,
          env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """A long-running service in its own session: no stdin, stdout and stderr to `log`.

    Its own session, so a Ctrl-C in the terminal reaches the harness (which stops
    it by PID), not the service in the middle of its work.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([str(a) for a in args], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                **kwargs)


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM one process we started, then SIGKILL it if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if pid_alive(pid) else pid
        if done == pid or not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop_popen(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, a child of ours; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
