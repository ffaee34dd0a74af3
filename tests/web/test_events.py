"""GET /api/v1/events: one server-sent event per change, from any interface, within 1 s,
and only the changes the caller may see."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.harness.web import WebServer
from tests.web.conftest import ADMIN, USER, People, error_codes

MOBILE = "+33612345678"


class EventStream:
    """An SSE client in a thread: data events (decoded) go to `events` with arrival time."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.events: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=30))
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.ready.wait(10), "the stream never said ': ready'"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as resp:
                for line in resp.iter_lines():
                    if line == ": ready":
                        self.ready.set()
                    elif line.startswith("data: "):
                        self.events.put((time.monotonic(), json.loads(line[6:])))
        except httpx.HTTPError:
            return

    def next(self, timeout: float = 3.0) -> tuple[float, dict]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()
        self._thread.join(5)


@pytest.fixture
def stream(web_server: WebServer, people: People) -> Iterator:
    opened: list[EventStream] = []

    def open_as(headers: dict[str, str]) -> EventStream:
        opened.append(EventStream(f"{web_server.url}/api/v1/events", headers))
        return opened[-1]

    yield open_as
    for each in opened:
        each.close()


def test_events_need_a_token(api: httpx.Client) -> None:
    resp = api.get("/api/v1/events")
    assert resp.status_code == 401 and error_codes(resp) == ["unauthorized"]


def test_a_cli_change_arrives_within_a_second(stream, people: People, extensions: None,
                                              run_cli) -> None:
    events = stream(people.admin)
    start = time.monotonic()
    assert run_cli("forward", "on", "1001", MOBILE).code == 0
    arrived, event = events.next()
    assert event["ext"] == "1001" and event["action"] == "forwarding.set"
    assert event["actor"].startswith("cli:")
    assert set(event) == {"ext", "actor", "action"}
    assert arrived - start < 1.0


def test_an_api_change_arrives_for_the_admin(stream, api: httpx.Client, people: People,
                                             extensions: None) -> None:
    events = stream(people.admin)
    api.post("/api/v1/extensions/1002/devices", headers=people.admin,
             json={"number": "0612345678"})
    assert events.next()[1] == {"ext": "1002", "actor": f"api:{ADMIN}",
                                "action": "device.put"}


def test_a_user_sees_only_own_extensions(stream, api: httpx.Client, people: People,
                                         extensions: None, run_cli) -> None:
    events = stream(people.user)
    run_cli("forward", "on", "1002", MOBILE)
    api.patch("/api/v1/company", headers=people.admin, json={"name": "Other"})
    api.patch("/api/v1/extensions/1001/forwarding", headers=people.user,
              json={"target": MOBILE})
    assert events.next()[1] == {"ext": "1001", "actor": f"api:{USER}",
                                "action": "forwarding.set"}
    with pytest.raises(queue.Empty):
        events.next(timeout=1.5)
