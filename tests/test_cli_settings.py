"""Call settings through the CLI, against a real redis-server: conditional forwarding,
per-device settings, externals during calls, confirmation settings, caller-ID fallback,
hops to another extension's DID and the company's DID map.

Refusals are checked against a full DUMP, as in test_store_cli.py: exit 2, one line,
nothing written at all.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import redis

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.redis

KEY = "callroute:ext:1001"
KEY_2 = "callroute:ext:1002"
COMPANY_KEY = "callroute:company"
COMPANY_NUMBER = "+33142685300"
DID = "+33142685301"
DID_2 = "+33142685302"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
MOBILE_3 = "+33611223344"

Cli = Callable[..., "CliResult"]


def ok(cli: Cli, *argv: str) -> CliResult:
    result = cli(*argv)
    assert (result.code, result.err) == (0, ""), (argv, result.err)
    return result


@pytest.fixture
def office(run_cli: Cli) -> Cli:
    """A company number; 1001 (DID) with a desk phone; 1002 (DID)."""
    for argv in (["company", "set", "01 42 68 53 00", "--name", "Acme"],
                 ["ext", "add", "1001", "--device", "PJSIP/1001", "--did", "01 42 68 53 01"],
                 ["ext", "add", "1002", "--did", "01 42 68 53 02"]):
        ok(run_cli, *argv)
    return run_cli


def show(cli: Cli, ext: str = "1001") -> dict:
    return json.loads(ok(cli, "ext", "show", ext, "--json").out)


# ---- forward on: --when, --after, --caller-id original-fallback ----------------------------

def test_forward_when_and_after_are_stored_canonically(office: Cli,
                                                       redis_client: redis.Redis) -> None:
    result = ok(office, "forward", "on", "1001", "06 12 34 56 78", "--when", "noanswer,busy",
                "--after", "15")
    assert result.out == (f"extension 1001: forwarding on to {MOBILE}, when busy,noanswer "
                          "after 15 s (caller ID original, keypress not required)\n")
    fields = redis_client.hgetall(KEY)
    assert (fields["forward_when"], fields["forward_after"]) == ("busy,noanswer", "15")
    info = show(office)
    assert (info["forward"]["when"], info["forward"]["after"]) == ("busy,noanswer", 15)
    assert info["behaviour"] == (f"Calls ring PJSIP/1001 for 15 s, then {MOBILE} if nobody "
                                 "answers or the phones are busy; unanswered calls go to "
                                 "voicemail 1001@default.")


def test_forward_on_again_keeps_when_and_after(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "forward", "on", "1001", "0612345678", "--when", "noanswer", "--after", "30")
    ok(office, "forward", "on", "1001", "0698765432")
    assert (redis_client.hget(KEY, "forward_when"), redis_client.hget(KEY, "forward_after"),
            redis_client.hget(KEY, "forward_target")) == ("noanswer", "30", MOBILE_2)
    ok(office, "forward", "on", "1001", "0698765432", "--after", "45")  # noanswer stored
    assert redis_client.hget(KEY, "forward_after") == "45"
    ok(office, "forward", "on", "1001", "0698765432", "--when", "always")
    assert redis_client.hget(KEY, "forward_when") == "always"
    assert show(office)["behaviour"] == (f"Calls ring only {MOBILE_2}, showing the caller's "
                                         "number; unanswered calls go to voicemail "
                                         "1001@default.")


def test_forward_when_busy_output_has_no_after(office: Cli) -> None:
    result = ok(office, "forward", "on", "1001", "0612345678", "--when", "offline,busy")
    assert result.out == (f"extension 1001: forwarding on to {MOBILE}, when offline,busy "
                          "(caller ID original, keypress not required)\n")


def test_forward_caller_id_original_fallback(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "forward", "on", "1001", "0612345678", "--caller-id", "original-fallback")
    assert redis_client.hget(KEY, "forward_caller_id") == "original-fallback"
    assert show(office)["behaviour"] == (
        f"Calls ring only {MOBILE}, showing the caller's number ({COMPANY_NUMBER} if the "
        "carrier refuses it); unanswered calls go to voicemail 1001@default.")


# ---- another extension's DID: accepted, and calls hop to that extension -------------------

def test_forward_to_another_extensions_did_hops(office: Cli, redis_client: redis.Redis) -> None:
    result = ok(office, "forward", "on", "1001", "01 42 68 53 02")
    assert result.out.startswith(f"extension 1001: forwarding on to {DID_2}, extension "
                                 "1002's rules (")
    assert redis_client.hget(KEY, "forward_target") == DID_2
    info = show(office)
    assert info["forward"]["target_extension"] == "1002"
    assert info["behaviour"] == ("Calls follow extension 1002's rules; unanswered calls go to "
                                 "voicemail 1001@default.")


def test_device_add_another_extensions_did(office: Cli, redis_client: redis.Redis) -> None:
    result = ok(office, "device", "add", "1001", "01 42 68 53 02")
    assert result.out == (f"extension 1001: {DID_2} (extension 1002's rules) rings with the "
                          "desk phones\n")
    assert show(office)["behaviour"] == ("Calls ring PJSIP/1001 and extension 1002's rules; "
                                         "unanswered calls go to voicemail 1001@default.")


def test_did_stored_before_the_map_existed_is_indexed_first(
        office: Cli, redis_client: redis.Redis) -> None:
    """An older CLI wrote DIDs without the map: the hop must still be known at call time."""
    redis_client.hdel(COMPANY_KEY, f"did:{DID_2}")
    ok(office, "forward", "on", "1001", DID_2)
    assert redis_client.hget(COMPANY_KEY, f"did:{DID_2}") == "1002"
    assert redis_client.hgetall(KEY_2)["did"] == DID_2
    assert show(office)["forward"]["target_extension"] == "1002"


# ---- the DID map stays consistent with every extension write -------------------------------

def did_map(client: redis.Redis) -> dict[str, str]:
    return {key: ext for key, ext in client.hgetall(COMPANY_KEY).items()
            if key.startswith("did:")}


def test_did_map_follows_add_change_and_remove(office: Cli, redis_client: redis.Redis) -> None:
    assert did_map(redis_client) == {f"did:{DID}": "1001", f"did:{DID_2}": "1002"}
    ok(office, "ext", "add", "1001", "--did", "01 42 68 53 09")
    assert did_map(redis_client) == {"did:+33142685309": "1001", f"did:{DID_2}": "1002"}
    ok(office, "ext", "add", "1001", "--mailbox", "sales@office")  # DID unchanged
    assert did_map(redis_client) == {"did:+33142685309": "1001", f"did:{DID_2}": "1002"}
    ok(office, "ext", "remove", "1001")
    assert did_map(redis_client) == {f"did:{DID_2}": "1002"}
    ok(office, "company", "set", "01 42 68 53 99")  # the company number leaves the map alone
    assert did_map(redis_client) == {f"did:{DID_2}": "1002"}
    assert redis_client.hget(COMPANY_KEY, "name") == "Acme"


def test_a_freed_did_can_be_given_to_another_extension(office: Cli,
                                                       redis_client: redis.Redis) -> None:
    ok(office, "ext", "add", "1001", "--did", "01 42 68 53 09")
    ok(office, "ext", "add", "1003", "--did", DID)
    assert did_map(redis_client)[f"did:{DID}"] == "1003"


def test_a_map_entry_of_another_extension_is_never_removed(
        office: Cli, redis_client: redis.Redis) -> None:
    redis_client.hset(COMPANY_KEY, f"did:{DID}", "1009")  # hand-edited: not 1001's any more
    result = office("ext", "add", "1001", "--did", "01 42 68 53 09")
    assert result.code == 0
    assert did_map(redis_client)[f"did:{DID}"] == "1009"


def test_did_map_writes_are_atomic_with_the_extension(office: Cli, redis_client: redis.Redis,
                                                      cli_env: dict[str, str]) -> None:
    """While the DID flips between two numbers, every snapshot of (extension, company)
    taken in one MULTI agrees: the current DID maps to 1001 and the other one doesn't."""
    from agi import cli

    numbers = ("+33142685307", "+33142685308")
    stop = threading.Event()
    bad: list[tuple[str, dict]] = []
    codes: list[int] = []
    seen = 0

    def read() -> None:
        nonlocal seen
        while not stop.is_set():
            pipe = redis_client.pipeline(transaction=True)
            pipe.hget(KEY, "did")
            pipe.hgetall(COMPANY_KEY)
            did, company = pipe.execute()
            seen += 1
            mapped = {n for n in numbers if company.get(f"did:{n}") == "1001"}
            if did in numbers and mapped != {did}:
                bad.append((did, company))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(20):
            codes.append(cli.main(["ext", "add", "1001", "--did", numbers[i % 2]]))
    finally:
        stop.set()
        reader.join(10)
    assert codes == [0] * 20
    assert seen > 0
    assert bad == []


