"""Asterisk's own AGI argument parsing, re-implemented so tests see each command exactly
as Asterisk would: res_agi.c's parse_args() and fgets() loop, and the argument splitting
MSet uses (main/app.c). That is the only way to prove a hostile value can never become a
second command or an extra argument.
"""

from __future__ import annotations

# res_agi.c: MAX_ARGS; words past it are dropped with a warning.
MAX_ARGS = 128
# res_agi.c: AGI_BUF_LEN. fgets() reads at most this minus one byte per command line;
# the rest of a longer line would be read as the NEXT command.
AGI_BUF_LEN = 2048


def parse_args(line: str) -> list[str]:
    """Split one AGI command line into words, exactly like res_agi.c parse_args().

    Whitespace (space or tab) ends a word unless inside quotes or escaped; `"` toggles
    quoting unless escaped and, when it opens a quote after whitespace, starts a word
    (so `""` is an empty word); `\\` escapes the next character.
    """
    words: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                current = _start_word(words, current)
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            current = _end_word(words, current)
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            if len(words) + (current is not None) >= MAX_ARGS - 1:
                continue
            current = _start_word(words, current)
            whitespace = False
        assert current is not None
        current.append(ch)
        escaped = False
    _end_word(words, current)
    return words


def separate_args(data: str, delim: str, max_args: int) -> list[str]:
    """Asterisk's __ast_app_separate_args() with remove_chars (main/app.c), which MSet
    uses twice: `,` between pairs (24 at most), then `=` within a pair (2).

    `delim` splits outside quotes, parentheses and brackets; `"` toggles quoting and is
    dropped; `\\` is dropped and makes the next character literal. Once max_args - 1
    arguments are split off, the rest is the last argument AS IS (no unescaping).
    """
    args: list[str] = []
    paren = bracket = 0
    quoted = False
    i = 0
    current: list[str] = []
    split_at_end = False
    while i < len(data) and len(args) < max_args - 1:
        ch = data[i]
        split_at_end = False
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif ch == "[":
            bracket += 1
        elif ch == "]":
            bracket = max(0, bracket - 1)
        elif ch == '"':
            quoted = not quoted
            i += 1
            continue
        elif ch == "\\":
            i += 1
            if i < len(data):
                current.append(data[i])
            i += 1
            continue
        elif ch == delim and not paren and not quoted and not bracket:
            args.append("".join(current))
            current = []
            split_at_end = True
            i += 1
            continue
        current.append(ch)
        i += 1
    if len(args) < max_args - 1:
        if current or split_at_end:
            args.append("".join(current))
    else:
        args.append(data[i:])
    return args


def mset_pairs(words: list[str]) -> list[tuple[str, str]] | None:
    """The (name, value) pairs an `EXEC MSet "..."` command sets, as Asterisk's MSet
    splits them; None if the command is not one."""
    if words[:2] != ["EXEC", "MSet"] or len(words) != 3:
        return None
    pairs = []
    for item in separate_args(words[2], ",", 24):
        pair = separate_args(item, "=", 2)
        if len(pair) == 2:
            pairs.append((pair[0], pair[1]))
    return pairs


def set_pairs(commands: list[list[str]]) -> list[tuple[str, str]]:
    """(name, value) of every variable the commands set (SET VARIABLE or EXEC MSet)."""
    found: list[tuple[str, str]] = []
    for words in commands:
        if words[:2] == ["SET", "VARIABLE"] and len(words) == 4:
            found.append((words[2], words[3]))
        elif (pairs := mset_pairs(words)) is not None:
            found.extend(pairs)
    return found


def variables(commands: list[list[str]]) -> dict[str, str]:
    """The channel variables a session's commands set, by name."""
    return dict(set_pairs(commands))


def _start_word(words: list[str], current: list[str] | None) -> list[str]:
    _end_word(words, current)
    return []


def _end_word(words: list[str], current: list[str] | None) -> None:
    if current is not None:
        words.append("".join(current))


def split_command_lines(data: bytes) -> list[bytes]:
    """The command lines Asterisk's fgets() loop would read from `data` (newline ends one).

    A line longer than AGI_BUF_LEN - 1 bytes is cut there and its tail becomes another
    command, as in res_agi.c; that is why the agent must keep every line short.
    """
    lines: list[bytes] = []
    for raw in data.split(b"\n"):
        while len(raw) > AGI_BUF_LEN - 2:
            lines.append(raw[:AGI_BUF_LEN - 1])
            raw = raw[AGI_BUF_LEN - 1:]
        lines.append(raw)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def command_words(command: str) -> list[str]:
    """The words Asterisk reads from one command the agent sends, which must be ONE line."""
    lines = split_command_lines((command + "\n").encode())
    assert len(lines) == 1, f"{command!r} is read as {len(lines)} commands"
    return parse_args(lines[0].decode())
