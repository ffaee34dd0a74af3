"""A private redis-server on 127.0.0.1, for tests and the test PBX."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.harness.procs import free_port, stop_popen, wait_until


def _answers_ping(port: int, password: str | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if password:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _launch(args: list[str], port: int, password: str | None, timeout: float,
            what: str) -> subprocess.Popen:
    """Start a redis-server (or sentinel) and return once it answers PING on `port`;
    stopped again if it never does. It writes its own log file (--logfile)."""
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: _answers_ping(port, password), timeout, f"{what} on port {port}")
    except BaseException:
        stop_popen(proc)
        raise
    return proc


@contextlib.contextmanager
def empty_db_client(url: str) -> Iterator[redis.Redis]:
    """A decoding client on `url`'s database, emptied before and after."""
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


class _RedisProcess:
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None:
            stop_popen(self.proc)
            self.proc = None


class RedisServer(_RedisProcess):
    """One redis-server process: no persistence, loopback only, stopped by PID."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.password = password
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port),
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--logfile", str(self.workdir / f"redis-{self.port}.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        args += self.extra_args
        self.proc = _launch(args, self.port, self.password, timeout, "redis-server")
        return self

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisSentinel(_RedisProcess):
    """One redis-sentinel watching `service` on a master at 127.0.0.1:`master_port`.

    Quick failure detection (1 s) so a failover test finishes in seconds.
    """

    def __init__(self, workdir: Path, master_port: int, service: str = "callroute",
                 quorum: int = 2, password: str | None = None):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.master_port = master_port
        self.service = service
        self.quorum = quorum
        self.password = password
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> RedisSentinel:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / f"sentinel-{self.port}.conf"  # sentinel rewrites it
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.workdir}",
                 f"logfile {self.workdir / f'sentinel-{self.port}.log'}",
                 f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} {self.quorum}",
                 f"sentinel down-after-milliseconds {self.service} 1000",
                 f"sentinel failover-timeout {self.service} 5000"]
        if self.password:
            lines.append(f"sentinel auth-pass {self.service} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = _launch([binary, str(conf), "--sentinel"], self.port, None, timeout,
                            "redis-sentinel")
        return self


@dataclass
class SentinelCluster:
    """A Sentinel setup on loopback: its URL carries the password, as callroute takes it."""

    master: RedisServer
    replica: RedisServer
    sentinels: list[RedisSentinel]
    password: str
    service: str

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{self.password}@{hosts}/{self.service}/0"

    def node(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(port=server.port, password=self.password, decode_responses=True)

    def failed_over_to(self, server: RedisServer) -> bool:
        """Every sentinel names `server` as master, and it says it is one."""
        for sentinel in self.sentinels:
            client = redis.Redis(port=sentinel.port, decode_responses=True)
            address = client.execute_command("SENTINEL", "get-master-addr-by-name",
                                             self.service)
            if not address or int(address[1]) != server.port:
                return False
        return self.node(server).info("replication")["role"] == "master"


@contextlib.contextmanager
def sentinel_cluster(workdir: Path, password: str,
                     service: str = "callroute") -> Iterator[SentinelCluster]:
    """A master, its replica and three sentinels (quorum 2), all stopped on exit."""
    tmp_path = Path(workdir)
    master = RedisServer(tmp_path / "master", password=password)
    replica = RedisServer(tmp_path / "replica", password=password,
                          extra_args=("--replicaof", "127.0.0.1", str(master.port)))
    sentinels = [RedisSentinel(tmp_path / f"sentinel{i}", master.port, service,
                               password=password) for i in range(3)]
    try:
        master.start()
        replica.start()
        for sentinel in sentinels:
            sentinel.start()
        found = SentinelCluster(master, replica, sentinels, password, service)
        sentinel_client = redis.Redis(port=sentinels[0].port, decode_responses=True)
        wait_until(lambda: len(sentinel_client.execute_command(
            "SENTINEL", "replicas", service)) == 1, 15, "the sentinels to find the replica")
        yield found
    finally:
        for process in (*sentinels, replica, master):
            process.stop()
