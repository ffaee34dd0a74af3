"""The logs of the real `callroute-fastagi` and `callroute-web` processes, in both formats.

Each server runs as a real process on a real Redis that needs a password, a web user
logs in and uses a token, one login fails, then Redis stops so both servers log the
outage. What they wrote must hold every expected line, in the format asked for, and
none of the secrets that crossed them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agi import logfmt
from agi.accounts import Accounts
from agi.admin import Actor
from agi.config import load
from agi.store import AdminStore
from tests.fake_asterisk import agi_session, console_script
from tests.harness.net import accepts
from tests.harness.procs import free_port, stop_popen, wait_until
from tests.harness.redis_server import RedisServer
from tests.harness.web import WebServer

pytestmark = pytest.mark.redis

REDIS_PASSWORD = "redis-pass-Zq8uV3"
WEB_USER, WEB_PASSWORD = "ops", "web-pass-Lm4tR9"
WRONG_PASSWORD = "wrong-pass-Hk2wP7"
FIELDS = {"time", "level", "logger", "message"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                       r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ ")


@dataclass
class Logs:
    fastagi: str
    web: str
    token: str  # the web user's, to look for

    def assert_no_secret(self) -> None:
        for name, text in (("fastagi", self.fastagi), ("web", self.web)):
            for secret in (REDIS_PASSWORD, WEB_PASSWORD, WRONG_PASSWORD, self.token):
                assert secret not in text, f"the {name} log holds a secret:\n{text}"


def run_both_servers(tmp_path: Path, redis_server: RedisServer, env: dict[str, str],
                     fmt: str) -> Logs:
    """Both servers through a login, a failed login and a Redis outage. json is asked of
    FastAGI by its flag, of web by CALLROUTE_LOG_FORMAT; text is the default."""
    fastagi_log, web_log = tmp_path / "fastagi.log", tmp_path / "web.log"
    port = free_port()
    flag = ["--log-format", fmt] if fmt == "json" else []
    web_env = {**env, "CALLROUTE_LOG_FORMAT": fmt} if fmt == "json" else env
    with fastagi_log.open("wb") as sink:
        agent = subprocess.Popen([str(console_script("callroute-fastagi")), "--listen",
                                  f"127.0.0.1:{port}", *flag], env=env,
                                 stdout=sink, stderr=subprocess.STDOUT)
    web = WebServer(web_env, web_log)
    try:
        wait_until(lambda: accepts(port), 10, "callroute-fastagi to listen")
        web.start()
        agi_session(port)
        with httpx.Client(base_url=web.url, timeout=10) as api:
            login = api.post("/api/v1/tokens", auth=(WEB_USER, WEB_PASSWORD))
            assert login.status_code == 201, login.text
            token = login.json()["token"]
            me = {"Authorization": f"Bearer {token}"}
            assert api.get("/api/v1/me", headers=me).status_code == 200
            assert api.post("/api/v1/tokens", auth=(WEB_USER, WRONG_PASSWORD)) \
                .status_code == 401
            redis_server.stop()
            agi_session(port)  # falls back to the desk: the outage line
            assert api.get("/api/v1/me", headers=me).status_code == 503
    finally:
        web.stop()
        stop_popen(agent)
    return Logs(fastagi_log.read_text(), web_log.read_text(), token)


@pytest.fixture
def secret_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", password=REDIS_PASSWORD) as server:
        yield server


@pytest.fixture
def env(secret_redis: RedisServer, config_env: Callable[..., dict[str, str]]
        ) -> dict[str, str]:
    """The servers' environment: the Redis URL with its password, the web user added."""
    values = {"PATH": "/usr/bin:/bin", **config_env(redis_url=secret_redis.url)}
    store = AdminStore(load(values))
    try:
        Accounts(store).add_user(WEB_USER, "admin", [], WEB_PASSWORD, actor=Actor("cli:test"))
    finally:
        store.close()
    return values


def test_text_log_lines_carry_time_level_logger_and_no_secret(
        tmp_path: Path, secret_redis: RedisServer, env: dict[str, str]) -> None:
    logs = run_both_servers(tmp_path, secret_redis, env, "text")
    logs.assert_no_secret()
    for text in (logs.fastagi, logs.web):
        lines = text.splitlines()
        assert lines and all(TEXT_LINE.match(line) for line in lines), text
    assert "WARNING callroute.fastagi calls fall back to ringing default devices" \
        in logs.fastagi, logs.fastagi
    assert "WARNING callroute.web redis unavailable" in logs.web, logs.web
    assert 'INFO uvicorn.access 127.0.0.1' in logs.web, logs.web
    assert 'POST /api/v1/tokens HTTP/1.1" 401' in logs.web, logs.web


def test_json_log_lines_parse_carry_the_fields_and_no_secret(
        tmp_path: Path, secret_redis: RedisServer, env: dict[str, str]) -> None:
    logs = run_both_servers(tmp_path, secret_redis, env, "json")
    logs.assert_no_secret()
    records = {}
    for name, text in (("fastagi", logs.fastagi), ("web", logs.web)):
        records[name] = [json.loads(line) for line in text.splitlines()]
        assert records[name], f"{name} logged nothing"
        for record in records[name]:
            assert set(record) >= FIELDS and TIME.match(record["time"]), record
    assert any(r["logger"] == "callroute.fastagi" and r["level"] == "WARNING"
               and r["message"].startswith("calls fall back to ringing default devices")
               for r in records["fastagi"]), logs.fastagi
    assert any(r["logger"] == "callroute.web" and r["message"].startswith("redis unavailable")
               for r in records["web"]), logs.web
    assert any(r["logger"] == "uvicorn.access" and "POST /api/v1/tokens HTTP/1.1\" 401"
               in r["message"] for r in records["web"]), logs.web
    assert any(r["logger"] == "uvicorn.error" for r in records["web"]), logs.web


def test_a_json_record_is_one_line_with_the_exception_and_extras_as_fields() -> None:
    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError:
        record = logging.LogRecord("callroute.test", logging.ERROR, __file__, 1,
                                   "failed on %s", ("1001",), sys.exc_info())
    record.ext = "1001"  # as `extra={"ext": "1001"}` sets it
    line = logfmt.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed on 1001" and entry["ext"] == "1001"
    assert entry["exception"].startswith("Traceback") and "second line" in entry["exception"]
    text = logfmt.TextFormatter().format(record)
    assert text.splitlines()[0].endswith(' ERROR callroute.test failed on 1001 ext="1001"')


def test_a_bad_log_format_is_one_line_and_exit_2(config_env: Callable[..., dict[str, str]]):
    env = {**os.environ, **config_env(log_format="xml")}
    for server in ("callroute-fastagi", "callroute-web"):
        proc = subprocess.run([str(console_script(server)), "--listen", "127.0.0.1:1"],
                              env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "CALLROUTE_LOG_FORMAT" in proc.stderr, \
            proc.stderr
