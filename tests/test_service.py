"""One AGI request end to end (agi/service.py): which extension it routes, the
variables it sets and in what order, and how every failure ends without a traceback.

The session logic runs on a mocked channel (pytest-mock is for the AGI channel only);
the extension argument is also checked through both real entry points, the
`callroute-agi` process under the fake Asterisk and the FastAGI server.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest.mock import Mock

import pytest
from pytest_mock import MockerFixture

from agi import variables as v
from agi.config import Config
from agi.protocol import AgiSession
from agi.service import apply_route, handle_route
from tests.asterisk_parser import command_words, mset_pairs, set_pairs
from tests.fake_asterisk import FakeAsterisk, agi_session


class _ScriptedSession(AgiSession):
    """An AgiSession whose wire is a mock: records command lines, replies as scripted."""

    def __init__(self, exchange: object, ext: str | None = "1001"):
        # What Asterisk sends: the dialplan runs the agent from a Gosub, at extension s.
        self.env = {"agi_extension": "s"} | ({} if ext is None else {"agi_arg_1": ext})
        self._exchange = exchange  # type: ignore[method-assign,assignment]


def _sent(exchange: Mock) -> list[list[str]]:
    return [command_words(call.args[0]) for call in exchange.call_args_list]


def test_unreachable_store_sets_fallback_then_logs_once(
        mocker: MockerFixture, config_env: Callable[..., dict[str, str]],
        closed_port: int) -> None:
    from agi.config import load

    config = load(config_env(redis_url=f"redis://127.0.0.1:{closed_port}/0"))
    exchange = mocker.Mock(return_value="200 result=1\n")
    route = handle_route(_ScriptedSession(exchange), [], config)
    assert route is not None
    assert (route.status, route.dial) == (v.STATUS_FALLBACK, "PJSIP/1001")
    sent = _sent(exchange)
    assert mset_pairs(sent[0]) == route.variables()
    assert route.variables()[-1] == (v.STATUS, v.STATUS_FALLBACK)
    assert sent[1][0] == "VERBOSE"
    assert len(sent) == 2


def test_hangup_mid_session_stops_sending(mocker: MockerFixture, fr_config: Config) -> None:
    exchange = mocker.Mock(side_effect=["200 result=1\n", "HANGUP\n", "200 result=1\n"])
    assert handle_route(_ScriptedSession(exchange, "bad&ext"), [], fr_config) is None
    assert exchange.call_count == 2


def test_refused_command_is_logged_not_raised(mocker: MockerFixture, fr_config: Config) -> None:
    exchange = mocker.Mock(side_effect=["510 Invalid or unknown command\n", "200 result=1\n"])
    assert handle_route(_ScriptedSession(exchange, "bad&ext"), [], fr_config) is None
    last = _sent(exchange)[-1]
    assert last == ["VERBOSE", "callroute: Asterisk refused a command: "
                    "510 Invalid or unknown command", "1"]


def test_config_error_is_logged_not_raised(mocker: MockerFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_COUNTRY", "XX")
    exchange = mocker.Mock(return_value="200 result=1\n")
    assert handle_route(_ScriptedSession(exchange), []) is None
    sent = _sent(exchange)
    assert len(sent) == 1
    assert sent[0][0] == "VERBOSE"
    assert sent[0][1].startswith("callroute: configuration error: CALLROUTE_COUNTRY 'XX'")


def test_apply_route_sets_status_last_and_logs_nothing_when_ok(
        mocker: MockerFixture, fr_config: Config) -> None:
    from agi.routing import decide

    exchange = mocker.Mock(return_value="200 result=1\n")
    route = decide("1001", {"devices": '["PJSIP/1001"]'}, {}, fr_config)
    apply_route(_ScriptedSession(exchange), "1001", route)
    sent = _sent(exchange)
    # Only what this decision needs, in one round trip, STATUS last.
    assert len(sent) == 1
    assert mset_pairs(sent[0]) == [
        (v.MODE, v.MODE_RING), (v.DIAL, "PJSIP/1001"), (v.MAILBOX, "1001@default"),
        (v.STATUS, v.STATUS_OK)]


# ---- which extension a request routes ------------------------------------------------------

@pytest.mark.parametrize("argv", [[], [""]], ids=["no-argv", "empty-argv"])
def test_a_request_without_an_extension_argument_is_invalid(
        mocker: MockerFixture, fr_config: Config, argv: list[str]) -> None:
    """Never agi_extension: inside callroute-inbound it is `s`, a well-formed extension."""
    exchange = mocker.Mock(return_value="200 result=1\n")
    route = handle_route(_ScriptedSession(exchange, ext=None), argv, fr_config)
    assert route is not None
    assert (route.status, route.dial) == (v.STATUS_INVALID, "")
    assert mset_pairs(_sent(exchange)[-2])[-1] == (v.STATUS, v.STATUS_INVALID)


def test_the_command_line_wins_over_agi_arg_1(mocker: MockerFixture, fr_config: Config) -> None:
    exchange = mocker.Mock(return_value="200 result=1\n")
    route = handle_route(_ScriptedSession(exchange, ext="1002"), ["1001"], fr_config)
    assert route is not None and route.dial == "PJSIP/1001"


@pytest.mark.redis
def test_process_agi_without_an_argument_routes_nothing(
        fake_asterisk: Callable[..., FakeAsterisk]) -> None:
    run = fake_asterisk().run("1001", argv=[])
    assert not run.timed_out and (run.returncode, run.stderr) == (0, "")
    found = run.variables()
    assert (found[v.STATUS], found[v.DIAL]) == (v.STATUS_INVALID, "")


@pytest.mark.redis
def test_fastagi_without_an_argument_routes_nothing(serve, redis_server) -> None:
    server = serve(redis_server.url)
    commands = agi_session(server.address[1], args=())
    found = dict(set_pairs(commands))
    assert found[v.STATUS] == v.STATUS_INVALID
    assert v.DIAL not in found
