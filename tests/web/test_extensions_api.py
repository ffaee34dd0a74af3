"""Every endpoint as an admin, over HTTP: reads, writes, ETags, refusals and the audit."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from tests.web.conftest import ADMIN, People, error_codes, error_fields

EXT = "/api/v1/extensions"
MOBILE, MOBILE_TYPED = "+33612345678", "06 12 34 56 78"


def audit(redis_client: redis.Redis) -> list[dict[str, str]]:
    """The audit stream, oldest first."""
    return [fields for _, fields in redis_client.xrange("callroute:audit")]


def test_list_and_get(api: httpx.Client, people: People, extensions: None) -> None:
    listed = api.get(EXT, headers=people.admin)
    assert listed.status_code == 200
    assert [view["extension"] for view in listed.json()] == ["1001", "1002"]
    one = api.get(f"{EXT}/1001", headers=people.admin)
    assert one.status_code == 200
    view = one.json()
    assert view == listed.json()[0]
    assert one.headers["ETag"] == f'"{view["version"]}"'
    assert {"behaviour", "corrupt", "forward", "external_devices", "status"} <= set(view)
    assert view["behaviour"].startswith("Calls ring")


def test_get_unknown_is_404(api: httpx.Client, people: People) -> None:
    resp = api.get(f"{EXT}/1009", headers=people.admin)
    assert resp.status_code == 404
    assert error_codes(resp) == ["not_found"]


def test_create_patch_delete(api: httpx.Client, people: People, extensions: None,
                             redis_client: redis.Redis) -> None:
    created = api.post(EXT, headers=people.admin, json={
        "extension": "1003", "devices": ["PJSIP/1003"], "mailbox": "1003@default",
        "confirm": {"tries": 2}})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{EXT}/1003"
    assert created.json()["confirm"]["tries"] == 2
    again = api.post(EXT, headers=people.admin, json={"extension": "1003"})
    assert again.status_code == 409 and error_codes(again) == ["exists"]
    patched = api.patch(f"{EXT}/1003", headers=people.admin, json={
        "externals_during_calls": False, "confirm": {"tries": None}, "did": "01 42 68 53 03"})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["externals_during_calls"], body["confirm"]["tries"], body["did"]) == (
        False, None, "+33142685303")
    assert patched.headers["ETag"] == f'"{body["version"]}"'
    assert api.delete(f"{EXT}/1003", headers=people.admin).status_code == 204
    assert api.get(f"{EXT}/1003", headers=people.admin).status_code == 404
    actions = [(r["ext"], r["action"], r["actor"], r["source"]) for r in audit(redis_client)
               if r["ext"] == "1003"]
    assert [a[1] for a in actions] == ["ext.put", "ext.update", "ext.remove"]
    assert {a[2:] for a in actions} == {(f"api:{ADMIN}", "127.0.0.1")}


def test_forwarding_patch_subset_and_off_keeps_target(api: httpx.Client, people: People,
                                                      extensions: None,
                                                      redis_client: redis.Redis) -> None:
    on = api.patch(f"{EXT}/1001/forwarding", headers=people.admin, json={
        "enabled": True, "target": MOBILE_TYPED, "when": ["busy", "noanswer"], "after": 15,
        "caller_id": "company", "require_keypress": True})
    assert on.status_code == 200, on.text
    assert on.json()["forward"] == {
        "enabled": True, "target": MOBILE, "target_extension": "", "when": "busy,noanswer",
        "after": 15, "caller_id": "company", "require_keypress": True}
    off = api.patch(f"{EXT}/1001/forwarding", headers=people.admin, json={"enabled": False})
    assert off.json()["forward"] | {"enabled": True} == on.json()["forward"]
    always = api.patch(f"{EXT}/1001/forwarding", headers=people.admin, json={"when": "always"})
    assert always.json()["forward"]["when"] == "always"
    record = audit(redis_client)[-3]
    assert record["action"] == "forwarding.set" and record["actor"] == f"api:{ADMIN}"
    assert json.loads(record["changes"])["forward_target"] == [None, MOBILE]


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"enabled": "1"}, "invalid_type", "enabled"),
    ({"enabled": 1}, "invalid_type", "enabled"),
    ({"after": "20"}, "invalid_type", "after"),
    ({"after": 20.0}, "invalid_type", "after"),
    ({"enabled": None}, "invalid_type", "enabled"),
    ({"target": 612345678}, "invalid_type", "target"),
    ({"colour": "red"}, "unknown_field", "colour"),
    ({"enabled": True}, "no_target", "target"),
    ({"target": "+44 20 7946 0000"}, "international", "target"),
    ({"target": "08 99 12 34 56"}, "premium_rate", "target"),
    ({"target": "112"}, "emergency", "target"),
    ({"target": "01 40 00 00 00"}, "own_number", "target"),
    ({"target": "hello"}, "invalid_number", "target"),
    ({"when": "sometimes"}, "invalid_choice", "when"),
    ({"when": ["busy", "never"]}, "invalid_choice", "when"),
    ({"caller_id": "someone"}, "invalid_choice", "caller_id"),
    ({"after": 99999}, "out_of_range", "after"),
], ids=lambda value: json.dumps(value) if isinstance(value, dict) else None)
def test_forwarding_refusals_are_422_and_write_nothing(
        api: httpx.Client, people: People, extensions: None, snapshot, body: dict,
        code: str, field: str) -> None:
    before = snapshot()
    resp = api.patch(f"{EXT}/1001/forwarding", headers=people.admin, json=body)
    assert resp.status_code == 422, resp.text
    assert code in error_codes(resp)
    assert field in error_fields(resp)
    assert snapshot() == before


def test_if_match_stale_is_412_and_current_succeeds(api: httpx.Client, people: People,
                                                    extensions: None, snapshot) -> None:
    etag = api.get(f"{EXT}/1001", headers=people.admin).headers["ETag"]
    first = api.patch(f"{EXT}/1001/forwarding", headers={**people.admin, "If-Match": etag},
                      json={"target": MOBILE})
    assert first.status_code == 200
    before = snapshot()
    for method, path, body in (("PATCH", "/forwarding", {"enabled": True}),
                               ("PATCH", "", {"mailbox": "9@default"}),
                               ("POST", "/devices", {"number": "0698765432"}),
                               ("DELETE", "", None)):
        resp = api.request(method, f"{EXT}/1001{path}", json=body,
                           headers={**people.admin, "If-Match": etag})
        assert resp.status_code == 412, (path, resp.text)
        assert error_codes(resp) == ["stale"]
    assert snapshot() == before
    fresh = first.headers["ETag"]
    assert api.patch(f"{EXT}/1001/forwarding", headers={**people.admin, "If-Match": fresh},
                     json={"enabled": True}).status_code == 200


def test_devices_add_change_remove(api: httpx.Client, people: People, extensions: None,
                                   redis_client: redis.Redis) -> None:
    added = api.post(f"{EXT}/1001/devices", headers=people.admin,
                     json={"number": MOBILE_TYPED, "delay": 5})
    assert added.status_code == 201, added.text
    assert added.json() == {"number": MOBILE, "require_keypress": None, "delay": 5,
                            "ring": None}
    changed = api.patch(f"{EXT}/1001/devices/{MOBILE}", headers=people.admin,
                        json={"require_keypress": True, "ring": 30})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"number": MOBILE, "require_keypress": True, "delay": 5,
                              "ring": 30}
    assert api.patch(f"{EXT}/1001/devices/0698765432", headers=people.admin,
                     json={"delay": 1}).json()["errors"][0]["code"] == "not_a_device"
    assert api.delete(f"{EXT}/1001/devices/0612345678",
                      headers=people.admin).status_code == 204
    view = api.get(f"{EXT}/1001", headers=people.admin).json()
    assert view["external_devices"] == []
    actions = [r["action"] for r in audit(redis_client) if r["actor"] == f"api:{ADMIN}"]
    assert actions == ["device.put", "device.update", "device.remove"]


def test_company_get_and_patch(api: httpx.Client, people: People, extensions: None,
                               redis_client: redis.Redis) -> None:
    assert api.get("/api/v1/company", headers=people.admin).json() == {
        "caller_id": "+33140000000", "name": "Acme", "language": ""}
    resp = api.patch("/api/v1/company", headers=people.admin,
                     json={"caller_id": "01 42 68 53 00", "name": "Acme SARL",
                           "language": "fr"})
    assert resp.json() == {"caller_id": "+33142685300", "name": "Acme SARL", "language": "fr"}
    assert audit(redis_client)[-1]["action"] == "company.set"
    bad = api.patch("/api/v1/company", headers=people.admin, json={"caller_id": "112"})
    assert bad.status_code == 422
    bad = api.patch("/api/v1/company", headers=people.admin, json={"language": "fr;Dial(x)"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["code"] == "invalid_language"
    assert api.get("/api/v1/company", headers=people.admin).json()["language"] == "fr"


def test_extension_language_is_the_admins(api: httpx.Client, people: People, extensions: None,
                                          redis_client: redis.Redis) -> None:
    resp = api.patch(f"{EXT}/1001", headers=people.admin, json={"language": "en"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["language"] == {"own": "en", "used": "en"}
    assert redis_client.hget("callroute:ext:1001", "language") == "en"
    assert api.patch(f"{EXT}/1001", headers=people.admin,
                     json={"language": None}).json()["language"]["own"] is None


def test_audit_reads_newest_first_with_filters(api: httpx.Client, people: People,
                                               extensions: None, run_cli) -> None:
    assert run_cli("forward", "on", "1002", MOBILE).code == 0
    api.patch(f"{EXT}/1001/forwarding", headers=people.admin, json={"target": MOBILE})
    records = api.get("/api/v1/audit", headers=people.admin).json()
    assert records[0]["ext"] == "1001" and records[0]["actor"] == f"api:{ADMIN}"
    assert records[1]["ext"] == "1002" and records[1]["actor"].startswith("cli:")
    only = api.get("/api/v1/audit", params={"ext": "1002", "limit": 1},
                   headers=people.admin).json()
    assert [(r["ext"], r["action"]) for r in only] == [("1002", "forwarding.set")]
    assert api.get("/api/v1/audit", params={"limit": 0},
                   headers=people.admin).status_code == 422
