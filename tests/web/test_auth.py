"""Logging in, bearer tokens, expiry, revocation and the brute-force guard, over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from agi.accounts import LOCKOUT_S, Accounts
from tests.harness.web import WebServer
from tests.web.conftest import ADMIN, PASSWORD, USER, People, bearer, error_codes


def login(api: httpx.Client, name: str, password: str = PASSWORD,
          address: str | None = None) -> httpx.Response:
    """POST /api/v1/tokens, from another loopback address (127.0.0.x) if given."""
    if address is None:
        return api.post("/api/v1/tokens", auth=(name, password))
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=api.base_url, transport=transport, timeout=10) as client:
        return client.post("/api/v1/tokens", auth=(name, password))


def test_login_returns_a_token_for_12_hours(api: httpx.Client, people: People) -> None:
    resp = login(api, USER)
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"token", "expires"}
    assert len(body["token"]) >= 22  # >= 128 bits, URL-safe base64
    expires = datetime.fromisoformat(body["expires"].replace("Z", "+00:00"))
    assert abs(expires - datetime.now(UTC) - timedelta(hours=12)) < timedelta(minutes=1)
    me = api.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.json() == {"username": USER, "role": "user", "extensions": ["1001"]}


def test_tokens_are_stored_hashed(api: httpx.Client, people: People,
                                  redis_client: redis.Redis) -> None:
    token = login(api, USER).json()["token"]
    dump = [(key, redis_client.type(key)) for key in redis_client.scan_iter("*")]
    assert not any(token in key for key, _ in dump)
    for key, kind in dump:
        if kind == "hash":
            assert token not in str(redis_client.hgetall(key))
            assert PASSWORD not in str(redis_client.hgetall(key))
    assert redis_client.hget(f"callroute:user:{USER}", "password").startswith("$argon2id$")


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nonsense-token-xxxxxxxxxxx"},
    {"Authorization": "Basic ZXZlOmNvcnJlY3QtaG9yc2UtYmF0dGVyeQ=="},
    {"Authorization": "Bearer " + "A" * 5000}], ids=["none", "empty", "unknown", "basic",
                                                      "huge"])
def test_missing_or_invalid_token_is_401(api: httpx.Client, people: People,
                                         headers: dict[str, str]) -> None:
    resp = api.get("/api/v1/me", headers=headers)
    assert resp.status_code == 401
    assert error_codes(resp) == ["unauthorized"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_password_and_unknown_user_answer_the_same(api: httpx.Client,
                                                         people: People) -> None:
    """Same status, same body, and about the same time (both verify one argon2 hash)."""
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    bodies = set()
    for _ in range(2):
        for kind, name in (("wrong", USER), ("unknown", "nobody")):
            start = time.perf_counter()
            resp = login(api, name, "not-the-password")
            timings[kind].append(time.perf_counter() - start)
            assert resp.status_code == 401
            bodies.add(resp.text)
    assert len(bodies) == 1
    wrong, unknown = min(timings["wrong"]), min(timings["unknown"])
    assert wrong > 0.005 and unknown > 0.005, timings  # argon2 really ran for both
    assert 0.5 < wrong / unknown < 2.0, timings


@pytest.mark.parametrize("auth", ["Basic !!!", "Basic " + "eA==", "Digest x"])
def test_malformed_basic_credentials_are_401(api: httpx.Client, auth: str) -> None:
    resp = api.post("/api/v1/tokens", headers={"Authorization": auth})
    assert resp.status_code == 401
    assert error_codes(resp) == ["unauthorized"]


def test_five_failures_for_a_user_lock_it_for_15_minutes(api: httpx.Client,
                                                         people: People) -> None:
    for _ in range(5):
        assert login(api, USER, "wrong-password-x").status_code == 401
    locked = login(api, USER)  # even the right password
    assert locked.status_code == 429
    assert error_codes(locked) == ["too_many_attempts"]
    assert LOCKOUT_S - 60 <= int(locked.headers["Retry-After"]) <= LOCKOUT_S
    assert "token" not in locked.text


def test_five_failures_from_one_address_lock_every_name(api: httpx.Client,
                                                        people: People) -> None:
    for number in range(5):
        assert login(api, f"guess{number}", "wrong-password-x").status_code == 401
    resp = login(api, ADMIN)
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0


def test_a_success_clears_the_user_s_failures(api: httpx.Client, people: People) -> None:
    """...but not the address's: each attempt below comes from its own address."""
    for n in range(3):
        login(api, USER, "wrong-password-x", address=f"127.0.0.{10 + n}")
    assert login(api, USER, address="127.0.0.20").status_code == 201
    for n in range(4):
        assert login(api, USER, "wrong-password-x",
                     address=f"127.0.0.{30 + n}").status_code == 401
    assert login(api, USER, address="127.0.0.40").status_code == 201


def test_the_address_lock_does_not_lock_other_addresses(api: httpx.Client,
                                                        people: People) -> None:
    for n in range(5):
        login(api, f"guess{n}", "wrong-password-x", address="127.0.0.50")
    assert login(api, USER, address="127.0.0.50").status_code == 429
    assert login(api, USER, address="127.0.0.51").status_code == 201


def test_expired_token_is_401(api: httpx.Client, people: People, accounts: Accounts) -> None:
    token, _ = accounts.issue(USER, timedelta(seconds=1))
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 200
    time.sleep(2.1)
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_delete_current_token_revokes_only_that_one(api: httpx.Client, people: People) -> None:
    first, second = (login(api, USER).json()["token"] for _ in range(2))
    assert api.delete("/api/v1/tokens/current", headers=bearer(first)).status_code == 204
    assert api.get("/api/v1/me", headers=bearer(first)).status_code == 401
    assert api.get("/api/v1/me", headers=bearer(second)).status_code == 200


def test_removing_a_user_revokes_its_tokens(api: httpx.Client, people: People,
                                            run_cli) -> None:
    assert api.get("/api/v1/me", headers=people.user).status_code == 200
    assert run_cli("user", "remove", USER).code == 0
    assert api.get("/api/v1/me", headers=people.user).status_code == 401
    assert login(api, USER).status_code == 401


def test_cli_token_works_and_cli_revoke_ends_it(api: httpx.Client, people: People,
                                                run_cli) -> None:
    created = run_cli("token", "create", USER, "--expires", "1")
    assert created.code == 0
    token = created.out.strip()
    assert api.get("/api/v1/me", headers=bearer(token)).json()["username"] == USER
    assert run_cli("token", "revoke", "--all", USER).code == 0
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert api.get("/api/v1/me", headers=people.user).status_code == 401


def test_role_change_applies_at_the_next_request(api: httpx.Client, people: People,
                                                 redis_client: redis.Redis) -> None:
    redis_client.hset(f"callroute:user:{USER}", "extensions", '["1002"]')
    assert api.get("/api/v1/me", headers=people.user).json()["extensions"] == ["1002"]


def test_no_password_or_token_in_the_server_log(api: httpx.Client, people: People,
                                                web_server: WebServer) -> None:
    token = login(api, USER).json()["token"]
    login(api, USER, "a-wrong-secret-attempt")
    api.get("/api/v1/me", headers=bearer(token))
    api.get("/api/v1/me", params={"x": "1"}, headers=bearer(token))
    log = web_server.log.read_text()
    for secret in (PASSWORD, token, "a-wrong-secret-attempt"):
        assert secret not in log
