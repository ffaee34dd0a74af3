"""Every admin command against a real redis-server, plus the store's failure modes.

Refusals are checked against a full DUMP of the database before and after: "nothing
written" must mean nothing at all, not "the field I looked at is unchanged".
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import redis

from agi.config import load
from agi.store import read_call_settings

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.redis

KEY = "callroute:ext:1001"
INDEX = "callroute:extensions"
COMPANY_KEY = "callroute:company"
COMPANY_NUMBER = "+33142685300"
DID = "+33142685301"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
PASSWORD = "s3cr3t-Pa55word"

Cli = Callable[..., "CliResult"]


@pytest.fixture
def populated(run_cli: Cli) -> Cli:
    """An office with a company number and one forwarded extension with an external phone."""
    for argv in (["company", "set", "01 42 68 53 00", "--name", "Acme"],
                 ["ext", "add", "1001", "--device", "PJSIP/1001", "--did", "01 42 68 53 01"],
                 ["ext", "add", "1002"],
                 ["device", "add", "1001", "06 98 76 54 32"],
                 ["forward", "on", "1001", "06 12 34 56 78", "--caller-id", "company"]):
        assert run_cli(*argv).code == 0, argv
    return run_cli


# ---- ext ---------------------------------------------------------------------------------

def test_ext_add_defaults(run_cli: Cli, redis_client: redis.Redis) -> None:
    result = run_cli("ext", "add", "1001")
    assert (result.code, result.out, result.err) == (0, "extension 1001 added\n", "")
    assert redis_client.hgetall(KEY) == {"devices": '["PJSIP/1001"]', "mailbox": "1001@default",
                                         "forward_enabled": "0", "schema": "1"}
    assert redis_client.smembers(INDEX) == {"1001"}


def test_ext_add_with_options_then_update(run_cli: Cli, redis_client: redis.Redis) -> None:
    result = run_cli("ext", "add", "1001", "--device", "PJSIP/1001", "--device", "PJSIP/1001b",
                     "--device", "PJSIP/1001", "--mailbox", "sales@office", "--did",
                     "01 42 68 53 01")
    assert (result.code, result.out) == (0, "extension 1001 added\n")
    assert redis_client.hgetall(KEY) == {
        "devices": '["PJSIP/1001","PJSIP/1001b"]', "mailbox": "sales@office", "did": DID,
        "forward_enabled": "0", "schema": "1"}
    result = run_cli("ext", "add", "1001", "--device", "SIP/1001")
    assert (result.code, result.out) == (0, "extension 1001 updated\n")
    assert redis_client.hgetall(KEY) == {
        "devices": '["SIP/1001"]', "mailbox": "sales@office", "did": DID,
        "forward_enabled": "0", "schema": "1"}


def test_ext_add_default_mailbox_follows_the_voicemail_context(
        run_cli: Cli, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_VOICEMAIL_CONTEXT", "office")
    assert run_cli("ext", "add", "1001").code == 0
    assert redis_client.hget(KEY, "mailbox") == "1001@office"


def test_ext_remove(populated: Cli, redis_client: redis.Redis) -> None:
    result = populated("ext", "remove", "1001")
    assert (result.code, result.out, result.err) == (0, "extension 1001 removed\n", "")
    assert redis_client.exists(KEY) == 0
    assert redis_client.smembers(INDEX) == {"1002"}


def test_ext_show_json(populated: Cli) -> None:
    result = populated("ext", "show", "1001", "--json")
    assert result.code == 0
    info = json.loads(result.out)
    assert re.fullmatch("[0-9a-f]{16}", info.pop("version"))
    assert info == {
        "extension": "1001", "devices": ["PJSIP/1001"],
        "external_devices": [{"number": MOBILE_2, "require_keypress": None, "delay": 0,
                              "ring": None}],
        "externals_during_calls": True,
        "forward": {"enabled": True, "target": MOBILE, "target_extension": "",
                    "when": "always", "after": 20, "caller_id": "company",
                    "require_keypress": False},
        "confirm": {"tries": None, "timeout": None, "prompt": None},
        "mailbox": "1001@default", "did": DID, "language": {"own": None, "used": ""},
        "status": "OK", "problems": "",
        "behaviour": f"Calls ring only {MOBILE}, showing {COMPANY_NUMBER}; unanswered calls "
                     "go to voicemail 1001@default.", "corrupt": []}


def test_ext_show_text(populated: Cli) -> None:
    result = populated("ext", "show", "1001")
    assert result.code == 0
    assert result.out.splitlines() == [
        "Extension 1001",
        "  devices:          PJSIP/1001",
        f"  external devices: {MOBILE_2}",
        "  during calls:     external devices ring too",
        f"  forwarding:       on -> {MOBILE} (caller ID company, keypress not required)",
        "  press 1 prompt:   dialplan defaults",
        "  mailbox:          1001@default",
        f"  DID:              {DID}",
        "  language:         the PBX's own (none set)",
        f"  Calls ring only {MOBILE}, showing {COMPANY_NUMBER}; unanswered calls go to "
        "voicemail 1001@default.",
    ]


def test_ext_show_warns_about_corrupt_data(run_cli: Cli, redis_client: redis.Redis) -> None:
    redis_client.hset(KEY, mapping={"devices": '["PJSIP/1001"]', "forward_enabled": "yes"})
    result = run_cli("ext", "show", "1001", "--json")
    info = json.loads(result.out)
    assert (info["status"], info["problems"]) == ("FALLBACK", "corrupt forward_enabled")


def test_ext_list_json_and_text(populated: Cli) -> None:
    result = populated("ext", "list", "--json")
    assert result.code == 0
    assert [(i["extension"], i["forward"]["enabled"], i["behaviour"])
            for i in json.loads(result.out)] == [
        ("1001", True, f"Calls ring only {MOBILE}, showing {COMPANY_NUMBER}; unanswered "
                       "calls go to voicemail 1001@default."),
        ("1002", False, "Calls ring PJSIP/1002; unanswered calls go to voicemail "
                        "1002@default."),
    ]
    text = populated("ext", "list").out.splitlines()
    assert [line.split()[0] for line in text] == ["1001", "1002"]
    assert text[0].split()[1:4] == ["forward", "->", MOBILE]


def test_ext_list_empty(run_cli: Cli) -> None:
    assert run_cli("ext", "list", "--json").out == "[]\n"
    assert run_cli("ext", "list").out == "no extensions (add one with 'callroute ext add EXT')\n"


# ---- forward -----------------------------------------------------------------------------

def test_forward_on_sets_every_field(run_cli: Cli, redis_client: redis.Redis) -> None:
    run_cli("ext", "add", "1001")
    result = run_cli("forward", "on", "1001", "06 12 34 56 78", "--caller-id", "company",
                     "--require-keypress")
    assert (result.code, result.err) == (0, "")
    assert result.out == (f"extension 1001: forwarding on to {MOBILE} (caller ID company, "
                          "keypress required)\n")
    assert redis_client.hgetall(KEY) == {
        "devices": '["PJSIP/1001"]', "mailbox": "1001@default", "forward_enabled": "1",
        "forward_target": MOBILE, "forward_when": "always", "forward_caller_id": "company",
        "forward_require_keypress": "1", "schema": "1"}


def test_forward_on_again_keeps_options_unless_given(run_cli: Cli,
                                                     redis_client: redis.Redis) -> None:
    run_cli("ext", "add", "1001")
    run_cli("forward", "on", "1001", "0612345678", "--caller-id", "company",
            "--require-keypress")
    assert run_cli("forward", "on", "1001", "0698765432").code == 0
    fields = redis_client.hgetall(KEY)
    assert (fields["forward_target"], fields["forward_caller_id"],
            fields["forward_require_keypress"]) == (MOBILE_2, "company", "1")
    assert run_cli("forward", "on", "1001", "0698765432", "--no-require-keypress").code == 0
    assert redis_client.hget(KEY, "forward_require_keypress") == "0"


def test_forward_off_keeps_target_and_options(run_cli: Cli,
                                              redis_client: redis.Redis) -> None:
    run_cli("ext", "add", "1001")
    run_cli("forward", "on", "1001", "0612345678", "--caller-id", "company",
            "--require-keypress")
    before = redis_client.hgetall(KEY)
    result = run_cli("forward", "off", "1001")
    assert (result.code, result.out) == (0, "extension 1001: forwarding off\n")
    assert redis_client.hgetall(KEY) == {**before, "forward_enabled": "0"}


@pytest.mark.parametrize("argv", [["forward", "on", "1009", "0612345678"],
                                  ["forward", "off", "1009"], ["ext", "remove", "1009"],
                                  ["ext", "show", "1009"], ["device", "add", "1009", "0612345678"]],
                         ids=" ".join)
def test_unknown_extension_exits_2(argv: list[str], populated: Cli,
                                   snapshot: Callable) -> None:
    before = snapshot()
    result = populated(*argv)
    assert (result.code, result.out) == (2, "")
    assert len(result.err_lines()) == 1
    assert "extension 1009 does not exist" in result.err
    assert snapshot() == before


# ---- refusals: exit 2, one line, nothing written -----------------------------------------

@pytest.mark.parametrize(("argv", "reason"), [
    (["forward", "on", "1001", "+44 7911 123456"], "no international forwarding"),
    (["forward", "on", "1001", "+49 30 1234567"], "no international forwarding"),
    (["forward", "on", "1001", "08 99 12 34 56"], "premium-rate"),
    (["forward", "on", "1001", "0810 12 34 56"], "shared-cost"),
    (["forward", "on", "1001", "112"], "emergency"),
    (["forward", "on", "1001", "15"], "emergency"),
    (["forward", "on", "1001", "3615"], "short code"),
    (["forward", "on", "1001", 'x"\nEXEC Dial "PJSIP/itsp/00881'], "is not a phone number"),
    (["forward", "on", "1001", "0612345678&0899123456"], "not part of a number"),
    (["forward", "on", "1001", "06 12 34 56 78 ext. 12"], "contains letters"),
    (["forward", "on", "1001", "01 42 68 53 00"], "company's own numbers"),
    (["forward", "on", "1001", "01 42 68 53 01"], "company's own numbers"),  # a DID
    (["forward", "on", "1001", "0612345678", "--caller-id", "boss"], "invalid choice"),
    (["forward", "on", "10 01", "0612345678"], "is not a valid extension"),
    (["device", "add", "1001", "+44 7911 123456"], "no international forwarding"),
    (["device", "add", "1001", "0899 12 34 56"], "premium-rate"),
    (["device", "add", "1001", "17"], "emergency"),
    (["device", "add", "1001", "01 42 68 53 00"], "company's own numbers"),
    (["device", "remove", "1001", "06 12 34 56 78"], "is not an external device"),
    (["ext", "add", "1003", "--device", "PJSIP/1003&PJSIP/itsp/0088"], "not a dial string"),
    (["ext", "add", "1003", "--device", "PJSIP/0088123@carrier"], "not a dial string"),
    (["ext", "add", "1003", "--mailbox", 'x"\nEXEC'], "is not a mailbox"),
    (["ext", "add", "1003", "--did", "+44 7911 123456"], "no international forwarding"),
    (["ext", "add", "1003", "--did", "01 42 68 53 01"], "already the DID of extension 1001"),
    (["ext", "add", "1001&PJSIP/x"], "is not a valid extension"),
    (["company", "set", "+44 20 7946 0000"], "no international forwarding"),
    (["company", "set", "0142685300", "--name", "Evil\nCorp"], "--name must be"),
    (["company", "set", "112"], "emergency"),
], ids=lambda argv: " ".join(argv) if isinstance(argv, list) else None)
def test_refused_input_changes_nothing(argv: list[str], reason: str, populated: Cli,
                                       snapshot: Callable) -> None:
    before = snapshot()
    result = populated(*argv)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err_lines()) == 1, result.err
    assert result.err.startswith("callroute: error: ")
    assert reason in result.err
    assert snapshot() == before


# ---- device and company ------------------------------------------------------------------

def test_device_add_and_remove(run_cli: Cli, redis_client: redis.Redis) -> None:
    run_cli("ext", "add", "1001")
    result = run_cli("device", "add", "1001", "06 12 34 56 78")
    assert (result.code, result.out) == (0, f"extension 1001: {MOBILE} rings with the desk "
                                            "phones\n")
    assert run_cli("device", "add", "1001", "+33612345678").code == 0  # no duplicate
    assert run_cli("device", "add", "1001", "0698765432").code == 0
    assert redis_client.hget(KEY, "external_devices") == json.dumps(
        [MOBILE, MOBILE_2], separators=(",", ":"))
    result = run_cli("device", "remove", "1001", "0612345678")
    assert (result.code, result.out) == (0, f"extension 1001: {MOBILE} removed\n")
    assert redis_client.hget(KEY, "external_devices") == f'["{MOBILE_2}"]'
    assert redis_client.hget(KEY, "schema") == "1"


def test_company_set(run_cli: Cli, redis_client: redis.Redis) -> None:
    result = run_cli("company", "set", "01 42 68 53 00", "--name", "Acme SARL")
    assert (result.code, result.out) == (0, f"company number set to {COMPANY_NUMBER}\n")
    assert redis_client.hgetall(COMPANY_KEY) == {"caller_id": COMPANY_NUMBER,
                                                 "name": "Acme SARL"}
    assert run_cli("company", "set", "01 42 68 53 99").code == 0
    assert redis_client.hgetall(COMPANY_KEY) == {"caller_id": "+33142685399",
                                                 "name": "Acme SARL"}


def test_custom_prefix(run_cli: Cli, redis_client: redis.Redis,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_PREFIX", "pbx2:")
    assert run_cli("ext", "add", "1001").code == 0
    assert sorted(redis_client.keys("*")) == ["pbx2:audit", "pbx2:ext:1001", "pbx2:extensions"]


# ---- the console script, as a real process -------------------------------------------------

def test_console_script_round_trip(run_cli_process: Cli,
                                   redis_client: redis.Redis) -> None:
    assert run_cli_process("ext", "add", "1001").code == 0
    result = run_cli_process("forward", "on", "1001", "0612345678", "--require-keypress")
    assert (result.code, result.err) == (0, "")
    assert redis_client.hget(KEY, "forward_target") == MOBILE
    shown = run_cli_process("ext", "show", "1001", "--json")
    assert json.loads(shown.out)["forward"] == {"enabled": True, "target": MOBILE,
                                                "target_extension": "", "when": "always",
                                                "after": 20, "caller_id": "original",
                                                "require_keypress": True}


def test_console_script_refusal(run_cli_process: Cli, snapshot: Callable) -> None:
    run_cli_process("ext", "add", "1001")
    before = snapshot()
    result = run_cli_process("forward", "on", "1001", "+44 7911 123456")
    assert (result.code, result.out) == (2, "")
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert snapshot() == before


def test_console_script_store_down(run_cli_process: Cli, closed_port: int) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{closed_port}/0"
    result = run_cli_process("ext", "list", env={"CALLROUTE_REDIS_URL": url})
    assert (result.code, result.out) == (1, "")
    assert result.err.count("\n") == 1
    assert PASSWORD not in result.err


# ---- atomic writes -------------------------------------------------------------------------

def test_concurrent_toggling_never_shows_a_partial_hash(
        run_cli: Cli, redis_client: redis.Redis, cli_env: dict[str, str]) -> None:
    """Writers flip forwarding while a reader uses the call-path read: every snapshot is
    a complete hash (the CLI replaces it inside MULTI; a DEL+HSET outside one would fail)."""
    assert run_cli("ext", "add", "1001", "--device", "PJSIP/1001").code == 0
    config = load(cli_env)
    stop = threading.Event()
    snapshots: list[dict[str, str]] = []
    codes: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                snapshots.append(read_call_settings(config, "1001", time.monotonic() + 2)[0])
        except BaseException as exc:
            errors.append(exc)

    def toggle(number: str) -> None:
        from agi import cli

        try:
            for i in range(15):
                argv = ["forward", "on", "1001", number] if i % 2 == 0 else \
                    ["forward", "off", "1001"]
                codes.append(cli.main(argv))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=toggle, args=(n,)) for n in ("0612345678", "0698765432")]
    reader.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
    stop.set()
    reader.join(10)
    assert errors == []
    assert codes == [0] * 30
    assert len(snapshots) >= 10
    for fields in snapshots:
        assert fields["schema"] == "1"
        assert fields["devices"] == '["PJSIP/1001"]'
        assert fields["forward_enabled"] in ("0", "1")
        if fields["forward_enabled"] == "1":
            assert fields["forward_target"] in (MOBILE, MOBILE_2)
            assert fields["forward_caller_id"] == "original"
            assert fields["forward_require_keypress"] == "0"
