"""A small fake Asterisk peer: FastAGI sessions as Asterisk opens them, and
`FakeAsterisk`, which runs `callroute-agi` the way Asterisk does (environment block on
stdin, one reply per command line) and records every command, each parsed by
tests/asterisk_parser.py as Asterisk would. Every run has a hard timeout: a hung agent
fails its test, never the suite.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agi import variables as v
from tests.asterisk_parser import parse_args, set_pairs, split_command_lines

OK_REPLY = "200 result=1"
DEAD_CHANNEL_REPLY = "511 Command Not Permitted on a dead channel or intercepted channel"
HANGUP_REPLY = "HANGUP"
DEFAULT_TIMEOUT_S = 10.0


# The AGI environment of a real call, as the test PBX sends it (tests/e2e/
# test_agi_environment.py records one in each AGI mode and compares it with this). The
# dialplan runs the agent inside a Gosub, so the channel is at extension `s` of
# `callroute-inbound`: the extension being routed arrives only as the AGI argument.
INBOUND_CONTEXT = "callroute-inbound"
INBOUND_EXTENSION = "s"
INBOUND_PRIORITY = "32"  # of the AGI() line; moves when callroute-inbound does
CHANNEL = "PJSIP/inbound-00000001"
CALLER = "+33611111111"  # the e2e caller (tests/harness/calls.py)
CALLER_NAME = "Caller"


def agi_environment(request: str, args: Sequence[str], *, dnid: str,
                    network_script: str | None = None) -> dict[str, str]:
    """What Asterisk sends before the first command, in its order (res_agi.c
    setup_env(); FastAGI first sends agi_network and agi_network_script)."""
    network = {} if network_script is None else {
        "agi_network": "yes", "agi_network_script": network_script}
    return {
        **network,
        "agi_request": request,
        "agi_channel": CHANNEL,
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": "1700000000.1",
        "agi_version": "22.10.1",
        "agi_callerid": CALLER,
        "agi_calleridname": CALLER_NAME,
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": dnid,
        "agi_rdnis": "unknown",
        "agi_context": INBOUND_CONTEXT,
        "agi_extension": INBOUND_EXTENSION,
        "agi_priority": INBOUND_PRIORITY,
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000",
        **{f"agi_arg_{n}": arg for n, arg in enumerate(args, start=1)},
    }


def fastagi_request(port: int, script: str, args: Sequence[str], dnid: str = "1001") -> bytes:
    """The bytes Asterisk sends on connecting for `AGI(agi://127.0.0.1:PORT/SCRIPT,ARGS)`."""
    env = agi_environment(f"agi://127.0.0.1:{port}/{script}", args, dnid=dnid,
                          network_script=script)
    return "".join(f"{key}: {value}\n" for key, value in env.items()).encode() + b"\n"


def agi_session(port: int, script: str = "route", args: tuple[str, ...] = ("1001",),
                timeout: float = 5.0, *, host: str = "127.0.0.1",
                source: str | None = None) -> list[list[str]]:
    """One FastAGI request as Asterisk makes it; every command parsed, all answered 200.
    `source` is the loopback address the request comes from (allowlist tests)."""
    with socket.create_connection((host, port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        stream = sock.makefile("rwb")
        stream.write(fastagi_request(port, script, args))
        stream.flush()
        return answer_all(stream)


def answer_all(stream: IO[bytes]) -> list[list[str]]:
    """Every command until the agent closes, each parsed and answered 200."""
    commands = []
    while line := stream.readline():
        commands.append(parse_args(line.decode().rstrip("\n")))
        stream.write(b"200 result=1\n")
        stream.flush()
    return commands


@dataclass
class AgiRun:
    """What one AGI session did, as Asterisk saw it."""

    commands: list[list[str]]
    raw_lines: list[str]
    returncode: int
    stderr: str
    elapsed: float
    # Seconds from process start to the SET VARIABLE CALLROUTE_STATUS line (None if never).
    status_at: float | None
    timed_out: bool

    def set_variables(self) -> list[tuple[str, str]]:
        """(name, value) of every variable set (SET VARIABLE or EXEC MSet), in order."""
        return set_pairs(self.commands)

    def variables(self) -> dict[str, str]:
        """Every decision variable (v.ALL) as callroute-inbound then reads it: one never
        set is empty (the agent sends only non-empty ones)."""
        return {name: "" for name in v.ALL} | {
            name: value for name, value in self.set_variables() if name in v.ALL}

    def leg_variables(self) -> dict[str, str]:
        """The inherited __CALLROUTE_LEG_* variables set (none without an external leg)."""
        return {name: value for name, value in self.set_variables() if name in v.LEG_ALL}

    def verbs(self) -> list[str]:
        """The first word(s) of every command: 'SET VARIABLE', 'EXEC MSet', 'VERBOSE'..."""
        return [" ".join(words[:2]) if words[:1] in (["SET"], ["EXEC"]) else words[0]
                for words in self.commands if words]


@dataclass
class FakeAsterisk:
    """Runs `callroute-agi` like Asterisk's process AGI and answers its commands.

    hangup_after: after this many commands got `200 result=1`, answer the rest with
        `hangup_reply` (Asterisk sends `HANGUP`, then 511 on a dead channel).
    close_after: after this many commands, close the agent's stdin (Asterisk went away).
    sighup_after: after this many commands, send SIGHUP (Asterisk's hang-up signal), then
        answer normally.
    close_output_after: after this many commands, stop reading the agent's output (close
        the pipe) but answer the last one, so the agent's next write fails with EPIPE.
    """

    executable: Path
    env: dict[str, str]
    timeout: float = DEFAULT_TIMEOUT_S
    hangup_after: int | None = None
    hangup_reply: str = HANGUP_REPLY
    close_after: int | None = None
    sighup_after: int | None = None
    close_output_after: int | None = None
    extra_agi_env: dict[str, str] = field(default_factory=dict)

    def agi_environment(self, ext: str, argv: list[str] | None = None) -> list[str]:
        env = agi_environment(str(self.executable), [ext] if argv is None else argv, dnid=ext)
        return [f"{key}: {value}" for key, value in (env | self.extra_agi_env).items()]

    def run(self, ext: str, argv: list[str] | None = None) -> AgiRun:
        argv = [ext] if argv is None else argv
        started = time.monotonic()
        proc = subprocess.Popen([str(self.executable), *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.env, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        watchdog = threading.Timer(self.timeout, kill)
        watchdog.start()
        stderr_chunks: list[bytes] = []
        drain = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))
        drain.start()
        try:
            commands, raw, status_at = self._converse(proc, ext, argv, started)
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            drain.join(self.timeout)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                _close_quietly(pipe)
        return AgiRun(commands=commands, raw_lines=raw, returncode=proc.returncode,
                      stderr=b"".join(stderr_chunks).decode("utf-8", "replace"),
                      elapsed=time.monotonic() - started, status_at=status_at,
                      timed_out=timed_out.is_set())

    def _converse(self, proc: subprocess.Popen, ext: str, argv: list[str],
                  started: float) -> tuple[list[list[str]], list[str], float | None]:
        commands: list[list[str]] = []
        raw: list[str] = []
        status_at: float | None = None
        environment = "".join(line + "\n" for line in self.agi_environment(ext, argv)) + "\n"
        if not _write(proc, environment):
            return commands, raw, status_at
        pending = b""
        while True:
            chunk = proc.stdout.readline()
            if not chunk:
                break
            pending += chunk
            if not pending.endswith(b"\n"):
                continue
            for line in split_command_lines(pending):
                text = line.decode("utf-8", "replace")
                raw.append(text)
                words = parse_args(text)
                commands.append(words)
                if v.STATUS in dict(set_pairs([words])):
                    status_at = time.monotonic() - started
                if not self._reply(proc, len(commands)):
                    return commands, raw, status_at
            pending = b""
        return commands, raw, status_at

    def _reply(self, proc: subprocess.Popen, count: int) -> bool:
        """Answer command number `count`; False once the agent's stdin is closed."""
        if self.close_after is not None and count > self.close_after:
            _close_quietly(proc.stdin)
            return True  # keep reading what the agent still writes
        if self.sighup_after is not None and count == self.sighup_after:
            os.kill(proc.pid, signal.SIGHUP)
        if self.close_output_after is not None and count == self.close_output_after:
            _close_quietly(proc.stdout)
            _write(proc, OK_REPLY + "\n")
            return False
        dead = self.hangup_after is not None and count > self.hangup_after
        return _write(proc, (self.hangup_reply if dead else OK_REPLY) + "\n")


def _write(proc: subprocess.Popen, text: str) -> bool:
    if proc.stdin.closed:
        return True
    try:
        proc.stdin.write(text.encode())
        proc.stdin.flush()
    except (BrokenPipeError, ValueError):
        return False
    return True


def _close_quietly(pipe: IO[bytes] | None) -> None:
    if pipe is None:
        return
    try:
        pipe.close()
    except OSError:
        pass


def console_script(name: str) -> Path:
    """A console script from the venv running the tests: the installed entry point."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: install the package (pip install -e .)")
    return path


def agi_executable() -> Path:
    return console_script("callroute-agi")
