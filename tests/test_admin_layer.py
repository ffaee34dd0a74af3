"""The admin layer called directly, against a real redis-server: refusals as values
(code, field), versions (if_match), and the audit trail every write leaves.

Every refusal is checked against a full DUMP: nothing written at all, and so no
audit record either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from agi import admin
from agi import variables as v
from agi.admin import (
    UNSET,
    Actor,
    DeviceChanges,
    ExtensionChanges,
    ForwardingChanges,
    NotFound,
    Refused,
    Stale,
)
from agi.config import Config, load
from agi.features import run as feature
from agi.store import AdminStore

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.redis

AUDIT = "callroute:audit"
KEY = "callroute:ext:1001"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
ADMIN = Actor("api:alice", "192.0.2.7")

Cli = Callable[..., "CliResult"]


@pytest.fixture
def config(cli_env: dict[str, str]) -> Config:
    return load(cli_env)


@pytest.fixture
def store(config: Config, redis_client: redis.Redis) -> Iterator[AdminStore]:
    admin_store = AdminStore(config)
    yield admin_store
    admin_store.close()


@pytest.fixture
def office(store: AdminStore, config: Config, redis_client: redis.Redis) -> AdminStore:
    """A company number; 1001 (DID, desk phone, one external device); 1002 (DID)."""
    admin.set_company(store, config, caller_id="01 42 68 53 00", name="Acme", actor=ADMIN)
    admin.put_extension(store, config, "1001", ExtensionChanges(did="01 42 68 53 01"), ADMIN)
    admin.put_extension(store, config, "1002", ExtensionChanges(did="01 42 68 53 02"), ADMIN)
    admin.put_device(store, config, "1001", "06 98 76 54 32", DeviceChanges(), ADMIN)
    redis_client.delete(AUDIT)
    return store


def records(client: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in client.xrange(AUDIT)]


# ---- refusals: (code, field), nothing written --------------------------------------------

W = Callable[[AdminStore, Config], object]
REFUSALS: list[tuple[str, W, str, str]] = [
    ("bad-extension", lambda s, c: admin.put_extension(s, c, "10 01", ExtensionChanges(),
                                                       ADMIN), "invalid_extension",
     "extension"),
    ("unknown-extension", lambda s, c: admin.update_extension(s, c, "1009", ExtensionChanges(),
                                                              ADMIN), "not_found", "extension"),
    ("show-unknown", lambda s, c: admin.get_extension(s, c, "1009"), "not_found", "extension"),
    ("international", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target="+44 7911 123456"), ADMIN),
     "international", "forward_target"),
    ("premium", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target="08 99 12 34 56"), ADMIN),
     "premium_rate", "forward_target"),
    ("emergency", lambda s, c: admin.put_device(s, c, "1001", "112", DeviceChanges(), ADMIN),
     "emergency", "external_devices"),
    ("short-code", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target="3615"), ADMIN),
     "short_code", "forward_target"),
    ("not-a-number", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target="0612&0899"), ADMIN),
     "invalid_number", "forward_target"),
    ("own-did", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target="01 42 68 53 01"), ADMIN),
     "own_number", "forward_target"),
    ("did-taken", lambda s, c: admin.put_extension(
        s, c, "1003", ExtensionChanges(did="01 42 68 53 02"), ADMIN), "did_taken", "did"),
    ("did-loop", lambda s, c: admin.put_extension(
        s, c, "1001", ExtensionChanges(did="06 98 76 54 32"), ADMIN), "did_loop", "did"),
    ("device", lambda s, c: admin.put_extension(
        s, c, "1001", ExtensionChanges(devices=["PJSIP/1&PJSIP/2"]), ADMIN),
     "invalid_device", "devices"),
    ("mailbox", lambda s, c: admin.put_extension(
        s, c, "1001", ExtensionChanges(mailbox="x@y@z"), ADMIN), "invalid_mailbox", "mailbox"),
    ("sound", lambda s, c: admin.put_extension(
        s, c, "1001", ExtensionChanges(confirm_prompt="../x"), ADMIN),
     "invalid_sound", "confirm_prompt"),
    ("tries", lambda s, c: admin.put_extension(
        s, c, "1001", ExtensionChanges(confirm_tries=10), ADMIN), "out_of_range",
     "confirm_tries"),
    ("after", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target=MOBILE, after=301), ADMIN),
     "out_of_range", "forward_after"),
    ("delay", lambda s, c: admin.put_device(s, c, "1001", MOBILE, DeviceChanges(delay=61),
                                            ADMIN), "out_of_range", "delay"),
    ("when", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target=MOBILE, when=("always", "busy")),
        ADMIN), "invalid_choice", "forward_when"),
    ("caller-id", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target=MOBILE, caller_id="boss"), ADMIN),
     "invalid_choice", "forward_caller_id"),
    ("no-target", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True), ADMIN), "no_target", "forward_target"),
    ("toggle-no-target", lambda s, c: admin.toggle_forwarding(s, c, "1001", ADMIN),
     "no_target", "forward_target"),
    ("after-needs-noanswer", lambda s, c: admin.set_forwarding(
        s, c, "1001", ForwardingChanges(enabled=True, target=MOBILE, when=("busy",),
                                        after=30), ADMIN),
     "after_needs_noanswer", "forward_after"),
    ("not-a-device", lambda s, c: admin.update_device(s, c, "1001", MOBILE,
                                                      DeviceChanges(delay=5), ADMIN),
     "not_a_device", "external_devices"),
    ("remove-not-a-device", lambda s, c: admin.remove_device(s, c, "1001", MOBILE, ADMIN),
     "not_a_device", "external_devices"),
    ("name", lambda s, c: admin.set_company(s, c, name="Evil\nCorp", actor=ADMIN),
     "invalid_name", "name"),
    ("company-number", lambda s, c: admin.set_company(s, c, caller_id="+44 20 7946 0000",
                                                      actor=ADMIN),
     "international", "caller_id"),
    ("stale", lambda s, c: admin.update_extension(s, c, "1001", ExtensionChanges(),
                                                  ADMIN, if_match="0" * 16), "stale",
     "version"),
]


@pytest.mark.parametrize(("write", "code", "field"), [row[1:] for row in REFUSALS],
                         ids=[row[0] for row in REFUSALS])
def test_refusal_is_a_value_and_nothing_is_written(
        write: W, code: str, field: str, office: AdminStore, config: Config,
        snapshot: Callable[[], dict]) -> None:
    before = snapshot()
    with pytest.raises(Refused) as info:
        write(office, config)
    assert [(r.code, r.field) for r in info.value.refusals] == [(code, field)]
    assert str(info.value) == info.value.refusals[0].message
    assert "\n" not in str(info.value)
    assert snapshot() == before  # no change and no audit record


def test_not_found_and_stale_are_their_own_types(office: AdminStore, config: Config) -> None:
    with pytest.raises(NotFound):
        admin.remove_extension(office, config, "1009", ADMIN)
    with pytest.raises(Stale):
        admin.remove_extension(office, config, "1001", ADMIN, if_match="stale")


# ---- versions ------------------------------------------------------------------------------

def test_if_match_the_current_version_writes(office: AdminStore, config: Config,
                                             redis_client: redis.Redis) -> None:
    first = admin.get_extension(office, config, "1001")
    changed = admin.update_extension(office, config, "1001",
                                     ExtensionChanges(confirm_tries=3), ADMIN,
                                     if_match=first.version)
    assert changed.confirm.tries == 3
    assert changed.version != first.version
    assert changed.version == admin.get_extension(office, config, "1001").version
    with pytest.raises(Stale):  # the version read first is now stale
        admin.set_forwarding(office, config, "1001", ForwardingChanges(enabled=False), ADMIN,
                             if_match=first.version)
    assert redis_client.hget(KEY, "forward_enabled") == "0"


def test_put_says_whether_it_created(store: AdminStore, config: Config) -> None:
    assert admin.put_extension(store, config, "1001", ExtensionChanges(), ADMIN).created
    assert not admin.put_extension(store, config, "1001", ExtensionChanges(), ADMIN).created


def test_unset_keeps_and_none_removes(office: AdminStore, config: Config,
                                      redis_client: redis.Redis) -> None:
    admin.put_extension(office, config, "1001", ExtensionChanges(confirm_tries=2,
                                                                 confirm_prompt="a/b"), ADMIN)
    admin.put_extension(office, config, "1001", ExtensionChanges(confirm_tries=None,
                                                                 confirm_prompt=UNSET), ADMIN)
    fields = redis_client.hgetall(KEY)
    assert "confirm_tries" not in fields
    assert fields["confirm_prompt"] == "a/b"
    admin.put_extension(office, config, "1001", ExtensionChanges(did=None), ADMIN)
    assert "did" not in redis_client.hgetall(KEY)
    assert "did:+33142685301" not in redis_client.hgetall("callroute:company")


def test_forwarding_off_keeps_the_target_and_on_uses_it(office: AdminStore, config: Config,
                                                        redis_client: redis.Redis) -> None:
    admin.set_forwarding(office, config, "1001",
                         ForwardingChanges(enabled=True, target="06 12 34 56 78"), ADMIN)
    view = admin.set_forwarding(office, config, "1001", ForwardingChanges(enabled=False),
                                ADMIN)
    assert (view.forward.enabled, view.forward.target) == (False, MOBILE)
    view = admin.set_forwarding(office, config, "1001", ForwardingChanges(enabled=True), ADMIN)
    assert (view.forward.enabled, view.forward.target) == (True, MOBILE)
    view = admin.set_forwarding(office, config, "1001",
                                ForwardingChanges(when=("noanswer",), after=40), ADMIN)
    assert (view.forward.when, view.forward.after) == ("noanswer", 40)


# ---- the audit trail -----------------------------------------------------------------------

def test_every_cli_action_leaves_one_record(run_cli: Cli, redis_client: redis.Redis) -> None:
    import getpass

    actions = [(["company", "set", "01 42 68 53 00", "--name", "Acme"], "company.set", ""),
               (["ext", "add", "1001"], "ext.put", "1001"),
               (["ext", "add", "1002"], "ext.put", "1002"),
               (["forward", "on", "1001", "06 12 34 56 78"], "forwarding.set", "1001"),
               (["forward", "off", "1001"], "forwarding.set", "1001"),
               (["device", "add", "1001", "06 98 76 54 32"], "device.put", "1001"),
               (["device", "remove", "1001", "06 98 76 54 32"], "device.remove", "1001"),
               (["ext", "remove", "1002"], "ext.remove", "1002")]
    for argv, _, _ in actions:
        assert run_cli(*argv).code == 0, argv
    got = records(redis_client)
    assert [(r["action"], r["ext"]) for r in got] == [(a, e) for _, a, e in actions]
    assert {(r["actor"], r["source"]) for r in got} == {(f"cli:{getpass.getuser()}", "")}
    assert all(r["at"].endswith("+00:00") for r in got)
    changes = [json.loads(r["changes"]) for r in got]
    assert changes[0] == {"caller_id": [None, "+33142685300"], "name": [None, "Acme"]}
    assert changes[3] == {"forward_enabled": ["0", "1"], "forward_target": [None, MOBILE],
                          "forward_when": [None, "always"],
                          "forward_caller_id": [None, "original"],
                          "forward_require_keypress": [None, "0"]}
    assert changes[4] == {"forward_enabled": ["1", "0"]}
    assert changes[7] == {"devices": ['["PJSIP/1002"]', None],
                          "mailbox": ["1002@default", None], "forward_enabled": ["0", None]}


def test_feature_codes_leave_a_record_as_the_phone(run_cli: Cli, redis_client: redis.Redis,
                                                   config: Config) -> None:
    assert run_cli("ext", "add", "1001").code == 0
    redis_client.delete(AUDIT)
    assert feature(config, "on", "1001", "0612345678") == (v.FEATURE_ON, MOBILE, "")
    assert feature(config, "toggle", "1001", "")[0] == v.FEATURE_OFF
    assert feature(config, "off", "1001", "")[0] == v.FEATURE_OFF
    assert feature(config, "on", "1001", "0044791112345")[0] == v.FEATURE_REFUSED
    assert [(r["actor"], r["action"], r["ext"]) for r in records(redis_client)] == [
        ("phone:1001", "forwarding.set", "1001"), ("phone:1001", "forwarding.toggle", "1001"),
        ("phone:1001", "forwarding.set", "1001")]


def test_a_refused_cli_command_leaves_no_record(run_cli: Cli,
                                                redis_client: redis.Redis) -> None:
    assert run_cli("ext", "add", "1001").code == 0
    count = redis_client.xlen(AUDIT)
    for argv in (["forward", "on", "1001", "+44 7911 123456"], ["ext", "remove", "1009"],
                 ["device", "remove", "1001", "0612345678"], ["company", "set", "112"]):
        assert run_cli(*argv).code == 2, argv
    assert redis_client.xlen(AUDIT) == count


def test_the_trail_is_capped(store: AdminStore, redis_client: redis.Redis,
                             cli_env: dict[str, str]) -> None:
    capped = load({**cli_env, "CALLROUTE_AUDIT_MAX": "100"})
    capped_store = AdminStore(capped)
    # Redis trims whole stream nodes under MAXLEN ~: small nodes make the cap tight.
    old = redis_client.config_get("stream-node-max-entries")["stream-node-max-entries"]
    redis_client.config_set("stream-node-max-entries", 10)
    try:
        for i in range(250):
            admin.put_extension(capped_store, capped, "1001",
                                ExtensionChanges(confirm_tries=1 + i % 9), ADMIN)
    finally:
        redis_client.config_set("stream-node-max-entries", old)
        capped_store.close()
    assert 100 <= redis_client.xlen(AUDIT) <= 110


def test_callroute_audit_reads_newest_first(run_cli: Cli) -> None:
    for argv in (["ext", "add", "1001"], ["ext", "add", "1002"],
                 ["forward", "on", "1001", "0612345678"]):
        assert run_cli(*argv).code == 0
    shown = json.loads(run_cli("audit", "--json").out)
    assert [(r["action"], r["ext"]) for r in shown] == [
        ("forwarding.set", "1001"), ("ext.put", "1002"), ("ext.put", "1001")]
    only = json.loads(run_cli("audit", "--ext", "1001", "--limit", "1", "--json").out)
    assert [(r["action"], r["ext"]) for r in only] == [("forwarding.set", "1001")]
    lines = run_cli("audit", "--ext", "1002").out.splitlines()
    assert len(lines) == 1
    assert " ext.put  ext 1002  devices: - -> " in lines[0]
    assert run_cli("audit", "--ext", "1009").out == "no changes recorded\n"
