"""`callroute-agi` end to end against a fake Asterisk peer and a real Redis.

The agent runs as a real process, as Asterisk would run it, and every command it sends
is parsed with Asterisk's own rules: what is recorded here is exactly what the channel
would get. Each run has a hard timeout, so a hung agent is a failure, not a hung suite.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable

import pytest
import redis

from agi import variables as v
from tests.fake_asterisk import DEAD_CHANNEL_REPLY, HANGUP_REPLY, AgiRun, FakeAsterisk
from tests.harness.redis_server import RedisServer

pytestmark = pytest.mark.redis

KEY = "callroute:ext:1001"
COMPANY_KEY = "callroute:company"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
COMPANY_NUMBER = "+33142685300"
DID = "+33142685301"
TRUNK = "PJSIP/{number}@carrier"
INJECTION = 'x"\nEXEC Dial "PJSIP/itsp/00881'
TIMEOUT_MS = 300
# Allowed lateness of a blackholed-Redis FALLBACK beyond the deadline, over a baseline run.
DEADLINE_MARGIN_S = 0.25

Fake = Callable[..., FakeAsterisk]


def leg(number: str, keypress: bool = False) -> str:
    return f"Local/{number}-{int(keypress)}-0-0@callroute-external/n"


def every_variable(**values: str) -> dict[str, str]:
    """All the variables of one decision as the dialplan reads them: the ones given,
    the rest empty (the agent sends no empty one)."""
    return {name: "" for name in v.ALL} | {
        getattr(v, key.upper()): value for key, value in values.items()}


def assert_clean(run: AgiRun, *, verbose: bool) -> None:
    """A normal session: exit 0, silent stderr, all variables once, STATUS last."""
    assert not run.timed_out
    assert run.returncode == 0
    assert run.stderr == ""
    names = [name for name, _ in run.set_variables()]
    assert names == [name for name in v.SENT if name in names]  # in order, each once
    assert names[-1] == v.STATUS
    # One round trip sets them all (docs/dialplan-contract.md).
    assert run.verbs() == ["EXEC MSet"] + (["VERBOSE"] if verbose else [])
    assert len(run.commands[0]) == 3


def never_dialled(run: AgiRun, planted: str) -> None:
    values = run.variables()
    for name in (v.DIAL, v.TARGET, v.CALLERID, v.DIVERSION, v.MAILBOX):
        assert planted not in values[name], (name, values[name])


@pytest.fixture
def office(redis_client: redis.Redis) -> redis.Redis:
    """The company hash plus extension 1001 with a desk phone and a DID, as the CLI writes."""
    redis_client.hset(COMPANY_KEY, mapping={"caller_id": COMPANY_NUMBER, "name": "Acme"})
    redis_client.hset(KEY, mapping={"devices": '["PJSIP/1001"]', "mailbox": "1001@default",
                                    "did": DID, "forward_enabled": "0", "schema": "1"})
    redis_client.sadd("callroute:extensions", "1001")
    return redis_client


def test_forward_on(office: redis.Redis, run_cli: Callable, fake_asterisk: Fake) -> None:
    assert run_cli("forward", "on", "1001", "06 12 34 56 78", "--caller-id", "company",
                   "--require-keypress").code == 0
    run = fake_asterisk().run("1001")
    assert_clean(run, verbose=False)
    assert run.variables() == every_variable(
        mode=v.MODE_FORWARD, dial=leg(MOBILE, True), target=MOBILE, confirm="1",
        callerid=COMPANY_NUMBER, diversion=DID, mailbox="1001@default", trunk=TRUNK,
        forwarding="1", status=v.STATUS_OK)
    # What the external leg inherits, in the same MSet.
    assert run.leg_variables() == {
        v.LEG_TRUNK: TRUNK, v.LEG_CONFIRM: "1", v.LEG_CALLERID: COMPANY_NUMBER,
        v.LEG_CALLERID_RETRY: "", v.LEG_DIVERSION: DID, v.LEG_TRIES: "", v.LEG_TIMEOUT: "",
        v.LEG_PROMPT: "", v.LEG_LANGUAGE: "", v.LEG_REASON: v.REASON_UNCONDITIONAL}


def test_a_call_imports_neither_typing_nor_the_admin_libraries(
        office: redis.Redis, run_cli: Callable, fake_asterisk: Fake) -> None:
    """Every process-AGI call is a new interpreter that pays for each module it loads
    (typing alone is about 2 ms, 4 % of a call; the mode is held to 4.5 x `python -c
    pass`). A forwarded call with an external device walks the whole decision."""
    assert run_cli("forward", "on", "1001", "0612345678").code == 0
    assert run_cli("device", "add", "1001", "06 98 76 54 32").code == 0
    agent = fake_asterisk()
    agent.env["PYTHONPROFILEIMPORTTIME"] = "1"
    run = agent.run("1001")
    assert run.variables()[v.STATUS] == v.STATUS_OK
    loaded = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines()
              if line.startswith("import time:") and line.count("|") == 2}
    assert "agi.routing" in loaded and "asterisk.agi" in loaded  # the profile is real
    assert not loaded & {"typing", "redis", "phonenumbers", "agi.admin"}, loaded


def test_forward_on_original_caller_id_no_keypress(office: redis.Redis, run_cli: Callable,
                                                   fake_asterisk: Fake) -> None:
    assert run_cli("forward", "on", "1001", "0612345678").code == 0
    values = fake_asterisk().run("1001").variables()
    assert (values[v.MODE], values[v.CONFIRM], values[v.CALLERID], values[v.DIVERSION]) == (
        v.MODE_FORWARD, "", "", DID)


def test_forward_off_rings_devices_and_external_phone(office: redis.Redis, run_cli: Callable,
                                                      fake_asterisk: Fake) -> None:
    for argv in (["ext", "add", "1001", "--device", "PJSIP/1001", "--device", "PJSIP/1001b"],
                 ["device", "add", "1001", "06 98 76 54 32"],
                 ["forward", "on", "1001", "0612345678", "--require-keypress"],
                 ["forward", "off", "1001"]):
        assert run_cli(*argv).code == 0, argv
    run = fake_asterisk().run("1001")
    assert_clean(run, verbose=False)
    assert run.variables() == every_variable(
        mode=v.MODE_RING, dial=f"PJSIP/1001&PJSIP/1001b&{leg(MOBILE_2, True)}", confirm="1",
        diversion=DID, mailbox="1001@default", trunk=TRUNK, status=v.STATUS_OK)
    assert run.leg_variables()[v.LEG_REASON] == v.REASON_FOLLOW_ME


def test_unknown_extension_rings_default_device(redis_client: redis.Redis,
                                                fake_asterisk: Fake) -> None:
    run = fake_asterisk().run("2002")
    assert_clean(run, verbose=False)
    assert run.leg_variables() == {}  # no external leg: nothing to inherit
    assert run.variables() == every_variable(
        mode=v.MODE_RING, dial="PJSIP/2002", mailbox="2002@default",
        reason="unknown extension", status=v.STATUS_OK)


def test_extension_from_agi_arg_when_no_argv(office: redis.Redis,
                                             fake_asterisk: Fake) -> None:
    run = fake_asterisk(extra_agi_env={"agi_arg_1": "1001"}).run("1001", argv=[])
    assert_clean(run, verbose=False)
    assert run.variables()[v.DIAL] == "PJSIP/1001"


def fallback_variables(ext: str, reason_start: str, run: AgiRun) -> None:
    values = run.variables()
    assert values[v.REASON].startswith(reason_start)
    assert {**values, v.REASON: ""} == every_variable(
        mode=v.MODE_RING, dial=f"PJSIP/{ext}", mailbox=f"{ext}@default",
        status=v.STATUS_FALLBACK)


def test_redis_stopped(tmp_path_factory: pytest.TempPathFactory, fake_asterisk: Fake) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis-stopped"))
    try:
        server.start()
    finally:
        server.stop()
    run = fake_asterisk(redis_url=server.url).run("1001")
    assert_clean(run, verbose=True)
    fallback_variables("1001", "store: cannot connect to Redis", run)
    assert run.commands[-1][0] == "VERBOSE"
    assert run.commands[-1][1].startswith("callroute: ext '1001': FALLBACK RING (store: ")


def _status_times(fake: FakeAsterisk, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        run = fake.run("1001")
        assert run.status_at is not None and not run.timed_out
        times.append(run.status_at)
    return times


def test_redis_blackholed_falls_back_within_the_deadline(blackhole_port: int,
                                                         closed_port: int,
                                                         fake_asterisk: Fake) -> None:
    """A Redis that accepts and never answers costs the deadline, not redis-py's 60 s.

    Start-up time varies with machine load, so the blackholed run is compared with a
    baseline whose Redis refuses at once (median of three): the difference is the time
    spent waiting, which must be the deadline plus a small margin.
    """
    baseline = statistics.median(_status_times(
        fake_asterisk(redis_url=f"redis://127.0.0.1:{closed_port}/0", timeout_ms=TIMEOUT_MS), 3))
    fake = fake_asterisk(redis_url=f"redis://127.0.0.1:{blackhole_port}/0",
                         timeout_ms=TIMEOUT_MS)
    run = fake.run("1001")
    assert_clean(run, verbose=True)
    fallback_variables("1001", "store: Redis did not answer before the deadline", run)
    assert run.status_at is not None
    waited = run.status_at - baseline
    assert TIMEOUT_MS / 1000 * 0.9 <= waited <= TIMEOUT_MS / 1000 + DEADLINE_MARGIN_S, waited


def test_redis_blackholed_short_deadline(blackhole_port: int, fake_asterisk: Fake) -> None:
    run = fake_asterisk(redis_url=f"redis://127.0.0.1:{blackhole_port}/0",
                        timeout_ms=50).run("1001")
    assert_clean(run, verbose=True)
    assert run.variables()[v.STATUS] == v.STATUS_FALLBACK
    assert run.elapsed < 2.0


@pytest.mark.parametrize(("field", "planted"), [
    ("forward_target", "+447911123456"),
    ("forward_target", "+33899123456&PJSIP/itsp/0088"),
    ("forward_target", "+3315"),
    ("forward_target", INJECTION),
    ("devices", "PJSIP/1001&PJSIP/itsp/00881"),
    ("devices", "PJSIP/00881234@carrier"),
    ("external_devices", "+4915123456789"),
], ids=repr)
def test_corrupt_fields_are_never_dialled(field: str, planted: str, office: redis.Redis,
                                          fake_asterisk: Fake) -> None:
    fields = {"forward_target": MOBILE,
              "forward_enabled": "1" if field == "forward_target" else "0"}
    fields[field] = planted if field == "forward_target" else json.dumps([planted])
    office.hset(KEY, mapping=fields)
    run = fake_asterisk().run("1001")
    assert_clean(run, verbose=True)
    never_dialled(run, planted)
    values = run.variables()
    assert (values[v.STATUS], values[v.MODE], values[v.DIAL]) == (
        v.STATUS_FALLBACK, v.MODE_RING, "PJSIP/1001")
    for words in run.commands:
        assert planted not in " ".join(words[:2])


@pytest.mark.parametrize("planted", [INJECTION, 'a"b', "line1\nEXEC Dial PJSIP/x",
                                     'x\\"\nEXEC Dial "PJSIP/itsp/00881', "\r\nHANGUP"],
                         ids=repr)
def test_quotes_and_newlines_planted_in_redis(planted: str, office: redis.Redis,
                                              fake_asterisk: Fake) -> None:
    """Every string field and the company hash poisoned: still exactly the expected commands."""
    office.hset(KEY, mapping={"mailbox": planted, "did": planted, "forward_caller_id": planted,
                              "forward_enabled": planted, "forward_target": planted,
                              "note": planted})
    office.hset(COMPANY_KEY, mapping={"caller_id": planted, "name": planted})
    run = fake_asterisk().run("1001")
    assert_clean(run, verbose=True)
    assert len(run.commands) == 2  # one MSet, one VERBOSE
    # The only EXEC is the MSet, and it sets CALLROUTE_* variables only.
    assert [words[:2] for words in run.commands if words[0] == "EXEC"] == [["EXEC", "MSet"]]
    assert all(name.startswith("CALLROUTE_") for name, _ in run.set_variables())
    values = run.variables()
    assert (values[v.STATUS], values[v.DIAL], values[v.MAILBOX]) == (
        v.STATUS_FALLBACK, "PJSIP/1001", "1001@default")
    never_dialled(run, planted)


@pytest.mark.parametrize("ext", ["1001&PJSIP/x", '1001" EXEC Dial', "1001,,U(x)", "${EXTEN}"],
                         ids=repr)
def test_invalid_extension_argument(ext: str, office: redis.Redis,
                                    fake_asterisk: Fake) -> None:
    run = fake_asterisk().run(ext)
    assert_clean(run, verbose=True)
    assert run.variables() == every_variable(
        mode=v.MODE_VOICEMAIL, reason=f"invalid extension {ext!r}", status=v.STATUS_INVALID)


# ---- hang-ups ---------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "commands"), [
    ({"hangup_after": 1, "hangup_reply": HANGUP_REPLY}, 2),
    ({"hangup_after": 1, "hangup_reply": DEAD_CHANNEL_REPLY}, 2),
    ({"hangup_after": 0, "hangup_reply": HANGUP_REPLY}, 1),
    ({"close_after": 1}, 2),
    ({"close_after": 0}, 1),
    ({"sighup_after": 2}, 2),
    ({"sighup_after": 1}, 1),
], ids=["HANGUP", "511-dead-channel", "HANGUP-first", "stdin-closed", "stdin-closed-first",
        "SIGHUP", "SIGHUP-first"])
def test_hangup_mid_session_exits_quietly(options: dict[str, object], commands: int,
                                          fake_asterisk: Fake) -> None:
    """An invalid extension: two commands (MSet, then the VERBOSE line)."""
    run = fake_asterisk(**options).run("bad&ext")
    assert not run.timed_out
    assert (run.returncode, run.stderr) == (0, "")
    assert len(run.commands) == commands
    assert run.verbs() == ["EXEC MSet", "VERBOSE"][:commands]


def test_asterisk_closing_both_pipes(fake_asterisk: Fake) -> None:
    """Asterisk gone entirely: the agent's write fails (EPIPE). Still exit 0, silent.
    (An invalid extension: MSet, then a VERBOSE that can't be written.)"""
    run = fake_asterisk(close_output_after=1).run("bad&ext")
    assert not run.timed_out
    assert (run.returncode, run.stderr) == (0, "")
    assert len(run.commands) == 1  # the VERBOSE after it hits the closed pipe
