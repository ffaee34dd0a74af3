"""CLI parsing: the exact command syntax of the issue, and one-line errors with exit 2.

Parsing is checked without Redis: a bad command line must be refused before any
connection is attempted (the store is never even configured in these tests).
"""

from __future__ import annotations

import argparse

import pytest

from agi import cli
from agi.cli import UsageError, build_parser


def parse(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(list(argv)))


@pytest.mark.parametrize(("argv", "expected"), [
    (["ext", "add", "1001"],
     {"group": "ext", "action": "add", "ext": "1001", "device": None, "mailbox": None,
      "did": None}),
    (["ext", "add", "1001", "--device", "PJSIP/1001", "--device", "PJSIP/1001b",
      "--mailbox", "1001@default", "--did", "+33142685301"],
     {"group": "ext", "action": "add", "ext": "1001", "device": ["PJSIP/1001", "PJSIP/1001b"],
      "mailbox": "1001@default", "did": "+33142685301"}),
    (["ext", "remove", "1001"], {"group": "ext", "action": "remove", "ext": "1001"}),
    (["ext", "show", "1001"], {"group": "ext", "action": "show", "ext": "1001", "json": False}),
    (["ext", "show", "1001", "--json"],
     {"group": "ext", "action": "show", "ext": "1001", "json": True}),
    (["ext", "list"], {"group": "ext", "action": "list", "json": False}),
    (["ext", "list", "--json"], {"group": "ext", "action": "list", "json": True}),
    (["forward", "on", "1001", "0612345678"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      "caller_id": None, "require_keypress": None}),
    (["forward", "on", "1001", "0612345678", "--caller-id", "company", "--require-keypress"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      "caller_id": "company", "require_keypress": True}),
    (["forward", "on", "1001", "0612345678", "--caller-id", "original",
      "--no-require-keypress"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      "caller_id": "original", "require_keypress": False}),
    (["forward", "off", "1001"], {"group": "forward", "action": "off", "ext": "1001"}),
    (["device", "add", "1001", "0612345678"],
     {"group": "device", "action": "add", "ext": "1001", "number": "0612345678"}),
    (["device", "remove", "1001", "0612345678"],
     {"group": "device", "action": "remove", "ext": "1001", "number": "0612345678"}),
    (["company", "set", "+33142685300"],
     {"group": "company", "action": "set", "number": "+33142685300", "name": None}),
    (["company", "set", "+33142685300", "--name", "Acme SARL"],
     {"group": "company", "action": "set", "number": "+33142685300", "name": "Acme SARL"}),
], ids=lambda argv: " ".join(argv) if isinstance(argv, list) else None)
def test_commands_parse(argv: list[str], expected: dict[str, object]) -> None:
    assert parse(*argv) == expected


def test_every_parsed_command_has_a_handler() -> None:
    groups = {("ext", a) for a in ("add", "remove", "show", "list")} | {
        ("forward", "on"), ("forward", "off"), ("device", "add"), ("device", "remove"),
        ("company", "set")}
    assert set(cli.COMMANDS) == groups


def subcommand(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    """The parser of `callroute PATH...` (argparse keeps them in its subparsers action)."""
    for name in path:
        group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = group.choices[name]
    return parser


def test_keypress_is_a_boolean_optional_action() -> None:
    """Both spellings exist, and neither given means 'keep the stored setting' (None)."""
    actions = {a.dest: a for a in subcommand(build_parser(), "forward", "on")._actions}
    assert isinstance(actions["require_keypress"], argparse.BooleanOptionalAction)
    assert actions["require_keypress"].option_strings == ["--require-keypress",
                                                          "--no-require-keypress"]
    assert actions["require_keypress"].default is None


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: group"),
    (["ext"], "the following arguments are required: action"),
    (["ext", "add"], "the following arguments are required: ext"),
    (["ext", "rename", "1001"], "invalid choice: 'rename'"),
    (["forward", "on", "1001"], "the following arguments are required: number"),
    (["forward", "on", "1001", "0612345678", "--caller-id", "boss"],
     "argument --caller-id: invalid choice: 'boss'"),
    (["forward", "on", "1001", "0612345678", "--keypress"], "unrecognized arguments"),
    (["forward", "off"], "the following arguments are required: ext"),
    (["device", "add", "1001"], "the following arguments are required: number"),
    (["company", "set"], "the following arguments are required: number"),
    (["ext", "show", "1001", "--yaml"], "unrecognized arguments: --yaml"),
    (["nonsense"], "invalid choice: 'nonsense'"),
], ids=lambda argv: " ".join(argv) if isinstance(argv, list) else None)
def test_bad_arguments_raise_usage_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        build_parser().parse_args(argv)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("argv", [
    ["forward", "on", "1001"],
    ["ext", "list", "--csv"],
    ["forward", "on", "1001", "0612345678", "--caller-id", "x"],
], ids=" ".join)
def test_main_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("callroute: error: ")
    assert err.rstrip().endswith("--help')")


def test_config_error_exits_2(capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_COUNTRY", "ZZ")
    assert cli.main(["ext", "list"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "callroute: error: CALLROUTE_COUNTRY 'ZZ' is not an ISO region "
                              "code such as FR or US\n")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["forward", "on", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--require-keypress, --no-require-keypress" in out
    assert "--caller-id {original,company}" in out
