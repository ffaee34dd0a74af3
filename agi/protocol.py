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


class AgiSession:
    """What the routing code needs from a channel; process AGI and FastAGI implement it."""

    env: dict[str, str]

    def _exchange(self, command: str) -> str:
        """Send one command line, return Asterisk's reply line."""
        raise NotImplementedError

    def argument(self, number: int) -> str:
        return self.env.get(f"agi_arg_{number}", "")

    def set_variable(self, name: str, value: str) -> None:
        parse_result(self._exchange(set_variable_command(name, value)))

    def verbose(self, message: str, level: int = 1) -> None:
        parse_result(self._exchange(verbose_command(message, level)))
