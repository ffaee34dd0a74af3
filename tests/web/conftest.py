"""Fixtures for the HTTP API tests: a real callroute-web process on the session Redis.

The server runs once per session (start-up costs an argon2 hash and uvicorn's import);
every test starts from an empty database (the redis_client fixture flushes it), so the
login-failure counters, users and tokens never leak from one test into the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import redis

from agi import admin
from agi.accounts import Accounts
from agi.admin import Actor, ExtensionChanges
from agi.config import Config, load
from agi.store import AdminStore
from tests.harness.redis_server import RedisServer
from tests.harness.web import WebServer

ADMIN, USER, OTHER = "ada", "eve", "max"
PASSWORD = "correct-horse-battery"
TEST_ACTOR = Actor("cli:test")
PEOPLE = ((ADMIN, "admin", []), (USER, "user", ["1001"]), (OTHER, "user", ["1002"]))


def web_env(config_env: Callable[..., dict[str, str]], redis_url: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", **config_env(redis_url=redis_url)}


@pytest.fixture(scope="session")
def web_server(redis_server: RedisServer, config_env: Callable[..., dict[str, str]],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    log = tmp_path_factory.mktemp("web") / "callroute-web.log"
    server = WebServer(web_env(config_env, redis_server.url), log).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def web_config(redis_server: RedisServer, config_env: Callable[..., dict[str, str]]) -> Config:
    return load(config_env(redis_url=redis_server.url))


@pytest.fixture
def store(web_config: Config, redis_client: redis.Redis) -> Iterator[AdminStore]:
    store = AdminStore(web_config)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def session_accounts(redis_server: RedisServer,
                     config_env: Callable[..., dict[str, str]]) -> Iterator[Accounts]:
    """One Accounts for the session: its constructor hashes a dummy password (argon2)."""
    store = AdminStore(load(config_env(redis_url=redis_server.url)))
    try:
        yield Accounts(store)
    finally:
        store.close()


@pytest.fixture
def accounts(session_accounts: Accounts, redis_client: redis.Redis) -> Accounts:
    return session_accounts


@pytest.fixture(scope="session")
def people_dump(session_accounts: Accounts, redis_server: RedisServer) -> dict[str, bytes]:
    """The three accounts, created (and argon2-hashed) once, as DUMPs of their keys."""
    raw = redis.Redis.from_url(redis_server.url)
    for name, role, exts in PEOPLE:
        session_accounts.add_user(name, role, exts, PASSWORD, actor=Actor("cli:test"))
    keys = [key.decode() for key in raw.scan_iter("callroute:user*")]
    dump = {key: raw.dump(key) for key in keys}
    raw.delete(*keys)
    raw.close()
    return dump


@dataclass
class People:
    """Tokens of an admin (ada), an employee of 1001 (eve) and one of 1002 (max)."""

    admin: dict[str, str]
    user: dict[str, str]
    other: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(accounts: Accounts, people_dump: dict[str, bytes],
           redis_client: redis.Redis, redis_server: RedisServer) -> People:
    """ada (admin), eve (1001) and max (1002), password PASSWORD, each with a token."""
    raw = redis.Redis.from_url(redis_server.url)
    for key, value in people_dump.items():
        raw.restore(key, 0, value, replace=True)
    raw.close()
    tokens = {name: accounts.issue(name, timedelta(hours=1))[0] for name, _, _ in PEOPLE}
    return People(bearer(tokens[ADMIN]), bearer(tokens[USER]), bearer(tokens[OTHER]))


@pytest.fixture
def extensions(store: AdminStore, web_config: Config) -> None:
    """Extensions 1001 and 1002, and the company number."""
    for ext in ("1001", "1002"):
        admin.put_extension(store, web_config, ext, ExtensionChanges(), TEST_ACTOR)
    admin.set_company(store, web_config, caller_id="+33140000000", name="Acme",
                      actor=TEST_ACTOR)


@pytest.fixture
def api(web_server: WebServer, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_server.url, timeout=10) as client:
        yield client


def error_codes(response: httpx.Response) -> list[str]:
    """The codes of an error response, after checking it has the one error shape."""
    body = response.json()
    assert set(body) == {"errors"}, body
    assert all(set(err) == {"field", "code", "message"} for err in body["errors"]), body
    return [err["code"] for err in body["errors"]]


def error_fields(response: httpx.Response) -> list[str]:
    return [err["field"] for err in response.json()["errors"]]