# ---- device add: per-device settings -------------------------------------------------------

def test_device_settings_object_form_only_when_given(office: Cli,
                                                     redis_client: redis.Redis) -> None:
    ok(office, "device", "add", "1001", "06 98 76 54 32")
    result = ok(office, "device", "add", "1001", "06 12 34 56 78", "--require-keypress",
                "--delay", "5", "--ring", "30")
    assert result.out == f"extension 1001: {MOBILE} rings with the desk phones\n"
    ok(office, "device", "add", "1001", "06 11 22 33 44", "--no-require-keypress")
    assert json.loads(redis_client.hget(KEY, "external_devices")) == [
        MOBILE_2,
        {"number": MOBILE, "require_keypress": True, "delay": 5, "ring": 30},
        {"number": MOBILE_3, "require_keypress": False}]
    info = show(office)
    assert info["external_devices"] == [
        {"number": MOBILE_2, "require_keypress": None, "delay": 0, "ring": None},
        {"number": MOBILE, "require_keypress": True, "delay": 5, "ring": 30},
        {"number": MOBILE_3, "require_keypress": False, "delay": 0, "ring": None}]
    assert info["behaviour"] == (f"Calls ring PJSIP/1001, {MOBILE_2}, {MOBILE} (press 1, "
                                 f"after 5 s, for 30 s) and {MOBILE_3}; unanswered calls go "
                                 "to voicemail 1001@default.")


