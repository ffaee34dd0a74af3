"""The AGI command encoding, checked through Asterisk's own parser (re-implemented).

pyst2 quotes nothing, so a `"` or a newline in a value could start a second command
(an EXEC Dial to a premium number). These tests parse every command we produce the way
res_agi.c does and require exactly one line of exactly four words.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest.mock import Mock

import pytest
from pytest_mock import MockerFixture

from agi import variables as v
from agi.config import Config
from agi.protocol import (
    MAX_QUOTED_BYTES,
    MAX_VALUE_LENGTH,
    AgiProtocolError,
    AgiSession,
    ChannelHungUp,
    parse_env_line,
    parse_result,
    set_variable_command,
    verbose_command,
)
from agi.service import apply_route, handle_route
from tests.fake_asterisk import AGI_BUF_LEN, mset_pairs, parse_args, split_command_lines

INJECTION = 'x"\nEXEC Dial "PJSIP/itsp/00881'

# (id, value, what Asterisk must see as the variable's value)
HOSTILE_VALUES = [
    ("plain", "PJSIP/1001", "PJSIP/1001"),
    ("empty", "", ""),
    ("spaces", "a b  c", "a b  c"),
    ("double-quote", 'say "hi"', 'say "hi"'),
    ("lone-quote", '"', '"'),
    ("backslash", "C:\\path\\", "C:\\path\\"),
    ("backslash-quote", '\\"', '\\"'),
    ("pyst2-injection", INJECTION, 'x"EXEC Dial "PJSIP/itsp/00881'),
    ("newline", "a\nEXEC Dial PJSIP/x", "aEXEC Dial PJSIP/x"),
    ("carriage-return", "a\rb", "ab"),
    ("crlf", "a\r\nHANGUP", "aHANGUP"),
    ("nul", "a\x00b", "ab"),
    ("tab", "a\tb", "ab"),
    ("escape-seq", "a\x1b[31mb", "a[31mb"),
    ("unicode-line-separator", "a\u2028b\u2029c", "abc"),
    ("non-ascii", "Zoé Ünïcødé 電話", "Zoé Ünïcødé 電話"),
    ("dollar-braces", "${SHELL(rm -rf /)}", "${SHELL(rm -rf /)}"),
    ("very-long", "a" * 5000, "a" * MAX_VALUE_LENGTH),
]


def _words(command: str) -> list[str]:
    lines = split_command_lines((command + "\n").encode())
    assert len(lines) == 1, f"{command!r} is read as {len(lines)} commands"
    return parse_args(lines[0].decode())


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in HOSTILE_VALUES],
                         ids=[case[0] for case in HOSTILE_VALUES])
def test_set_variable_is_one_command_of_four_words(value: str, expected: str) -> None:
    command = set_variable_command(v.DIAL, value)
    assert "\n" not in command and "\r" not in command
    assert _words(command) == ["SET", "VARIABLE", v.DIAL, expected]


@pytest.mark.parametrize("value", ['"' * 1024, "\\" * 1024, "\ufffd" * 1024,
                                   "\ufffd" * 700 + "\tEXEC\tDial\tPJSIP/itsp/00881"],
                         ids=["quotes", "backslashes", "3-byte-chars", "tab-tail"])
def test_huge_value_never_overflows_asterisks_line_buffer(value: str) -> None:
    """res_agi.c reads 2047 bytes per line: a longer command's tail becomes a new command."""
    command = set_variable_command(v.REASON, value)
    assert len(command.encode()) + 1 <= AGI_BUF_LEN - 1
    words = _words(command)
    assert words[:3] == ["SET", "VARIABLE", v.REASON]
    assert len(words) == 4
    assert value.startswith(words[3])
    assert len(words[3]) >= MAX_QUOTED_BYTES // 3 - 1


