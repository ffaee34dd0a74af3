"""The FastAGI allowlist: who may ask for a decision, and what a refusal costs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agi.fastagi import FastAgiServer, parse_allow
from tests.fake_asterisk import agi_session


@pytest.fixture
def fastagi(serve: Callable[..., FastAgiServer]) -> Callable[..., FastAgiServer]:
    def start(host: str, allow: str | None = None) -> FastAgiServer:
        return serve(host=host, allow=parse_allow(allow))
    return start


def _answered(port: int, source: str, host: str = "127.0.0.2") -> bool:
    """True if the health check is answered; False if closed without a word."""
    try:
        commands = agi_session(port, "health", timeout=3, host=host, source=source)
    except (ConnectionResetError, BrokenPipeError):
        return False  # closed by the server before it read our request
    assert commands in ([], [["SET", "VARIABLE", "CALLROUTE_HEALTH", "OK"]])
    return bool(commands)


def test_allowlist_admits_only_the_listed_clients(fastagi) -> None:
    server = fastagi("127.0.0.2", allow="127.0.0.3")
    port = server.address[1]
    assert _answered(port, "127.0.0.3")
    assert _answered(port, "127.0.0.1")  # the local Asterisk, listening on loopback
    assert not _answered(port, "127.0.0.5")  # loopback, but not listed: closed unanswered
    assert not _answered(port, "127.0.0.2")


def test_without_an_allowlist_loopback_clients_are_admitted(fastagi) -> None:
    server = fastagi("127.0.0.2")
    assert _answered(server.address[1], "127.0.0.5")
    assert _answered(server.address[1], "127.0.0.1")


def test_wide_listen_with_allowlist_refuses_unlisted_loopback_clients(fastagi) -> None:
    """On a wide address, --allow is the whole list: a local process is not trusted."""
    server = fastagi("0.0.0.0", allow="127.0.0.3")
    port = server.address[1]
    assert _answered(port, "127.0.0.3", host="127.0.0.1")
    assert not _answered(port, "127.0.0.1", host="127.0.0.1")
    assert not _answered(port, "127.0.0.5", host="127.0.0.1")


def test_wide_listen_without_allowlist_is_refused(fr_config) -> None:
    with pytest.raises(ValueError, match="--allow"):
        FastAgiServer(fr_config, "0.0.0.0", 0)


def test_refused_client_costs_no_worker(fastagi) -> None:
    server = fastagi("127.0.0.2", allow="127.0.0.3")
    for _ in range(50):
        assert not _answered(server.address[1], "127.0.0.5")
    assert server.pending == 0
    assert _answered(server.address[1], "127.0.0.3")