def test_device_update_keeps_position_and_other_settings(office: Cli,
                                                         redis_client: redis.Redis) -> None:
    ok(office, "device", "add", "1001", "0612345678", "--delay", "10")
    ok(office, "device", "add", "1001", "0698765432")
    ok(office, "device", "add", "1001", "+33612345678", "--ring", "20")
    ok(office, "device", "add", "1001", "0698765432")  # no settings given: unchanged
    assert json.loads(redis_client.hget(KEY, "external_devices")) == [
        {"number": MOBILE, "delay": 10, "ring": 20}, MOBILE_2]
    ok(office, "device", "add", "1001", "0612345678", "--delay", "0")
    assert json.loads(redis_client.hget(KEY, "external_devices")) == [
        {"number": MOBILE, "ring": 20}, MOBILE_2]


def test_device_remove_an_object_entry(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "device", "add", "1001", "0612345678", "--delay", "10")
    ok(office, "device", "add", "1001", "0698765432")
    assert ok(office, "device", "remove", "1001", "06 12 34 56 78").out == (
        f"extension 1001: {MOBILE} removed\n")
    assert redis_client.hget(KEY, "external_devices") == f'["{MOBILE_2}"]'


# ---- ext add: externals during calls and the confirmation settings -------------------------

def test_externals_during_calls(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "device", "add", "1001", "0612345678")
    ok(office, "ext", "add", "1001", "--no-externals-during-calls")
    assert redis_client.hget(KEY, "externals_during_calls") == "0"
    info = show(office)
    assert info["externals_during_calls"] is False
    assert info["behaviour"] == (f"Calls ring PJSIP/1001 and {MOBILE} (only the desk phones "
                                 "while one is in use); unanswered calls go to voicemail "
                                 "1001@default.")
    ok(office, "ext", "add", "1001", "--externals-during-calls")
    assert redis_client.hget(KEY, "externals_during_calls") == "1"


