"""Secrets: the Redis password never shows in the CLI's output, in what the agent sends
Asterisk, or in any log, whether the password is right, wrong or the URL broken; and a
store that can't be reached or refuses us is one line and exit 1."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from agi import variables as v
from agi.config import load
from agi.store import StoreError, read_call_settings, redact_url
from tests.asterisk_parser import set_pairs
from tests.fake_asterisk import agi_session, console_script
from tests.harness.net import start_fastagi
from tests.harness.procs import free_port, stop_popen
from tests.harness.redis_server import RedisServer, empty_db_client

if TYPE_CHECKING:
    from tests.conftest import CliResult

PASSWORD = "Pw-s3cr3t-4f9c2e"
WRONG = "Wr0ng-s3cr3t-71d0"
SECRETS = (PASSWORD, WRONG, "s3cr3t")
KEY = "callroute:ext:1001"

Cli = Callable[..., "CliResult"]

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password=PASSWORD)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _urls(password_redis: RedisServer, closed_port: int) -> dict[str, str]:
    port = password_redis.port
    return {
        "right-password": f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
        "user-and-right-password": f"redis://default:{PASSWORD}@127.0.0.1:{port}/0",
        "wrong-password": f"redis://:{WRONG}@127.0.0.1:{port}/0",
        "unreachable": f"redis://:{PASSWORD}@127.0.0.1:{closed_port}/0",
        "unresolvable-host": f"redis://:{PASSWORD}@callroute-no-such-host.invalid:6379/0",
        # Unencoded special characters break the URL's structure: the error must still
        # not quote any piece of the password.
        "at-in-password": f"redis://:{PASSWORD}@x@127.0.0.1:{port}/0",
        "slash-in-password": f"redis://:{PASSWORD}/x@127.0.0.1:{port}/0",
        "hash-in-password": f"redis://:{PASSWORD}#x@127.0.0.1:{port}/0",
        "query-password": f"redis://127.0.0.1:{port}/0?password={PASSWORD}",
    }


CLI_COMMANDS = [
    ["company", "set", "01 42 68 53 00", "--name", "Acme"],
    ["ext", "add", "1001", "--did", "01 42 68 53 01"],
    ["device", "add", "1001", "06 98 76 54 32"],
    ["forward", "on", "1001", "06 12 34 56 78", "--caller-id", "company"],
    ["ext", "show", "1001"], ["ext", "show", "1001", "--json"],
    ["ext", "list"], ["ext", "list", "--json"],
    ["forward", "on", "1001", "+44 7400 123456"],  # refused: exit 2
    ["forward", "off", "1001"], ["device", "remove", "1001", "06 98 76 54 32"],
    ["ext", "show", "1009"], ["ext", "remove", "1001"],
]


def _no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


@pytest.mark.parametrize("which", ["right-password", "user-and-right-password",
                                   "wrong-password", "unreachable", "unresolvable-host",
                                   "at-in-password", "slash-in-password", "hash-in-password",
                                   "query-password"])
def test_cli_never_prints_the_password(which: str, run_cli, password_redis: RedisServer,
                                       closed_port: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_REDIS_URL", _urls(password_redis, closed_port)[which])
    codes = []
    with empty_db_client(password_redis.url):
        for argv in CLI_COMMANDS:
            result = run_cli(*argv)
            codes.append(result.code)
            _no_secret(result.out, result.err)
            assert result.code in (0, 1, 2)
            assert result.code == 0 or len(result.err_lines()) == 1, result.err
    if which in ("right-password", "user-and-right-password", "query-password"):
        assert codes == [0] * 8 + [2, 0, 0, 2, 0]  # the commands really ran
    else:
        assert set(codes) <= {1, 2} and codes[0] != 0


def test_cli_process_with_a_broken_url_prints_one_line(password_redis: RedisServer,
                                                       run_cli_process) -> None:
    """Before the fix, a '/' in the password gave a traceback quoting part of it."""
    url = f"redis://:{PASSWORD}/x@127.0.0.1:{password_redis.port}/0"
    result = run_cli_process("ext", "list", "--json", env={"CALLROUTE_REDIS_URL": url})
    assert (result.code, result.out) == (2, "")
    assert len(result.err_lines()) == 1 and "Traceback" not in result.err
    assert "CALLROUTE_REDIS_URL is malformed" in result.err
    _no_secret(result.err)


@pytest.mark.parametrize("which", ["wrong-password", "unreachable", "slash-in-password",
                                   "right-password"])
def test_process_agi_never_sends_or_logs_the_password(which: str, fake_asterisk,
                                                      password_redis: RedisServer,
                                                      closed_port: int) -> None:
    url = _urls(password_redis, closed_port)[which]
    run = fake_asterisk(redis_url=url, extra_agi_env={"agi_callerid": PASSWORD}).run("1001")
    assert not run.timed_out and run.returncode == 0
    # The caller ID is echoed nowhere either: the secret appears in no command at all.
    _no_secret("\n".join(run.raw_lines), run.stderr)
    assert run.stderr == ""
    if which == "right-password":
        assert run.variables()[v.STATUS] == v.STATUS_OK
    elif which == "slash-in-password":
        assert run.set_variables() == []  # config error: the dialplan rings the default device
        assert any("CALLROUTE_REDIS_URL is malformed" in " ".join(c) for c in run.commands)
    else:
        assert run.variables()[v.STATUS] == v.STATUS_FALLBACK
        assert any(c[:1] == ["VERBOSE"] for c in run.commands)


@pytest.mark.parametrize("which", ["wrong-password", "unreachable", "right-password"])
def test_fastagi_log_never_shows_the_password(which: str, password_redis: RedisServer,
                                              closed_port: int, config_env,
                                              tmp_path: Path) -> None:
    url = _urls(password_redis, closed_port)[which]
    port = free_port()
    log = tmp_path / "fastagi.log"
    env = {"PATH": "/usr/bin:/bin", **config_env(redis_url=url)}
    proc = start_fastagi(console_script("callroute-fastagi"), "127.0.0.1", port, env, log,
                         "--log-level", "DEBUG")
    try:
        started = time.monotonic()
        commands = agi_session(port)
        # The whole session, until the server closes it: a Redis error reply once kept
        # the connection open until Python's GC ran (Asterisk would have waited).
        assert time.monotonic() - started < 1.0
        _no_secret(json.dumps(commands))
        status = dict(set_pairs(commands))[v.STATUS]
        assert status == (v.STATUS_OK if which == "right-password" else v.STATUS_FALLBACK)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        stop_popen(proc)
    text = log.read_text()
    assert "listening on 127.0.0.1" in text and ":***@" in text
    if which != "right-password":
        assert "calls fall back to ringing default devices" in text
    _no_secret(text)


# ---- the store unreachable or refusing us: exit 1, one line, no secret -------------------

def _assert_store_failure(result: CliResult, *secrets: str) -> None:
    assert result.code == 1
    assert result.out == ""
    err = result.err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("callroute: error: cannot ")
    for secret in secrets:
        assert secret not in err


@pytest.mark.parametrize("argv", [["ext", "list"], ["ext", "add", "1001"],
                                  ["forward", "on", "1001", "0612345678"],
                                  ["company", "set", "0142685300"]], ids=" ".join)
def test_store_unreachable_exits_1(argv: list[str], run_cli: Cli, closed_port: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://admin:{PASSWORD}@127.0.0.1:{closed_port}/0"
    monkeypatch.setenv("CALLROUTE_REDIS_URL", url)
    result = run_cli(*argv)
    _assert_store_failure(result, PASSWORD)
    assert f"redis://admin:***@127.0.0.1:{closed_port}/0" in result.err


def test_wrong_password_exits_1_without_leaking(run_cli: Cli, password_redis: RedisServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "not-the-Pa55word"
    monkeypatch.setenv("CALLROUTE_REDIS_URL", f"redis://:{wrong}@127.0.0.1:{password_redis.port}/0")
    _assert_store_failure(run_cli("ext", "list"), wrong, PASSWORD)
    monkeypatch.setenv("CALLROUTE_REDIS_URL", f"redis://127.0.0.1:{password_redis.port}/0")
    _assert_store_failure(run_cli("ext", "list"), PASSWORD)


def test_right_password_works_and_is_never_shown(run_cli: Cli,
                                                 password_redis: RedisServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_REDIS_URL", password_redis.url)
    with empty_db_client(password_redis.url) as client:
        for argv in (["ext", "add", "1001"], ["ext", "show", "1001"], ["ext", "list", "--json"]):
            result = run_cli(*argv)
            assert result.code == 0
            assert PASSWORD not in result.out + result.err
        assert client.exists(KEY) == 1


def test_call_path_read_with_password(password_redis: RedisServer,
                                      config_env: Callable[..., dict[str, str]]) -> None:
    """The hand-written RESP client authenticates, and a wrong password fails cleanly."""
    client = redis.Redis.from_url(password_redis.url, decode_responses=True)
    client.hset(KEY, mapping={"devices": '["PJSIP/1001"]'})
    try:
        config = load(config_env(redis_url=password_redis.url))
        fields, company = read_call_settings(config, "1001", time.monotonic() + 1)
        assert (fields, company) == ({"devices": '["PJSIP/1001"]'}, {})
        bad = load(config_env(redis_url=f"redis://:wrong@127.0.0.1:{password_redis.port}/0"))
        with pytest.raises(StoreError) as info:
            read_call_settings(bad, "1001", time.monotonic() + 1)
        assert str(info.value) == "Redis error WRONGPASS"
    finally:
        client.delete(KEY)
        client.close()


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
    ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
    ("rediss://u:p%40ss@h/0", "rediss://u:***@h/0"),
    ("redis://h:1/0", "redis://h:1/0"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
