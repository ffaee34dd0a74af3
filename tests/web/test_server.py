"""callroute-web as a process: where it listens, TLS, /healthz, OpenAPI, Redis outages,
shutdown, and the per-call path staying free of the web stack."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from agi.accounts import Accounts
from agi.admin import Actor
from agi.config import load
from agi.store import AdminStore
from agi.web.server import listen_problem, parse_listen
from tests.harness.notify import FakeSystemd
from tests.harness.redis_server import RedisServer
from tests.harness.web import WebServer
from tests.web.conftest import PASSWORD, People, bearer, error_codes, web_env

ROOT = Path(__file__).resolve().parents[2]
WEB_STACK = ("fastapi", "starlette", "uvicorn", "argon2", "pydantic", "agi.web",
             "agi.accounts")


def test_healthz_needs_no_auth(api: httpx.Client) -> None:
    resp = api.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"redis": "ok"})


def test_openapi_describes_every_endpoint(api: httpx.Client) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    routes = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    ext = "/api/v1/extensions/{ext}"
    assert routes >= {
        ("/api/v1/tokens", "POST"), ("/api/v1/tokens/current", "DELETE"),
        ("/api/v1/me", "GET"), ("/api/v1/extensions", "GET"), ("/api/v1/extensions", "POST"),
        (ext, "GET"), (ext, "PATCH"), (ext, "DELETE"), (f"{ext}/forwarding", "PATCH"),
        (f"{ext}/devices", "POST"), (f"{ext}/devices/{{number}}", "PATCH"),
        (f"{ext}/devices/{{number}}", "DELETE"), ("/api/v1/company", "GET"),
        ("/api/v1/company", "PATCH"), ("/api/v1/audit", "GET"), ("/api/v1/events", "GET")}


@pytest.mark.parametrize(("listen", "tls", "proxy", "refused"), [
    ("127.0.0.1", False, False, False), ("::1", False, False, False),
    ("localhost", False, False, False), ("0.0.0.0", False, False, True),
    ("192.0.2.10", False, False, True), ("192.0.2.10", True, False, False),
    ("192.0.2.10", False, True, False), ("::", False, False, True)])
def test_plain_http_only_on_loopback(listen: str, tls: bool, proxy: bool,
                                     refused: bool) -> None:
    assert bool(listen_problem(listen, tls=tls, behind_proxy=proxy)) is refused


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000))])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(("args", "message"), [
    (("--listen", "0.0.0.0:8080"), "refusing to serve plain HTTP on non-loopback address"),
    (("--listen", "8080"), "is not HOST:PORT"),
    (("--listen", "127.0.0.1:8080", "--tls-cert", "/x.pem"), "go together")])
def test_refuses_to_start_with_one_line(args: tuple[str, ...], message: str,
                                        config_env: Callable[..., dict[str, str]]) -> None:
    script = Path(sys.executable).parent / "callroute-web"
    proc = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=20,
                          env={"PATH": "/usr/bin:/bin", **config_env()})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_serves_tls(tmp_path: Path, redis_server: RedisServer,
                    config_env: Callable[..., dict[str, str]]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    with WebServer(web_env(config_env, redis_server.url), tmp_path / "web.log",
                   args=("--tls-cert", str(cert), "--tls-key", str(key))) as web:
        assert web.url.startswith("https://")
        assert httpx.get(f"{web.url}/healthz", verify=ssl.create_default_context(
            cafile=str(cert))).json() == {"redis": "ok"}
        with pytest.raises(httpx.HTTPError):
            httpx.get(web.url.replace("https:", "http:") + "/healthz", timeout=5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


REDIS_DOWN_REQUESTS = [
    ("GET", "/api/v1/me", None), ("GET", "/api/v1/extensions", None),
    ("GET", "/api/v1/extensions/1001", None), ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/events", None),
    ("PATCH", "/api/v1/extensions/1001/forwarding", {"enabled": False}),
    ("POST", "/api/v1/extensions/1001/devices", {"number": "0612345678"})]


def test_redis_down_is_503_and_comes_back(own_redis: RedisServer, tmp_path: Path,
                                          config_env: Callable[..., dict[str, str]]) -> None:
    accounts = Accounts(AdminStore(load(config_env(redis_url=own_redis.url))))
    accounts.add_user("ada", "admin", [], PASSWORD, actor=Actor("cli:test"))
    headers = bearer(accounts.issue("ada", timedelta(hours=1))[0])
    with WebServer(web_env(config_env, own_redis.url), tmp_path / "web.log") as web, \
            httpx.Client(base_url=web.url, timeout=15) as api:
        assert api.get("/api/v1/me", headers=headers).status_code == 200
        own_redis.stop()
        assert api.get("/healthz").status_code == 503
        responses = [api.request(method, path, json=body, headers=headers)
                     for method, path, body in REDIS_DOWN_REQUESTS]
        responses.append(api.post("/api/v1/tokens", auth=("ada", PASSWORD)))
        for resp in responses:
            assert resp.status_code == 503, (resp.request.url, resp.text)
            assert error_codes(resp) == ["unavailable"]
            assert resp.headers["Retry-After"] == "5"
        own_redis.start()
        assert api.get("/healthz").status_code == 200
        assert "Traceback" not in web.log.read_text()


def test_sigterm_ends_open_event_streams(web_env_server: WebServer, people: People) -> None:
    """An open SSE client does not hold the server up: it exits promptly and cleanly."""
    got: list[str] = []

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{web_env_server.url}/api/v1/events",
                              headers=people.admin, timeout=30) as resp:
                for line in resp.iter_lines():
                    got.append(line)
        except httpx.HTTPError:
            got.append("error")

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(1)
    assert got and got[0] == ": ready"
    start = time.monotonic()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert web_env_server.stop() in (0, -signal.SIGTERM)
    assert time.monotonic() - start < 4  # the stream noticed, well before the 5 s cut-off
    thread.join(5)
    assert not thread.is_alive()
    log = web_env_server.log.read_text()
    assert "Finished server process" in log and "Traceback" not in log
    assert "Cancel" not in log


@pytest.fixture
def web_env_server(redis_server: RedisServer, tmp_path: Path, redis_client,
                   config_env: Callable[..., dict[str, str]]) -> Iterator[WebServer]:
    server = WebServer(web_env(config_env, redis_server.url), tmp_path / "web.log").start()
    yield server
    server.stop()


def test_call_path_never_imports_the_web_stack() -> None:
    """Nor the metrics: process AGI never loads agi.metrics, and FastAGI (which does)
    loads prometheus_client only when started with --metrics."""
    code = ("import sys, agi.process_agi, agi.service, agi.routing, agi.features\n"
            "assert 'agi.metrics' not in sys.modules\n"
            "import agi.fastagi, agi.cli\n"
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {WEB_STACK[:5]!r}"
            f" or m in {WEB_STACK[5:]!r} or m.startswith('prometheus_client'))\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_x_forwarded_for_is_trusted_only_behind_a_proxy(
        api: httpx.Client, people: People, extensions: None, redis_server: RedisServer,
        tmp_path: Path, config_env: Callable[..., dict[str, str]], redis_client) -> None:
    """Directly, a forged X-Forwarded-For changes nothing (the brute-force guard and the
    audit see the real address); with --behind-proxy, the proxy's header is the source."""
    forged = {**people.admin, "X-Forwarded-For": "203.0.113.5"}
    api.patch("/api/v1/extensions/1001/forwarding", headers=forged,
              json={"target": "0612345678"})
    with WebServer(web_env(config_env, redis_server.url), tmp_path / "web.log",
                   args=("--behind-proxy",)) as proxied:
        httpx.patch(f"{proxied.url}/api/v1/extensions/1002/forwarding", headers=forged,
                    json={"target": "0612345678"}, timeout=10)
    sources = {fields["ext"]: fields["source"]
               for _, fields in redis_client.xrange("callroute:audit")
               if fields["action"] == "forwarding.set"}
    assert sources == {"1001": "127.0.0.1", "1002": "203.0.113.5"}


def test_tells_systemd_ready_only_once_redis_answered(own_redis: RedisServer, tmp_path: Path,
                                                      config_env: Callable[..., dict[str, str]]
                                                      ) -> None:
    """Type=notify: READY=1 waits for Redis, then WATCHDOG=1 pings; STOPPING=1 on SIGTERM."""
    systemd = FakeSystemd(str(tmp_path / "notify"), str(tmp_path / "notify"))
    own_redis.stop()
    env = {**web_env(config_env, own_redis.url), **systemd.env, "WATCHDOG_USEC": "400000"}
    try:
        with WebServer(env, tmp_path / "web.log") as web:
            waiting = systemd.receive()
            assert waiting[0].startswith("STATUS=listening on 127.0.0.1:")
            assert "waiting for Redis" in waiting[0]
            own_redis.start()
            after = systemd.until("WATCHDOG=1")
            assert "READY=1" in [m[0] for m in after], after
            web.proc.send_signal(signal.SIGTERM)
            assert systemd.until("STOPPING=1")[-1] == [
                "STOPPING=1", "STATUS=draining"]
    finally:
        systemd.sock.close()

