"""Feature codes (forwarding on/off/toggle from the desk phone) against a real Redis.

Driven like Asterisk drives them: through the in-process FastAGI server (script
"feature", arguments in agi_arg_1..3) and the real `callroute-feature` process with the
fake Asterisk (arguments on its command line). Every command is parsed with Asterisk's
own rules. Refusals are checked against a full DUMP: nothing written at all.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from agi import variables as v
from agi.store import ADMIN_TIMEOUT_S
from tests.fake_asterisk import AgiRun, FakeAsterisk, console_script
from tests.harness.redis_server import RedisServer
from tests.test_fastagi import agi_session

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]
KEY = "callroute:ext:1001"
COMPANY_NUMBER = "+33142685300"
DID = "+33142685301"
DID_2 = "+33142685302"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
PASSWORD = "Feature-s3cr3t-Pw"
INJECTION = 'x"\nEXEC Dial "PJSIP/itsp/00881'

Cli = Callable[..., "CliResult"]


@pytest.fixture
def office(run_cli: Cli) -> Cli:
    """A company number, 1001 (DID, desk phone) and 1002 (DID), as the CLI writes them."""
    for argv in (["company", "set", "01 42 68 53 00"],
                 ["ext", "add", "1001", "--did", "01 42 68 53 01"],
                 ["ext", "add", "1002", "--did", "01 42 68 53 02"]):
        assert run_cli(*argv).code == 0, argv
    return run_cli


def fastagi(port: int, *args: str, timeout: float = 10.0) -> list[list[str]]:
    """One FastAGI request for the feature script; every command parsed and answered 200."""
    return agi_session(port, "feature", args, timeout)


def outcome(commands: list[list[str]]) -> tuple[str, str]:
    """(FEATURE_STATUS, FEATURE_TARGET); checks they are the two variables, STATUS last."""
    sets = [c for c in commands if c[:2] == ["SET", "VARIABLE"]]
    assert [c[2] for c in sets] == [v.FEATURE_TARGET, v.FEATURE_STATUS]
    assert all(len(c) == 4 for c in sets)
    assert all(c[:2] == ["SET", "VARIABLE"] or c[0] == "VERBOSE" for c in commands)
    values = {c[2]: c[3] for c in sets}
    return values[v.FEATURE_STATUS], values[v.FEATURE_TARGET]


def log_lines(commands: list[list[str]]) -> list[str]:
    return [c[1] for c in commands if c[0] == "VERBOSE"]


@pytest.fixture
def feature(serve, redis_server: RedisServer) -> Callable[..., list[list[str]]]:
    server = serve(redis_server.url)
    return lambda *args: fastagi(server.address[1], *args)


# ---- on / off / toggle ----------------------------------------------------------------------

@pytest.mark.parametrize(("digits", "target"), [
    ("0612345678", MOBILE), ("+33612345678", MOBILE), ("0033612345678", MOBILE),
    ("0142685302", DID_2),  # another extension's DID: calls hop there
], ids=["national", "e164", "international-prefix", "other-extensions-did"])
def test_on(digits: str, target: str, office: Cli, feature, redis_client: redis.Redis) -> None:
    commands = feature("on", "1001", digits)
    assert outcome(commands) == (v.FEATURE_ON, target)
    assert log_lines(commands) == []
    fields = redis_client.hgetall(KEY)
    assert (fields["forward_enabled"], fields["forward_target"], fields["forward_when"]) == (
        "1", target, "always")


def test_on_keeps_the_other_forward_options(office: Cli, feature,
                                            redis_client: redis.Redis) -> None:
    assert office("forward", "on", "1001", "0698765432", "--when", "busy", "--caller-id",
                  "company", "--require-keypress").code == 0
    assert office("forward", "off", "1001").code == 0
    assert outcome(feature("on", "1001", "0612345678")) == (v.FEATURE_ON, MOBILE)
    fields = redis_client.hgetall(KEY)
    assert (fields["forward_target"], fields["forward_when"], fields["forward_caller_id"],
            fields["forward_require_keypress"]) == (MOBILE, "busy", "company", "1")


def test_off_keeps_the_target(office: Cli, feature, redis_client: redis.Redis) -> None:
    assert office("forward", "on", "1001", "0612345678").code == 0
    before = redis_client.hgetall(KEY)
    assert outcome(feature("off", "1001", "")) == (v.FEATURE_OFF, "")
    assert redis_client.hgetall(KEY) == {**before, "forward_enabled": "0"}
    assert outcome(feature("off", "1001")) == (v.FEATURE_OFF, "")  # already off: still OFF


def test_toggle_flips_to_the_stored_target_and_back(office: Cli, feature,
                                                    redis_client: redis.Redis) -> None:
    assert office("forward", "on", "1001", "0612345678").code == 0
    assert outcome(feature("toggle", "1001")) == (v.FEATURE_OFF, "")
    assert redis_client.hget(KEY, "forward_enabled") == "0"
    assert outcome(feature("toggle", "1001", "0698765432")) == (v.FEATURE_ON, MOBILE)
    assert (redis_client.hget(KEY, "forward_enabled"),
            redis_client.hget(KEY, "forward_target")) == ("1", MOBILE)


def test_toggle_rechecks_the_stored_target(office: Cli, feature, redis_client: redis.Redis,
                                           snapshot: Callable) -> None:
    """A target planted in Redis is judged like one typed: an own number is refused."""
    redis_client.hset(KEY, mapping={"forward_enabled": "0", "forward_target": DID})
    before = snapshot()
    commands = feature("toggle", "1001")
    assert outcome(commands) == (v.FEATURE_REFUSED, "")
    assert "company's own numbers" in log_lines(commands)[0]
    assert snapshot() == before


# ---- refusals: REFUSED, one log line, nothing written --------------------------------------

@pytest.mark.parametrize(("args", "why"), [
    (["on", "1001", "+447911123456"], "no international forwarding"),
    (["on", "1001", "0899123456"], "premium-rate"),
    (["on", "1001", "112"], "emergency"),
    (["on", "1001", "3615"], "short code"),
    (["on", "1001", "0142685301"], "company's own numbers"),  # its own DID
    (["on", "1001", "0142685300"], "company's own numbers"),  # the company number
    (["on", "1001", ""], "not a phone number"),
    (["on", "1001"], "not a phone number"),
    (["on", "1001", "*72"], "not a phone number"),
    (["on", "1001", "0612#"], "not a phone number"),
    (["on", "1001", "06CALLME"], "not a phone number"),
    (["on", "1001", "06 12 34 56 78"], "not a phone number"),
    (["on", "1001", "0" * 21], "not a phone number"),
    (["on", "1009", "0612345678"], "extension 1009 does not exist"),
    (["off", "1009"], "extension 1009 does not exist"),
    (["toggle", "1009"], "extension 1009 does not exist"),
    (["toggle", "1001"], "no forward target"),
    (["on", "1001&PJSIP/x", "0612345678"], "invalid extension"),
    (["on", "", "0612345678"], "invalid extension"),
    (["forward", "1001", "0612345678"], "unknown action"),
    ([], "unknown action"),
], ids=lambda args: "/".join(args) if isinstance(args, list) else None)
def test_refused(args: list[str], why: str, office: Cli, feature,
                 snapshot: Callable) -> None:
    before = snapshot()
    commands = feature(*args)
    assert outcome(commands) == (v.FEATURE_REFUSED, "")
    (line,) = log_lines(commands)
    assert line.startswith("callroute-feature: ext ")
    assert why in line
    assert snapshot() == before


def test_refusal_log_never_echoes_unchecked_input(office: Cli, feature) -> None:
    commands = feature("on", "1001&PJSIP/evil", "0612$(evil)")
    assert outcome(commands) == (v.FEATURE_REFUSED, "")
    assert log_lines(commands) == ["callroute-feature: ext ?: REFUSED (invalid extension)"]
    commands = feature("on", "1001", "0612$(evil)")
    assert log_lines(commands) == [
        "callroute-feature: ext 1001: REFUSED (the digits dialled are not a phone number)"]


# ---- the store unreachable: ERROR, one line, no secret, bounded ----------------------------

def test_store_down_is_an_error(serve, office: Cli, closed_port: int) -> None:
    server = serve(f"redis://:{PASSWORD}@127.0.0.1:{closed_port}/0")
    commands = fastagi(server.address[1], "on", "1001", "0612345678")
    assert outcome(commands) == (v.FEATURE_ERROR, "")
    (line,) = log_lines(commands)
    assert line.startswith("callroute-feature: ext 1001: ERROR (cannot ")
    assert PASSWORD not in line
    assert f"redis://:***@127.0.0.1:{closed_port}/0" in line


def test_store_blackholed_errors_within_the_admin_timeout(serve, blackhole_port: int) -> None:
    server = serve(f"redis://127.0.0.1:{blackhole_port}/0")
    started = time.monotonic()
    commands = fastagi(server.address[1], "toggle", "1001")
    elapsed = time.monotonic() - started
    assert outcome(commands) == (v.FEATURE_ERROR, "")
    assert ADMIN_TIMEOUT_S * 0.9 <= elapsed <= ADMIN_TIMEOUT_S + 2.0, elapsed


# ---- the process AGI entry point: callroute-feature ACTION EXT [DIGITS] --------------------

@pytest.fixture
def feature_process(config_env: Callable[..., dict[str, str]],
                    redis_server: RedisServer) -> Callable[..., AgiRun]:
    """Run the installed `callroute-feature` as Asterisk would, args on its command line."""

    def run(*args: str, redis_url: str | None = None) -> AgiRun:
        env = {"PATH": "/usr/bin:/bin",
               **config_env(redis_url=redis_url or redis_server.url)}
        fake = FakeAsterisk(executable=console_script("callroute-feature"), env=env,
                            extra_agi_env={f"agi_arg_{n}": arg.replace("\n", " ")
                                           for n, arg in enumerate(args, start=1)})
        return fake.run(args[1] if len(args) > 1 else "", argv=list(args))

    return run


def assert_quiet(run: AgiRun) -> None:
    assert not run.timed_out
    assert (run.returncode, run.stderr) == (0, "")


def test_process_on_then_toggle(office: Cli, feature_process,
                                redis_client: redis.Redis) -> None:
    run = feature_process("on", "1001", "0612345678")
    assert_quiet(run)
    assert outcome(run.commands) == (v.FEATURE_ON, MOBILE)
    assert redis_client.hget(KEY, "forward_target") == MOBILE
    run = feature_process("toggle", "1001")
    assert_quiet(run)
    assert outcome(run.commands) == (v.FEATURE_OFF, "")
    assert redis_client.hget(KEY, "forward_enabled") == "0"


def test_process_prefers_its_command_line(office: Cli, redis_server: RedisServer,
                                          config_env: Callable[..., dict[str, str]],
                                          redis_client: redis.Redis) -> None:
    """Process AGI reads its argv, which no caller can forge; agi_arg_* only in FastAGI."""
    env = {"PATH": "/usr/bin:/bin", **config_env(redis_url=redis_server.url)}
    fake = FakeAsterisk(executable=console_script("callroute-feature"), env=env,
                        extra_agi_env={"agi_arg_1": "on", "agi_arg_2": "1002",
                                       "agi_arg_3": "0698765432"})
    run = fake.run("1001", argv=["on", "1001", "0612345678"])
    assert outcome(run.commands) == (v.FEATURE_ON, MOBILE)
    assert redis_client.hget("callroute:ext:1002", "forward_enabled") == "0"


def test_process_injection_in_the_digits(office: Cli, feature_process,
                                         snapshot: Callable) -> None:
    before = snapshot()
    run = feature_process("on", "1001", INJECTION)
    assert_quiet(run)
    assert outcome(run.commands) == (v.FEATURE_REFUSED, "")
    assert not any(words[0] == "EXEC" for words in run.commands)
    assert all("EXEC" not in line and "itsp" not in line for line in run.raw_lines)
    assert snapshot() == before


def test_process_store_down(office: Cli, feature_process, closed_port: int) -> None:
    run = feature_process("off", "1001",
                          redis_url=f"redis://:{PASSWORD}@127.0.0.1:{closed_port}/0")
    assert_quiet(run)
    assert outcome(run.commands) == (v.FEATURE_ERROR, "")
    assert len(log_lines(run.commands)) == 1
    assert PASSWORD not in "\n".join(run.raw_lines)
    assert "Traceback" not in "\n".join(run.raw_lines)


def test_process_config_error_is_an_error(feature_process) -> None:
    run = feature_process("off", "1001", redis_url="http://nowhere")
    assert_quiet(run)
    assert outcome(run.commands) == (v.FEATURE_ERROR, "")
    assert "configuration error: CALLROUTE_REDIS_URL" in log_lines(run.commands)[0]


# ---- imports: the routing path stays lean --------------------------------------------------

def test_loading_the_feature_code_imports_neither_redis_nor_phonenumbers() -> None:
    """FastAGI imports the feature module at start-up; the admin layer, redis-py and
    phonenumbers load only when a feature request arrives, and the routing path never
    loads them."""
    code = ("import sys, agi.fastagi, agi.features, agi.process_agi, agi.service\n"
            "loaded = {'redis', 'phonenumbers', 'agi.admin', 'dataclasses'} & set(sys.modules)\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]
