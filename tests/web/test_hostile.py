"""Hostile requests: path tricks, header floods, oversized and lying bodies, JSON bombs,
wrong content types, and an employee reaching for another extension. None may change
anything (a DUMP of every Redis key before and after) or answer 500.

Requests go over a raw socket where an HTTP client would normalise or refuse them.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.harness.web import WebServer
from tests.web.conftest import People

EXT = "/api/v1/extensions"


def raw(server: WebServer, request: bytes, timeout: float = 10.0) -> int:
    """Send `request` as is; the status code, or 0 if the server closed without one."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return 0
    return int(data.split(b" ", 2)[1])


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"",
            extra: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "".join(f"{key}: {value}\r\n" for key, value in headers.items())
    if body and "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + extra + b"\r\n" + body


def json_headers(auth: dict[str, str]) -> dict[str, str]:
    return {**auth, "Content-Type": "application/json"}


@pytest.fixture
def unchanged(snapshot, web_server: WebServer, api: httpx.Client):
    """Assert, after the test, that nothing was written and the server still serves."""
    before = snapshot()
    yield
    assert snapshot() == before
    assert api.get("/healthz").status_code == 200
    assert "Traceback" not in web_server.log.read_text()


PATH_TRICKS = [
    f"{EXT}/..%2f1002", f"{EXT}/..%2F1002/forwarding", f"{EXT}/%2e%2e/1002",
    f"{EXT}/1001%2f..%2f1002/forwarding", f"{EXT}/1001/../1002/forwarding",
    f"{EXT}/1002%00/forwarding", f"{EXT}/1002%20/forwarding", f"{EXT}/1001,1002/forwarding",
    f"{EXT}/%31%30%30%32/forwarding", f"{EXT}/1001/devices/..%2f..%2f1002",
    f"{EXT}/{'9' * 5000}/forwarding", f"{EXT}/{'9' * 20000}", "/api/v1/../v1/company",
    "/api/v1/audit?ext=1002&ext=1001", "/api/v1/audit?ext=..%2f1002",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
def test_path_tricks_change_nothing(web_server: WebServer, people: People, extensions: None,
                                    unchanged: None, path: str) -> None:
    body = b'{"enabled": true, "target": "+33612345678"}'
    for method in ("GET", "PATCH", "DELETE", "POST"):
        status = raw(web_server, request(method, path, json_headers(people.user), body))
        assert status != 500, (method, status)
        # Only the audit, where the last ?ext= (eve's 1001) wins, may answer at all.
        assert not 200 <= status < 300 or path.startswith("/api/v1/audit"), (method, status)


def test_path_tricks_as_admin_never_reach_another_extension(
        web_server: WebServer, people: People, extensions: None, unchanged: None) -> None:
    body = b'{"enabled": true, "target": "+33612345678"}'
    for path in (f"{EXT}/..%2f1002/forwarding", f"{EXT}/1001%2f..%2f1002/forwarding",
                 f"{EXT}/1002%00/forwarding", f"{EXT}/{'9' * 5000}/forwarding"):
        status = raw(web_server, request("PATCH", path, json_headers(people.admin), body))
        assert status in (0, 400, 403, 404, 414, 422, 431), (path, status)


@pytest.mark.parametrize("flood", [
    b"".join(b"X-Flood-%d: %s\r\n" % (n, b"a" * 50) for n in range(2000)),
    b"X-Big: " + b"a" * 200_000 + b"\r\n",
    b"Cookie: " + b"; ".join(b"c%d=v" % n for n in range(20_000)) + b"\r\n",
    b"Authorization: Bearer " + b"A" * 100_000 + b"\r\n",
], ids=["many-headers", "one-huge-header", "cookie-flood", "huge-token"])
def test_header_floods_are_refused(web_server: WebServer, people: People, extensions: None,
                                   unchanged: None, flood: bytes) -> None:
    status = raw(web_server, request("PATCH", f"{EXT}/1001/forwarding",
                                     json_headers(people.admin), b'{"enabled": false}',
                                     extra=flood))
    assert status in (0, 400, 431), status


def test_oversized_bodies_are_413(web_server: WebServer, people: People, extensions: None,
                                  unchanged: None) -> None:
    big = b'{"target": "' + b"1" * 70_000 + b'"}'
    headers = json_headers(people.admin)
    path = f"{EXT}/1001/forwarding"
    assert raw(web_server, request("PATCH", path, headers, big)) == 413
    declared = request("PATCH", path, {**headers, "Content-Length": "10000000"}, b"{}")
    assert raw(web_server, declared) == 413
    chunks = b"".join(b"%x\r\n%s\r\n" % (8192, b" " * 8192) for _ in range(9)) + b"0\r\n\r\n"
    streamed = request("PATCH", path, {**headers, "Transfer-Encoding": "chunked"}, chunks)
    assert raw(web_server, streamed) == 413
    assert raw(web_server, request("PATCH", path, {**headers, "Content-Length": "-1"},
                                   b"{}")) in (0, 400)


JSON_BOMBS = [
    b"[" * 60_000 + b"]" * 60_000,
    b'{"enabled": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    b'{"after": ' + b"9" * 60_000 + b"}",
    b'{"target": "' + b"\\u0000" * 10_000 + b'"}',
    b'{"enabled": true, "enabled": false, "target": "+33612345678", "target": 1}',
    b'{"target": "+33612345678\\r\\nX-Injected: 1"}',
    b'{"target": "+33612345678&PJSIP/evil"}',
    b'{"when": ["busy", ["busy", ["busy"]]]}',
    b"\xff\xfe{}", b"null", b"[]", b'"a string"', b"{", b"",
]


@pytest.mark.parametrize("body", JSON_BOMBS, ids=range(len(JSON_BOMBS)))
def test_json_bombs_and_junk_are_4xx(web_server: WebServer, people: People, extensions: None,
                                     unchanged: None, body: bytes) -> None:
    status = raw(web_server, request("PATCH", f"{EXT}/1001/forwarding",
                                     json_headers(people.admin), body))
    assert 400 <= status < 500, status


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "", "application/jsonx", "application/json-patch+json"])
def test_wrong_content_types_are_415(web_server: WebServer, people: People, extensions: None,
                                     unchanged: None, content_type: str) -> None:
    headers = {**people.admin, **({"Content-Type": content_type} if content_type else {})}
    status = raw(web_server, request("PATCH", f"{EXT}/1001/forwarding", headers,
                                     b'{"enabled": false}'))
    assert status == 415


def test_user_reaches_for_another_extension_through_the_list_and_audit(
        api: httpx.Client, people: People, extensions: None, unchanged: None) -> None:
    assert [v["extension"] for v in api.get(EXT, headers=people.user).json()] == ["1001"]
    records = api.get("/api/v1/audit", params={"limit": 1000}, headers=people.user).json()
    assert all(record["ext"] == "1001" for record in records)
    audit = api.get("/api/v1/audit?ext=1002&ext=1001", headers=people.user)
    assert audit.status_code in (200, 403)
    assert "1002" not in audit.text or audit.status_code == 403
