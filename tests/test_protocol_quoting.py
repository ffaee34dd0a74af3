"""The AGI command encoding, checked through Asterisk's own parser (re-implemented).

pyst2 quotes nothing, so a `"` or a newline in a value could start a second command
(an EXEC Dial to a premium number). These tests parse every command we produce the way
res_agi.c does and require exactly one line of exactly four words.
"""

from __future__ import annotations

import pytest

from agi import variables as v
from agi.protocol import (
    MAX_QUOTED_BYTES,
    MAX_VALUE_LENGTH,
    AgiProtocolError,
    ChannelHungUp,
    parse_env_line,
    parse_result,
    set_variable_command,
    verbose_command,
)
from tests.asterisk_parser import (
    AGI_BUF_LEN,
    command_words,
    mset_pairs,
    parse_args,
    split_command_lines,
)

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


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in HOSTILE_VALUES],
                         ids=[case[0] for case in HOSTILE_VALUES])
def test_set_variable_is_one_command_of_four_words(value: str, expected: str) -> None:
    command = set_variable_command(v.DIAL, value)
    assert "\n" not in command and "\r" not in command
    assert command_words(command) == ["SET", "VARIABLE", v.DIAL, expected]


@pytest.mark.parametrize("value", ['"' * 1024, "\\" * 1024, "\ufffd" * 1024,
                                   "\ufffd" * 700 + "\tEXEC\tDial\tPJSIP/itsp/00881"],
                         ids=["quotes", "backslashes", "3-byte-chars", "tab-tail"])
def test_huge_value_never_overflows_asterisks_line_buffer(value: str) -> None:
    """res_agi.c reads 2047 bytes per line: a longer command's tail becomes a new command."""
    command = set_variable_command(v.REASON, value)
    assert len(command.encode()) + 1 <= AGI_BUF_LEN - 1
    words = command_words(command)
    assert words[:3] == ["SET", "VARIABLE", v.REASON]
    assert len(words) == 4
    assert value.startswith(words[3])
    assert len(words[3]) >= MAX_QUOTED_BYTES // 3 - 1


def test_long_quotes_are_cut_to_the_byte_budget() -> None:
    words = command_words(set_variable_command(v.REASON, '"' * 1024))
    assert words[3] == '"' * (MAX_QUOTED_BYTES // 2)


@pytest.mark.parametrize("name", ["", "1ABC", "A B", "A\nEXEC", 'A"', "___A", "A" * 65, "A-B"])
def test_bad_variable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a channel variable name"):
        set_variable_command(name, "x")


@pytest.mark.parametrize("name", ["A", "__CALLROUTE_X", "_a1", "A" * 64])
def test_good_variable_names_pass(name: str) -> None:
    assert command_words(set_variable_command(name, "1")) == ["SET", "VARIABLE", name, "1"]


def test_verbose_is_one_command_of_three_words() -> None:
    assert command_words(verbose_command(INJECTION, 1)) == [
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


# ---- EXEC MSet: the decision's variables in one command ---------------------------------

MSET_HOSTILE = ['say "hi"', "a\\b\\", "+336,1,U(evil)", "a=b=c", "${X}$[1+1]", "{n}}{",
                "Zo\u00e9 \u260e", "((x", "x)y))", "[a]]b[", "a|b;c'd`e&f", "end\\",
                'x,CALLROUTE_EVIL=1', "  two  ", ',\\"()[]=$' * 60, "\\" * 3000]


def test_mset_values_survive_both_of_asterisks_parsers() -> None:
    """Asterisk's AGI parser, then MSet's separate_args (re-implemented in
    tests/fake_asterisk.py and checked against the real PBX in
    tests/e2e/test_variable_transport.py): every pair comes back as sent."""
    from agi.protocol import set_variables_commands
    from tests.asterisk_parser import set_pairs

    pairs = [(f"CALLROUTE_V{i}", value) for i, value in enumerate(MSET_HOSTILE)]
    commands = set_variables_commands(pairs)
    assert all(len(line.encode()) < AGI_BUF_LEN - 1 for line in commands)
    got = set_pairs([command_words(line) for line in commands])
    assert [name for name, _ in got] == [name for name, _ in pairs]
    for (name, sent), (_, held) in zip(pairs, got, strict=True):
        assert sent.startswith(held) and (held == sent or len(sent) > 1000), name
    assert "CALLROUTE_EVIL" not in dict(got)


def test_a_whole_decision_is_one_mset_status_last() -> None:
    from agi.protocol import set_variables_commands

    pairs = [(name, "x,y") for name in v.ALL]
    (command,) = set_variables_commands(pairs)
    assert mset_pairs(command_words(command)) == pairs


def test_mset_refuses_a_name_that_is_not_a_variable() -> None:
    from agi.protocol import set_variables_commands

    with pytest.raises(ValueError):
        set_variables_commands([("CALLROUTE_X=1,Y", "v")])
