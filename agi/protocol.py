"""The AGI wire protocol, made safe: quoting, result lines, and the session API.

Asterisk splits an AGI command into words on spaces; `"` groups a word and `\\`
escapes the next character (res_agi.c parse_args). A newline ends the command. So
a value is safe once control characters are removed and `\\` and `"` are escaped:
it can then only ever be one argument of the command it was meant for.
"""

import re

_VARIABLE_NAME = re.compile(r"_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}")
# Longest value we pass to Asterisk; longer ones are cut (values we set are short).
MAX_VALUE_LENGTH = 1024


class ChannelHungUp(Exception):
    """The caller hung up or Asterisk went away: stop quietly."""


class AgiProtocolError(Exception):
    """Asterisk rejected a command (510/520): a bug on our side, never the caller's."""


# Asterisk reads each command line into a 2048-byte buffer (res_agi.c AGI_BUF_LEN) and
# reads the rest of a longer line as a NEW command. A quoted value, escapes and UTF-8
# included, stays under this many bytes, so a whole command always fits.
MAX_QUOTED_BYTES = 1900


def quote(value: str) -> str:
    """One AGI argument holding exactly `value` (minus control characters, cut if huge)."""
    out: list[str] = []
    size = 0
    for ch in value[:MAX_VALUE_LENGTH]:
        if not ch.isprintable():
            continue
        piece = "\\" + ch if ch in '\\"' else ch
        size += len(piece.encode())
        if size > MAX_QUOTED_BYTES:
            break
        out.append(piece)
    return '"' + "".join(out) + '"'


def set_variable_command(name: str, value: str) -> str:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValueError(f"not a channel variable name: {name!r}")
    return f"SET VARIABLE {name} {quote(value)}"


def verbose_command(message: str, level: int) -> str:
    return f"VERBOSE {quote(message)} {int(level)}"


# MSet (Asterisk's pbx_builtin_setvar_multiple) splits its argument into at most 24
# name=value pairs with ast_app_separate_args(): `,` separates pairs unless inside
# quotes, parentheses or brackets, and `\\` makes the next character literal. The
# value part of each pair (everything after its first `=`) is taken as is. So a value
# is one literal value once each of these characters is escaped with a backslash.
_MSET_SPECIAL = re.compile(r'[\\",()\[\]]')
MSET_MAX_PAIRS = 20


def _quoted_size(text: str) -> int:
    """Bytes `text` takes inside quote()'s quotes (every backslash and quote escaped)."""
    return len(text.encode()) + text.count("\\") + text.count('"')


def _mset_pair(name: str, value: str) -> str:
    """`name=value` for MSet, value escaped and cut so the quoted command still fits."""
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValueError(f"not a channel variable name: {name!r}")
    value = value[:MAX_VALUE_LENGTH]
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    pair = f"{name}={_MSET_SPECIAL.sub(_escape, value)}"
    if _quoted_size(pair) <= MAX_QUOTED_BYTES:
        return pair
    out = [name, "="]  # too long: cut between characters, never inside an escape
    size = len(name) + 1
    for ch in value:
        piece = "\\" + ch if _MSET_SPECIAL.match(ch) else ch
        size += _quoted_size(piece)
        if size > MAX_QUOTED_BYTES:
            break
        out.append(piece)
    return "".join(out)


def _escape(match: re.Match) -> str:
    return "\\" + match.group()


def set_variables_commands(pairs: list[tuple[str, str]]) -> list[str]:
    """As few `EXEC MSet` lines as set every pair, in order (one, unless the values are
    too long for one 2 KB AGI line). Each line is one AGI argument (quote())."""
    commands: list[str] = []
    group: list[str] = []
    size = 0
    for name, value in pairs:
        pair = _mset_pair(name, value)
        grown = _quoted_size(pair) + 1
        if group and (size + grown > MAX_QUOTED_BYTES or len(group) == MSET_MAX_PAIRS):
            commands.append(_mset_command(group))
            group, size = [], 0
        group.append(pair)
        size += grown
    if group:
        commands.append(_mset_command(group))
    return commands


def _mset_command(pairs: list[str]) -> str:
    data = ",".join(pairs)
    return 'EXEC MSet "' + data.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(command: str) -> bytes:
    """A command as sent on the wire: the newline ends it."""
    return command.encode() + b"\n"


def parse_result(line: str) -> str:
    """The `result=` value of a 200 reply; raise on hang-up or error replies."""
    line = line.strip()
    if not line or line == "HANGUP" or line.startswith("511"):
        raise ChannelHungUp(line or "end of input")
    if line.startswith("200"):
        for word in line.split()[1:]:
            if word.startswith("result="):
                return word[len("result="):]
        return ""
    raise AgiProtocolError(line[:200])


def parse_env_line(line: str) -> tuple[str, str] | None:
    """`agi_key: value` -> (key, value); None for the blank line that ends the env."""
    line = line.rstrip("\r\n")
    if not line:
        return None
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


# A 520 reply to a malformed command is multi-line: "520-Invalid command syntax.
# Proper usage follows:", the usage text, then "520 End of proper usage.". Reading
# only its first line would leave the rest to be taken as the replies to the next
# commands. Asterisk's longest usage text is a few dozen lines.
MAX_USAGE_LINES = 200


class ReplyAssembler:
    """Collects the lines of ONE reply; the same rule for every transport (sync and async)."""

    __slots__ = ("first", "lines")

    def __init__(self) -> None:
        self.first: str | None = None
        self.lines = 0

    def feed(self, line: str) -> str | None:
        """The reply's first line once the reply is complete, else None (read another)."""
        if self.first is None:
            self.first = line
            return None if line.startswith("520-") else line
        self.lines += 1
        if line.startswith("520 ") or not line:
            return self.first
        if self.lines >= MAX_USAGE_LINES:
            raise AgiProtocolError("endless 520 usage text")
        return None


class AgiSession:
    """What the routing code needs from a channel; process AGI and FastAGI implement it."""

    env: dict[str, str]

    def _send(self, command: str) -> None:
        """Send one command line."""
        raise NotImplementedError

    def _readline(self) -> str:
        """One line from Asterisk ("" at end of input)."""
        raise NotImplementedError

    def _exchange(self, command: str) -> str:
        """Send one command line, return Asterisk's reply (its first line)."""
        self._send(command)
        reply = ReplyAssembler()
        while (line := reply.feed(self._readline())) is None:
            pass
        return line

    def argument(self, number: int) -> str:
        return self.env.get(f"agi_arg_{number}", "")

    def command(self, command: str) -> str:
        """Run a command built by this module; its `result=` value."""
        return parse_result(self._exchange(command))

    def set_variable(self, name: str, value: str) -> None:
        self.command(set_variable_command(name, value))

    def set_variables(self, pairs: list[tuple[str, str]]) -> None:
        for command in set_variables_commands(pairs):
            check_exec_result(self.command(command))

    def verbose(self, message: str, level: int = 1) -> None:
        self.command(verbose_command(message, level))


def check_exec_result(result: str) -> None:
    """EXEC answers 200 even when the application is missing (result=-2)."""
    if result == "-2":
        raise AgiProtocolError("Asterisk has no MSet application")
