"""docker/compose.yml as shipped: real SIPp calls through the stack's Asterisk, agent
and Redis, settings changed with `docker compose run --rm ... callroute` and through the
`web` service's HTTP API.

One stack for the module, so the tests use one extension each and the Redis outage
comes last. What each assertion reads: the SIPp peers' traces, the voicemail spool
and Asterisk's log in the stack's named volumes.
"""

from __future__ import annotations

import secrets

import httpx

from tests.compose.stack import WEB_SERVICE, ComposeStack
from tests.harness.calls import carrier, desk

TARGET = "+33612345678"
MOBILE = "+33698765432"
WEB_TARGET = "+33687654321"  # typed as a person would: "06 87 65 43 21"
CALLER = "+33611111111"  # place_call's default caller
COMPANY = "+33100001000"  # seeded by docker/seed.sh
VOICEMAIL_HOLD_MS = 16000  # the voicemail prompts (~11 s), then a few seconds of message


def test_the_seeding_service_created_the_demo_extensions(stack: ComposeStack):
    listing = stack.cli("ext", "list")
    for ext in ("1001", "1002", "1003"):
        assert ext in listing, listing


def test_asterisk_and_so_its_process_agi_children_run_as_the_asterisk_user(stack):
    # PID 1 of the asterisk container is Asterisk itself (the image's CMD).
    assert stack.compose("exec", "-T", "asterisk", "stat", "-c", "%U", "/proc/1").strip() \
        == "asterisk"


def test_forwarding_off_rings_the_desk_and_the_mobile(stack, call):
    stack.cli("device", "add", "1001", MOBILE)
    result = call("1001", [desk("1001", answer_delay_ms="1500"), carrier("uas_ring_noanswer")])
    assert result.rang("desk 1001"), result.describe()
    assert result.carrier_numbers() == [MOBILE], result.describe()
    assert result.connected_to("desk 1001"), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()


def test_forwarding_on_with_company_caller_id_rings_only_the_carrier(stack, call):
    stack.cli("forward", "on", "1002", TARGET, "--caller-id", "company")
    result = call("1002", [desk("1002"), carrier()])
    assert result.carrier_numbers() == [TARGET], result.describe()
    assert result.caller_id_at("carrier") == COMPANY, result.describe()
    assert not result.rang("desk 1002"), result.describe()
    assert result.connected_to("carrier"), result.describe()


def test_mobile_voicemail_answering_leaves_the_message_in_the_pbx_voicemail(stack, call):
    stack.cli("forward", "on", "1003", TARGET, "--require-keypress")
    result = call("1003", [carrier("uas_answer_silent")], hold_ms=VOICEMAIL_HOLD_MS)
    mobile = result.callees["carrier"]
    assert mobile.answered() and mobile.got_bye(), result.describe()  # leg released
    assert not result.connected_to("carrier"), result.describe()
    assert result.voicemail_left(), result.describe()
    assert CALLER in (result.voicemail_field("callerid") or ""), result.describe()
    message = result.new_voicemail[0]
    assert message.is_relative_to(stack.volume("spool")), message
    assert list(message.parent.glob(f"{message.stem}.*[!t]")), "no audio next to the .txt"


def test_forwarding_turned_on_through_the_web_api_forwards_the_next_call(stack, call):
    # 1001 rang its desk with forwarding off (above); an admin created as documented,
    # with the password on stdin, logs in over HTTP and turns forwarding on.
    password = secrets.token_urlsafe(18)
    stack.cli("user", "add", "ops", "--role", "admin", "--password-stdin",
              service=WEB_SERVICE, stdin=password + "\n")
    with httpx.Client(base_url=stack.web_url, timeout=10) as api:
        login = api.post("/api/v1/tokens", auth=("ops", password))
        assert login.status_code == 201, login.text
        token = login.json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        assert api.get("/api/v1/extensions/1001").json()["forward"]["enabled"] is False
        changed = api.patch("/api/v1/extensions/1001/forwarding",
                            json={"enabled": True, "target": "06 87 65 43 21",
                                  "when": "always"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["forward"]["target"] == WEB_TARGET, changed.text
    result = call("1001", [desk("1001"), carrier()])
    assert result.carrier_numbers() == [WEB_TARGET], result.describe()
    assert not result.rang("desk 1001"), result.describe()
    assert result.connected_to("carrier"), result.describe()
    print(f"\ncall to 1001 after the API change: carrier dialled {result.carrier_numbers()}, "
          f"desk rang: {result.rang('desk 1001')}")
    logs = stack.compose("logs", WEB_SERVICE)
    assert "PATCH /api/v1/extensions/1001/forwarding" in logs, logs  # the access log
    assert password not in logs and token not in logs


def test_redis_stopped_still_rings_the_desk(stack, call):
    # Last in the module: Redis stays down.
    stack.cli("forward", "on", "1001", TARGET)
    stack.stop_service("redis")
    result = call("1001", [desk("1001"), carrier()])
    assert result.rang("desk 1001") and result.callees["desk 1001"].answered(), \
        result.describe()
    assert not result.rang("carrier"), result.describe()
