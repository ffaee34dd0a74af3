"""Fixtures for the page tests: the API tests' real callroute-web and office and a logged-in
httpx client that behaves like a browser on our own origin (Origin header, cookies)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.harness.web import WebServer
from tests.web.conftest import OTHER, PASSWORD, People

EMPLOYEE = OTHER  # max, the employee of 1002
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """An httpx client that posts like a page of ours: Origin set, CSRF token kept."""

    def __init__(self, base: str, lang: str = "en"):
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=10, follow_redirects=False,
                                   headers={"Accept-Language": lang})
        self.csrf = ""

    def get(self, path: str, **kwargs) -> httpx.Response:
        response = self.client.get(path, **kwargs)
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict | list, *, csrf: bool = True,
             origin: str | None = "own", **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if origin is not None:
            headers["Origin"] = self.base if origin == "own" else origin
        items = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf:
            items.append(("csrf", self.csrf))
        form: dict[str, list[str]] = {}
        for key, value in items:
            form.setdefault(key, []).append(value)
        return self.client.post(path, data=form, headers=headers, **kwargs)

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        response = self.post("/login", {"username": name, "password": password}, csrf=False)
        if response.status_code == 303:
            self.get(response.headers["location"])
        return response

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def browser(web_server: WebServer, redis_client: redis.Redis, people: People,
            extensions: None) -> Iterator[Callable[..., Browser]]:
    """Browsers on the API tests' office: ada (admin), eve (1001), max (1002); 1001 and
    1002; the company number +33140000000 named Acme."""
    made: list[Browser] = []

    def make(lang: str = "en") -> Browser:
        made.append(Browser(web_server.url, lang))
        return made[-1]

    yield make
    for each in made:
        each.close()