def test_confirmation_settings_set_and_reset(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "ext", "add", "1001", "--confirm-tries", "2", "--confirm-timeout", "8",
       "--confirm-prompt", "custom/press-1")
    fields = redis_client.hgetall(KEY)
    assert (fields["confirm_tries"], fields["confirm_timeout"], fields["confirm_prompt"]) == (
        "2", "8", "custom/press-1")
    assert show(office)["confirm"] == {"tries": 2, "timeout": 8, "prompt": "custom/press-1"}
    ok(office, "ext", "add", "1001", "--confirm-timeout", "default")  # the others stay
    fields = redis_client.hgetall(KEY)
    assert "confirm_timeout" not in fields
    assert (fields["confirm_tries"], fields["confirm_prompt"]) == ("2", "custom/press-1")
    ok(office, "ext", "add", "1001", "--confirm-tries", "default", "--confirm-prompt",
       "default")
    assert not {"confirm_tries", "confirm_timeout", "confirm_prompt"} & set(
        redis_client.hgetall(KEY))


def test_new_options_leave_the_others_alone(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "forward", "on", "1001", "0612345678", "--when", "busy")
    ok(office, "device", "add", "1001", "0698765432", "--delay", "3")
    before = redis_client.hgetall(KEY)
    ok(office, "ext", "add", "1001", "--confirm-tries", "4")
    assert redis_client.hgetall(KEY) == {**before, "confirm_tries": "4"}


# ---- ext show: everything, in text ----------------------------------------------------------

def test_ext_show_text_with_every_setting(office: Cli) -> None:
    for argv in (["device", "add", "1001", "0698765432", "--require-keypress", "--delay", "5"],
                 ["device", "add", "1001", "0611223344", "--no-require-keypress", "--ring",
                  "25"],
                 ["forward", "on", "1001", "0612345678", "--when", "busy,noanswer", "--after",
                  "20", "--caller-id", "company"],
                 ["ext", "add", "1001", "--no-externals-during-calls", "--confirm-tries", "2",
                  "--confirm-prompt", "custom/press-1", "--language", "fr_FR"]):
        ok(office, *argv)
    assert ok(office, "ext", "show", "1001").out.splitlines() == [
        "Extension 1001",
        "  devices:          PJSIP/1001",
        f"  external devices: {MOBILE_2} (press 1, after 5 s), {MOBILE_3} (no press 1, "
        "rings 25 s)",
        "  during calls:     external devices stay silent",
        f"  forwarding:       on -> {MOBILE} (when busy,noanswer after 20 s, caller ID "
        "company, keypress not required)",
        "  press 1 prompt:   2 tries, sound custom/press-1",
        "  mailbox:          1001@default",
        f"  DID:              {DID}",
        "  language:         fr_FR (this extension's)",
        f"  Calls ring PJSIP/1001, {MOBILE_2} (press 1, after 5 s) and {MOBILE_3} (for 25 s) "
        f"for 20 s (only the desk phones while one is in use), then {MOBILE} if nobody "
        f"answers or the phones are busy, showing {COMPANY_NUMBER}; unanswered calls go to "
        "voicemail 1001@default.",
    ]


def test_ext_show_hop_target_text(office: Cli) -> None:
    ok(office, "forward", "on", "1001", DID_2, "--when", "noanswer")
    lines = ok(office, "ext", "show", "1001").out.splitlines()
    assert lines[4] == (f"  forwarding:       on -> {DID_2}, extension 1002's rules (when "
                        "noanswer after 20 s, caller ID original, keypress not required)")
    assert lines[-1] == ("  Calls ring PJSIP/1001 for 20 s, then extension 1002's rules if "
                         "nobody answers; unanswered calls go to voicemail 1001@default.")


# ---- refusals: exit 2, one line, nothing written -------------------------------------------

