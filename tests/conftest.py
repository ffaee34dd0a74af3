"""Shared fixtures: one real redis-server per test session, config, and CLI runners.

Store, CLI and protocol tests talk to a real redis-server (never a mock): the atomicity,
timeout and password behaviour under test only exist in the real thing. The server runs
on a free loopback port in a temporary directory and is stopped even when tests fail.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from agi import cli
from agi.config import Config, load
from agi.fastagi import FastAgiServer
from tests.fake_asterisk import FakeAsterisk, agi_executable, console_script
from tests.harness.net import Blackhole
from tests.harness.procs import free_port
from tests.harness.redis_server import RedisServer, empty_db_client

# Every variable the code reads; each test starts with none of them set.
CALLROUTE_ENV_VARS = ("CALLROUTE_CONFIG", "CALLROUTE_REDIS_URL", "CALLROUTE_COUNTRY",
                      "CALLROUTE_TRUNK_DIAL", "CALLROUTE_DEFAULT_DEVICE",
                      "CALLROUTE_TIMEOUT_MS", "CALLROUTE_PREFIX",
                      "CALLROUTE_VOICEMAIL_CONTEXT", "CALLROUTE_AUDIT_MAX")
SUBPROCESS_TIMEOUT_S = 10.0


@pytest.fixture(scope="session")
def empty_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty config file, so a stray /etc/callroute.conf can never change a test."""
    path = tmp_path_factory.mktemp("config") / "callroute.conf"
    path.write_text("")
    return path


@pytest.fixture(scope="session")
def config_env(empty_ini: Path) -> Callable[..., dict[str, str]]:
    """Build a complete CALLROUTE_* environment: FR, the empty INI, plus overrides."""

    def build(**overrides: str) -> dict[str, str]:
        env = {"CALLROUTE_CONFIG": str(empty_ini), "CALLROUTE_COUNTRY": "FR"}
        env.update({f"CALLROUTE_{key.upper()}": value for key, value in overrides.items()})
        return env

    return build


@pytest.fixture(scope="session")
def fr_config(config_env: Callable[..., dict[str, str]]) -> Config:
    """The default configuration with FR as the home region (the routing unit tests' world)."""
    return load(config_env())


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, empty_ini: Path) -> None:
    """No test may depend on the caller's environment or on /etc/callroute.conf."""
    for var in CALLROUTE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CALLROUTE_CONFIG", str(empty_ini))


# ---- Redis ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the session server, with an empty database before and after the test."""
    with empty_db_client(redis_server.url) as client:
        yield client


@pytest.fixture
def snapshot(redis_server: RedisServer, redis_client: redis.Redis) -> Callable[[], dict]:
    """A full DUMP of every key: equal snapshots mean nothing at all was written."""
    raw = redis.Redis.from_url(redis_server.url)

    def take() -> dict[bytes, tuple[bytes, bytes]]:
        return {key: (raw.type(key), raw.dump(key)) for key in raw.scan_iter("*")}

    return take


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung Redis."""
    with Blackhole() as blackhole:
        yield blackhole.port


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    return free_port()


# ---- CLI -----------------------------------------------------------------------------------

@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer,
            config_env: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Point the CLI (in-process) at the session Redis, home region FR."""
    env = config_env(redis_url=redis_server.url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str], redis_client: redis.Redis,
            capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `callroute ARGS...` in-process against the real Redis; capture its output."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def run_cli_process(cli_env: dict[str, str],
                    redis_client: redis.Redis) -> Callable[..., CliResult]:
    """Run the installed `callroute` console script as a real process (hard timeout)."""

    def run(*argv: str, env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run([str(console_script("callroute")), *argv], capture_output=True,
                              text=True, timeout=SUBPROCESS_TIMEOUT_S,
                              env={"PATH": "/usr/bin:/bin", **cli_env, **(env or {})})
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


# ---- the fake Asterisk ---------------------------------------------------------------------

@pytest.fixture
def fake_asterisk(config_env: Callable[..., dict[str, str]],
                  redis_server: RedisServer) -> Callable[..., FakeAsterisk]:
    """A FakeAsterisk factory; by default the agent talks to the session Redis."""

    def make(redis_url: str | None = None, timeout_ms: int = 300,
             **options: object) -> FakeAsterisk:
        env = {"PATH": "/usr/bin:/bin",
               **config_env(redis_url=redis_url or redis_server.url,
                            timeout_ms=str(timeout_ms))}
        return FakeAsterisk(executable=agi_executable(), env=env, **options)  # type: ignore[arg-type]

    return make


# ---- FastAGI -------------------------------------------------------------------------------

@pytest.fixture
def serve(config_env: Callable[..., dict[str, str]]) -> Iterator[Callable[..., FastAgiServer]]:
    """Start FastAgiServer instances (each its own event loop in a thread); all stopped
    and drained afterwards."""
    running: list[tuple[FastAgiServer, threading.Thread]] = []

    def start(redis_url: str = "redis://127.0.0.1:6379/0", *, host: str = "127.0.0.1",
              **options: object) -> FastAgiServer:
        config = load(config_env(redis_url=redis_url, timeout_ms="300"))
        server = FastAgiServer(config, host, 0, **options)
        # CALLROUTE_TEST_LOOP=uvloop runs these servers on uvloop (if installed).
        loop = os.environ.get("CALLROUTE_TEST_LOOP", "asyncio")
        thread = threading.Thread(target=server.serve, args=(loop,), daemon=True)
        thread.start()
        running.append((server, thread))
        assert server.wait_ready(5), "FastAGI server did not start"
        return server

    yield start
    for server, thread in running:
        server.stop()
        thread.join(server.drain_timeout + 5)