def test_long_quotes_are_cut_to_the_byte_budget() -> None:
    words = _words(set_variable_command(v.REASON, '"' * 1024))
    assert words[3] == '"' * (MAX_QUOTED_BYTES // 2)


@pytest.mark.parametrize("name", ["", "1ABC", "A B", "A\nEXEC", 'A"', "___A", "A" * 65, "A-B"])
def test_bad_variable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a channel variable name"):
        set_variable_command(name, "x")


@pytest.mark.parametrize("name", ["A", "__CALLROUTE_X", "_a1", "A" * 64])
def test_good_variable_names_pass(name: str) -> None:
    assert _words(set_variable_command(name, "1")) == ["SET", "VARIABLE", name, "1"]


def test_verbose_is_one_command_of_three_words() -> None:
    assert _words(verbose_command(INJECTION, 1)) == [
        "VERBOSE", 'x"EXEC Dial "PJSIP/itsp/00881', "1"]


# ---- the parser itself: it must be faithful, or the tests above prove nothing -------------

@pytest.mark.parametrize(("line", "words"), [
    ('SET VARIABLE A "b c"', ["SET", "VARIABLE", "A", "b c"]),
    ('SET VARIABLE A ""', ["SET", "VARIABLE", "A", ""]),
    ('SET VARIABLE A "x"EXEC', ["SET", "VARIABLE", "A", "xEXEC"]),
    ('SET VARIABLE A "x" EXEC Dial', ["SET", "VARIABLE", "A", "x", "EXEC", "Dial"]),
    ("SET\tVARIABLE  A\\ b", ["SET", "VARIABLE", "A b"]),
    ('A "b\\"c"', ["A", 'b"c']),
    ('A "b\\\\"c', ["A", "b\\c"]),
    ("  A  ", ["A"]),
    ("", []),
], ids=["quoted-space", "empty-quoted", "glued", "unquoted-injection", "tab-and-escape",
        "escaped-quote", "escaped-backslash", "surrounding-space", "empty"])
def test_parse_args_matches_res_agi(line: str, words: list[str]) -> None:
    assert parse_args(line) == words


def test_split_command_lines_cuts_like_fgets() -> None:
    line = b"A" * (AGI_BUF_LEN + 10)
    assert split_command_lines(line + b"\nB\n") == [b"A" * (AGI_BUF_LEN - 1), b"A" * 11, b"B"]


# ---- result and environment lines ------------------------------------------------------

@pytest.mark.parametrize(("line", "result"), [
    ("200 result=1\n", "1"), ("200 result=0 (timeout)\n", "0"), ("200 \n", ""),
])
def test_parse_result_reads_the_result(line: str, result: str) -> None:
    assert parse_result(line) == result


@pytest.mark.parametrize("line", ["", "HANGUP\n", "511 Command Not Permitted on a dead channel"])
def test_parse_result_reports_hangups(line: str) -> None:
    with pytest.raises(ChannelHungUp):
        parse_result(line)


@pytest.mark.parametrize("line", ["510 Invalid or unknown command", "520 Invalid command syntax"])
def test_parse_result_reports_refusals(line: str) -> None:
    with pytest.raises(AgiProtocolError, match=line[:3]):
        parse_result(line)


def test_parse_env_line() -> None:
    assert parse_env_line("agi_callerid: +33 6 12\n") == ("agi_callerid", "+33 6 12")
    assert parse_env_line("agi_request: agi://h:4573/x\n") == ("agi_request", "agi://h:4573/x")
    assert parse_env_line("\n") is None


# ---- the session logic, on a mocked channel (pytest-mock is for the AGI channel only) ------

class _ScriptedSession(AgiSession):
    """An AgiSession whose wire is a mock: records command lines, replies as scripted."""

    def __init__(self, exchange: object, ext: str = "1001"):
        self.env = {"agi_arg_1": ext, "agi_extension": "s"}
        self._exchange = exchange  # type: ignore[method-assign,assignment]


def _sent(exchange: Mock) -> list[list[str]]:
    return [_words(call.args[0]) for call in exchange.call_args_list]


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


# ---- EXEC MSet: the decision's variables in one command ---------------------------------

MSET_HOSTILE = ['say "hi"', "a\\b\\", "+336,1,U(evil)", "a=b=c", "${X}$[1+1]", "{n}}{",
                "Zo\u00e9 \u260e", "((x", "x)y))", "[a]]b[", "a|b;c'd`e&f", "end\\",
                'x,CALLROUTE_EVIL=1', "  two  ", ',\\"()[]=$' * 60, "\\" * 3000]


def test_mset_values_survive_both_of_asterisks_parsers() -> None:
    """Asterisk's AGI parser, then MSet's separate_args (re-implemented in
    tests/fake_asterisk.py and checked against the real PBX in
    tests/e2e/test_variable_transport.py): every pair comes back as sent."""
    from agi.protocol import set_variables_commands
    from tests.fake_asterisk import set_pairs

    pairs = [(f"CALLROUTE_V{i}", value) for i, value in enumerate(MSET_HOSTILE)]
    commands = set_variables_commands(pairs)
    assert all(len(line.encode()) < AGI_BUF_LEN - 1 for line in commands)
    got = set_pairs([_words(line) for line in commands])
    assert [name for name, _ in got] == [name for name, _ in pairs]
    for (name, sent), (_, held) in zip(pairs, got, strict=True):
        assert sent.startswith(held) and (held == sent or len(sent) > 1000), name
    assert "CALLROUTE_EVIL" not in dict(got)


def test_a_whole_decision_is_one_mset_status_last() -> None:
    from agi.protocol import set_variables_commands

    pairs = [(name, "x,y") for name in v.ALL]
    (command,) = set_variables_commands(pairs)
    assert mset_pairs(_words(command)) == pairs


def test_mset_refuses_a_name_that_is_not_a_variable() -> None:
    from agi.protocol import set_variables_commands

    with pytest.raises(ValueError):
        set_variables_commands([("CALLROUTE_X=1,Y", "v")])
