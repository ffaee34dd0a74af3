"""Role boundaries: what an employee (role "user") may and may not do, over HTTP."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.web.conftest import USER, People, error_codes

EXT = "/api/v1/extensions"
MOBILE = "+33612345678"

# Every endpoint that names an extension, as (method, path, body), for extension 1002.
ON_OTHER_EXTENSION = [
    ("GET", f"{EXT}/1002", None),
    ("PATCH", f"{EXT}/1002", {"mailbox": "1@default"}),
    ("DELETE", f"{EXT}/1002", None),
    ("PATCH", f"{EXT}/1002/forwarding", {"enabled": False}),
    ("PATCH", f"{EXT}/1002/forwarding", {"enabled": "garbage", "bogus": 1}),
    ("POST", f"{EXT}/1002/devices", {"number": "0612345678"}),
    ("PATCH", f"{EXT}/1002/devices/{MOBILE}", {"delay": 1}),
    ("DELETE", f"{EXT}/1002/devices/{MOBILE}", None),
    ("GET", "/api/v1/audit?ext=1002", None),
]
ADMIN_ONLY = [
    ("POST", EXT, {"extension": "1003"}),
    ("PATCH", f"{EXT}/1001", {"mailbox": "1@default"}),
    ("PATCH", f"{EXT}/1001", {"devices": ["PJSIP/9999"]}),
    ("PATCH", f"{EXT}/1001", {"language": "en"}),
    ("PATCH", "/api/v1/company", {"language": "en"}),
    ("DELETE", f"{EXT}/1001", None),
    ("GET", "/api/v1/company", None),
    ("PATCH", "/api/v1/company", {"name": "Evil"}),
    ("PATCH", f"{EXT}/1001/forwarding", {"caller_id": "company"}),
    ("PATCH", f"{EXT}/1001/forwarding", {"enabled": True, "target": MOBILE,
                                         "caller_id": "original"}),
]


def test_me(api: httpx.Client, people: People) -> None:
    assert api.get("/api/v1/me", headers=people.user).json() == {
        "username": USER, "role": "user", "extensions": ["1001"]}


def test_user_lists_only_own_extensions(api: httpx.Client, people: People,
                                        extensions: None) -> None:
    listed = api.get(EXT, headers=people.user).json()
    assert [view["extension"] for view in listed] == ["1001"]
    assert api.get(f"{EXT}/1001", headers=people.user).status_code == 200


def test_user_sets_own_forwarding(api: httpx.Client, people: People, extensions: None,
                                  redis_client: redis.Redis) -> None:
    resp = api.patch(f"{EXT}/1001/forwarding", headers=people.user, json={
        "enabled": True, "target": "06 12 34 56 78", "when": ["noanswer"], "after": 10,
        "require_keypress": True})
    assert resp.status_code == 200, resp.text
    forward = resp.json()["forward"]
    assert (forward["enabled"], forward["target"], forward["when"], forward["after"]) == (
        True, MOBILE, "noanswer", 10)
    record = redis_client.xrevrange("callroute:audit", count=1)[0][1]
    assert (record["actor"], record["ext"]) == (f"api:{USER}", "1001")


def test_user_manages_own_external_devices(api: httpx.Client, people: People,
                                           extensions: None) -> None:
    assert api.post(f"{EXT}/1001/devices", headers=people.user,
                    json={"number": "0612345678"}).status_code == 201
    assert api.patch(f"{EXT}/1001/devices/{MOBILE}", headers=people.user,
                     json={"require_keypress": True}).status_code == 200
    assert api.delete(f"{EXT}/1001/devices/{MOBILE}", headers=people.user).status_code == 204


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY,
                         ids=[f"{m} {p} {sorted(b or {})}" for m, p, b in ADMIN_ONLY])
def test_admin_only_is_403_and_writes_nothing(api: httpx.Client, people: People,
                                              extensions: None, snapshot, method: str,
                                              path: str, body: dict | None) -> None:
    before = snapshot()
    resp = api.request(method, path, json=body, headers=people.user)
    assert resp.status_code == 403, resp.text
    assert error_codes(resp) == ["admin_only"]
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), ON_OTHER_EXTENSION,
                         ids=[f"{m} {p}" for m, p, _ in ON_OTHER_EXTENSION])
@pytest.mark.parametrize("exists", [True, False], ids=["exists", "absent"])
def test_another_extension_is_403_whether_or_not_it_exists(
        api: httpx.Client, people: People, extensions: None, snapshot, redis_client,
        method: str, path: str, body: dict | None, exists: bool) -> None:
    if not exists:
        redis_client.delete("callroute:ext:1002")
        redis_client.srem("callroute:extensions", "1002")
    before = snapshot()
    resp = api.request(method, path, json=body, headers=people.user)
    assert resp.status_code == 403, resp.text
    assert error_codes(resp) in (["not_yours"], ["admin_only"])
    assert "1002" not in resp.json()["errors"][0]["message"] or exists
    assert snapshot() == before


def test_user_audit_shows_only_own_extensions(api: httpx.Client, people: People,
                                              extensions: None) -> None:
    api.patch(f"{EXT}/1002/forwarding", headers=people.admin, json={"target": MOBILE})
    api.patch(f"{EXT}/1001/forwarding", headers=people.user, json={"target": MOBILE})
    mine = api.get("/api/v1/audit", headers=people.user).json()
    assert mine and {record["ext"] for record in mine} == {"1001"}
    assert api.get("/api/v1/audit", headers=people.admin).json()[1]["ext"] == "1002"
    assert api.get("/api/v1/audit", params={"ext": "1001"},
                   headers=people.user).status_code == 200