@pytest.mark.parametrize(("argv", "reason"), [
    (["forward", "on", "1001", "0612345678", "--after", "10"], "needs --when with noanswer"),
    (["forward", "on", "1001", "0612345678", "--when", "busy", "--after", "10"],
     "needs --when with noanswer"),
    (["forward", "on", "1001", "0612345678", "--when", "always", "--after", "10"],
     "needs --when with noanswer"),
    (["forward", "on", "1001", "0612345678", "--when", "always,busy"], "can't be combined"),
    (["forward", "on", "1001", "0612345678", "--when", "sometimes"], "argument --when"),
    (["forward", "on", "1001", "0612345678", "--after", "4"], "from 5 to 300"),
    (["forward", "on", "1001", "0612345678", "--caller-id", "fallback"], "invalid choice"),
    (["forward", "on", "1001", "01 42 68 53 01"], "company's own numbers"),  # its own DID
    (["forward", "on", "1001", "01 42 68 53 00"], "company's own numbers"),  # company number
    (["forward", "on", "1002", "01 42 68 53 02"], "company's own numbers"),
    (["forward", "on", "1009", "01 42 68 53 02"], "extension 1009 does not exist"),
    (["device", "add", "1001", "01 42 68 53 01"], "company's own numbers"),
    (["device", "add", "1001", "0612345678", "--delay", "61"], "from 0 to 60"),
    (["device", "add", "1001", "0612345678", "--ring", "121"], "from 5 to 120"),
    (["device", "add", "1001", "0612345678", "--ring", "0"], "from 5 to 120"),
    (["device", "add", "1001", "+44 7911 123456", "--delay", "5"],
     "no international forwarding"),
    (["ext", "add", "1001", "--confirm-tries", "0"], "from 1 to 9"),
    (["ext", "add", "1001", "--confirm-timeout", "60"], "from 1 to 30"),
    (["ext", "add", "1001", "--confirm-prompt", "../../etc/passwd"], "is not a sound name"),
    (["ext", "add", "1001", "--confirm-prompt", "custom/press 1"], "is not a sound name"),
    (["ext", "add", "1003", "--did", "01 42 68 53 02"], "already the DID of extension 1002"),
    (["ext", "add", "1001", "--did", "01 42 68 53 02"], "already the DID of extension 1002"),
], ids=lambda argv: " ".join(argv) if isinstance(argv, list) else None)
def test_refused_settings_change_nothing(argv: list[str], reason: str, office: Cli,
                                         snapshot: Callable) -> None:
    before = snapshot()
    result = office(*argv)
    assert (result.code, result.out) == (2, "")
    assert len(result.err_lines()) == 1, result.err
    assert result.err.startswith("callroute: error: ")
    assert reason in result.err
    assert snapshot() == before


def test_after_refused_when_the_stored_condition_lacks_noanswer(office: Cli,
                                                                snapshot: Callable) -> None:
    ok(office, "forward", "on", "1001", "0612345678", "--when", "offline")
    before = snapshot()
    result = office("forward", "on", "1001", "0612345678", "--after", "30")
    assert (result.code, result.out) == (2, "")
    assert "needs --when with noanswer" in result.err
    assert snapshot() == before


def test_did_taken_in_the_map_alone_is_refused(office: Cli, redis_client: redis.Redis,
                                               snapshot: Callable) -> None:
    """The map is checked inside the write's transaction, not only the extension hashes."""
    redis_client.hset(COMPANY_KEY, "did:+33142685309", "1005")
    before = snapshot()
    result = office("ext", "add", "1001", "--did", "01 42 68 53 09")
    assert (result.code, result.out) == (2, "")
    assert result.err == ("callroute: error: +33142685309 is already the DID of extension "
                          "1005\n")
    assert snapshot() == before


@pytest.mark.parametrize("argv", [["forward", "on", "1001", "0612345678"],
                                  ["device", "add", "1001", "0612345678"]], ids=" ".join)
def test_a_did_that_is_already_its_own_target_is_refused(argv: list[str], office: Cli,
                                                         snapshot: Callable) -> None:
    ok(office, *argv)
    before = snapshot()
    result = office("ext", "add", "1001", "--did", "06 12 34 56 78")
    assert (result.code, result.out) == (2, "")
    assert "calls there would loop" in result.err
    assert snapshot() == before


def test_ext_show_reports_corrupt_new_fields(office: Cli, redis_client: redis.Redis) -> None:
    ok(office, "forward", "on", "1001", "0612345678")
    redis_client.hset(KEY, mapping={"forward_when": "sometimes", "confirm_tries": "99",
                                    "external_devices": '[{"number": "+33698765432", '
                                                        '"delay": "soon"}]'})
    info = show(office)
    assert (info["status"], info["problems"]) == (
        "FALLBACK", "corrupt forward_when; corrupt confirm_tries; corrupt entry in "
                    "external_devices")
    assert (info["forward"]["when"], info["confirm"]["tries"], info["external_devices"]) == (
        "noanswer", None, [])
