"""Page sessions: the cookie's flags, a new ID at each login, idle and absolute expiry,
logout ending the session in Redis, and login throttling shared with the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import redis

from agi.accounts import token_key
from agi.admin import Actor
from agi.web.pages import sessions
from tests.harness.web import WebServer
from tests.web.conftest import ADMIN, PASSWORD
from tests.web.pages.conftest import EMPLOYEE, Browser


def session_key(client: httpx.Client) -> str:
    return token_key("callroute:", client.cookies[sessions.COOKIE])


def test_login_sets_a_strict_httponly_cookie_and_a_session_in_redis(browser, redis_client):
    page = browser()
    response = page.login(ADMIN)
    assert response.status_code == 303 and response.headers["location"] == "/extensions"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback; https below
    stored = redis_client.hgetall(session_key(page.client))
    assert stored["user"] == ADMIN and stored["kind"] == "session" and stored["csrf"]
    assert 0 < redis_client.ttl(session_key(page.client)) <= sessions.IDLE_S


def test_the_cookie_is_secure_behind_an_https_proxy(browser, redis_server, config_env,
                                                    tmp_path):
    from tests.web.conftest import web_env

    proxied = WebServer(web_env(config_env, redis_server.url), tmp_path / "web.log",
                        args=("--behind-proxy",)).start()
    try:
        own = f"https://127.0.0.1:{proxied.port}"
        response = httpx.post(f"{proxied.url}/login", data={
            "username": ADMIN, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https", "Origin": own})
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        proxied.stop()


def test_each_login_gets_a_new_session_id_and_ends_the_old_one(browser, redis_client):
    page = browser()
    page.login(ADMIN)
    first = page.client.cookies[sessions.COOKIE]
    page.login(ADMIN)
    second = page.client.cookies[sessions.COOKIE]
    assert first != second
    assert not redis_client.exists(token_key("callroute:", first))
    assert redis_client.exists(token_key("callroute:", second))


def test_a_session_id_planted_before_login_is_never_used(browser, web_server, redis_client):
    page = browser()
    planted = "A" * 43
    response = page.client.post("/login", data={"username": ADMIN, "password": PASSWORD},
                                headers={"Origin": page.base,
                                         "Cookie": f"{sessions.COOKIE}={planted}"})
    assert response.status_code == 303
    assert planted not in response.headers["set-cookie"]
    assert not redis_client.exists(token_key("callroute:", planted))


def test_logout_deletes_the_session_in_redis(browser, redis_client):
    page = browser()
    page.login(ADMIN)
    key, sid = session_key(page.client), page.client.cookies[sessions.COOKIE]
    response = page.post("/logout", {})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert not redis_client.exists(key)
    replayed = page.client.get("/extensions", headers={"Cookie": f"{sessions.COOKIE}={sid}"})
    assert replayed.headers["location"] == "/login"


def test_a_session_past_its_absolute_end_is_refused(browser, redis_client):
    page = browser()
    page.login(ADMIN)
    key = session_key(page.client)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    redis_client.hset(key, "expires", past)
    assert page.get("/extensions").headers["location"] == "/login"


def test_a_request_pushes_the_idle_expiry_back_but_never_past_the_end(browser, redis_client):
    page = browser()
    page.login(ADMIN)
    key = session_key(page.client)
    redis_client.expire(key, 5)
    page.get("/extensions")
    assert redis_client.ttl(key) > sessions.IDLE_S - 5
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    redis_client.hset(key, "expires", soon)
    page.get("/extensions")
    assert redis_client.ttl(key) <= 60


def test_an_idle_session_is_gone(browser, redis_client):
    page = browser()
    page.login(ADMIN)
    redis_client.delete(session_key(page.client))  # what the 30-minute TTL does
    assert page.get("/extensions").headers["location"] == "/login"


def test_removing_the_user_ends_their_sessions(browser, accounts, redis_client):
    page = browser()
    page.login(EMPLOYEE)
    accounts.remove_user(EMPLOYEE, actor=Actor("cli:test"))
    assert page.get("/extensions/1002").headers["location"] == "/login"


def test_wrong_passwords_are_throttled_with_the_api_guard(browser, web_server):
    page = browser("fr")
    for _ in range(4):
        assert page.login(ADMIN, "wrong-password-xx").status_code == 401
    # The fifth failure through the API counts against the same user.
    api = httpx.post(f"{web_server.url}/api/v1/tokens", auth=(ADMIN, "nope-nope-nope"))
    assert api.status_code == 401
    refused = page.login(ADMIN, PASSWORD)
    assert refused.status_code == 429
    assert "Trop de tentatives" in refused.text
    assert sessions.COOKIE not in page.client.cookies


def test_login_from_another_origin_is_refused(browser, redis_client: redis.Redis):
    page = browser()
    before = set(redis_client.keys("callroute:token:*"))
    response = page.post("/login", {"username": ADMIN, "password": PASSWORD}, csrf=False,
                         origin="https://evil.example")
    assert response.status_code == 403
    assert set(redis_client.keys("callroute:token:*")) == before


def test_login_page_without_session_and_pages_redirect_to_it(browser):
    page: Browser = browser()
    for path in ("/", "/extensions", "/extensions/1001", "/company", "/users", "/audit"):
        assert page.get(path).headers["location"] == "/login", path
    assert page.get("/login").status_code == 200
