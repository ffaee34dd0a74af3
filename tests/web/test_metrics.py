"""callroute-web's /metrics: known requests and logins through the real HTTP server,
then a scrape over HTTP shows exactly those counts (by route template, never the URL),
promtool accepts the exposition, and only a loopback client may read it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.metrics import Samples, promtool, samples, scrape
from tests.harness.redis_server import RedisServer
from tests.harness.web import WebServer
from tests.web.conftest import ADMIN, PASSWORD, People, web_env

pytestmark = pytest.mark.redis

TOKENS = "/api/v1/tokens"
EXTENSION = "/api/v1/extensions/{ext}"


@pytest.fixture
def web(redis_server: RedisServer, tmp_path: Path, redis_client,
        config_env: Callable[..., dict[str, str]]) -> Iterator[WebServer]:
    """A server of its own: the counts start from zero."""
    with WebServer(web_env(config_env, redis_server.url), tmp_path / "web.log") as server:
        yield server


# The labels of each counter looked at, in order.
COUNTERS = {"callroute_http_requests_total": ("route", "method", "status"),
            "callroute_logins_total": ("via", "result")}


def delta(before: Samples, after: Samples) -> dict[tuple[str, ...], float]:
    """How much each series of COUNTERS moved: (counter, *its label values) -> change."""
    moved = {}
    for (name, labels), value in after.items():
        if name in COUNTERS and (change := value - before.get((name, labels), 0)):
            named = dict(labels)
            moved[(name, *(named[label] for label in COUNTERS[name]))] = change
    return moved


def test_scrape_counts_exactly_the_requests_and_logins_made(
        web: WebServer, people: People, extensions: None) -> None:
    before = samples(scrape(f"{web.url}/metrics"))
    page = {"Origin": web.url}
    with httpx.Client(base_url=web.url, timeout=10) as client:
        assert client.post(TOKENS, auth=(ADMIN, PASSWORD)).status_code == 201
        for _ in range(2):
            assert client.post(TOKENS, auth=(ADMIN, "wrong")).status_code == 401
        assert client.post("/login", headers=page, data={"username": ADMIN,
                                                         "password": "wrong"}).status_code == 401
        for _ in range(2):
            assert client.post(TOKENS, auth=("nobody", "wrong")).status_code == 401
        # Five failures from this address: both ways in are locked now.
        assert client.post(TOKENS, auth=(ADMIN, PASSWORD)).status_code == 429
        assert client.post("/login", headers=page, data={"username": ADMIN,
                                                         "password": PASSWORD}).status_code == 429
        assert client.get("/api/v1/extensions/1001", headers=people.admin).status_code == 200
        assert client.get("/api/v1/extensions/9999", headers=people.admin).status_code == 404
        assert client.get("/no/such/page/12345").status_code == 404
        assert client.request("PROPFIND", "/healthz").status_code == 405
    text = scrape(f"{web.url}/metrics")
    http, logins = COUNTERS
    assert delta(before, samples(text)) == {
        (http, "/metrics", "GET", "200"): 1,
        (http, TOKENS, "POST", "201"): 1,
        (http, TOKENS, "POST", "401"): 4,
        (http, TOKENS, "POST", "429"): 1,
        (http, "/login", "POST", "401"): 1,
        (http, "/login", "POST", "429"): 1,
        (http, EXTENSION, "GET", "200"): 1,
        (http, EXTENSION, "GET", "404"): 1,
        (http, "unmatched", "GET", "404"): 1,
        (http, "/healthz", "other", "405"): 1,
        (logins, "api", "ok"): 1,
        (logins, "api", "wrong"): 4,
        (logins, "api", "locked"): 1,
        (logins, "page", "wrong"): 1,
        (logins, "page", "locked"): 1,
    }
    check = promtool("check", "metrics", stdin=text)
    assert (check.returncode, check.stdout + check.stderr) == (0, "")


def test_metrics_are_for_loopback_clients_only(
        redis_server: RedisServer, tmp_path: Path, redis_client,
        config_env: Callable[..., dict[str, str]]) -> None:
    """Behind a proxy the client is the proxy's X-Forwarded-For: a remote one gets 404."""
    with WebServer(web_env(config_env, redis_server.url), tmp_path / "web.log",
                   args=("--behind-proxy",)) as proxied:
        remote = httpx.get(f"{proxied.url}/metrics", timeout=10,
                           headers={"X-Forwarded-For": "203.0.113.5"})
        local = httpx.get(f"{proxied.url}/metrics", timeout=10,
                          headers={"X-Forwarded-For": "127.0.0.1"})
    assert (remote.status_code, local.status_code) == (404, 200)
    assert "callroute_" not in remote.text
    assert 'callroute_build_info{version="0.1.0"} 1.0' in local.text
