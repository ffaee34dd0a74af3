"""`callroute doctor`: what is wrong, in plain sentences (or --json), exit 0 or 1.

This module gathers (the settings, Redis, the stored extensions, a FastAGI health
request, Asterisk's console) and prints; agi/doctor_checks.py decides. Never imported on
the call path. Nothing here writes, and nothing printed holds a secret: the Redis URL
is redacted, and store errors come from AdminStore, which redacts its own.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import time

from agi import config as config_module
from agi import doctor_checks as dc
from agi.admin.views import extension_view
from agi.config import Config, ConfigError
from agi.store import AdminStore, StoreError

EXIT_FINE, EXIT_ATTENTION = 0, 1
PROBE_TIMEOUT_S = 2.0  # a FastAGI server answers health in milliseconds
RX_TIMEOUT_S = 10.0  # one `asterisk -rx`
_LEVEL_WORDS = {dc.OK: "ok", dc.WARN: "WARN", dc.PROBLEM: "PROBLEM"}


def _address(text: str) -> tuple[str, int]:
    from agi.fastagi import parse_listen  # the FastAGI server's own HOST:PORT rule

    try:
        return parse_listen(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be HOST:PORT with an IP address, "
                                         "e.g. 127.0.0.1:4573") from None


def add_parser(top: argparse._SubParsersAction) -> None:
    doctor = top.add_parser("doctor", help="say what is wrong: settings, Redis, extensions, "
                                           "FastAGI, Asterisk (exit 1 if anything is)")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--fastagi", type=_address, metavar="HOST:PORT",
                        help="also ask the FastAGI server there to run its health script")
    doctor.add_argument("--asterisk", action="store_true",
                        help="also ask Asterisk's console whether the dialplan include, "
                             "CALLROUTE_AGI and the extensions' mailboxes are there")
    doctor.add_argument("--asterisk-cmd", default="asterisk", metavar="COMMAND",
                        help="how to reach the console; '-rx CMD' is appended (default: "
                             "asterisk), e.g. 'asterisk -C /etc/asterisk/asterisk.conf'")
    doctor.set_defaults(action="run")


def run(args: argparse.Namespace) -> int:
    findings = diagnose(args)
    attention = [f for f in findings if f.level != dc.OK]
    if args.json:
        print(json.dumps({"ok": not attention,
                          "problems": sum(f.level == dc.PROBLEM for f in findings),
                          "warnings": sum(f.level == dc.WARN for f in findings),
                          "findings": [f.to_json() for f in findings]}, indent=2))
    else:
        for finding in findings:
            print(f"{_LEVEL_WORDS[finding.level]:<8} {finding.check:<10} "
                  f"{_printable(finding.sentence)}")
        print(_summary(findings))
    return EXIT_ATTENTION if attention else EXIT_FINE


def _printable(text: str) -> str:
    """`text` with control characters escaped: a sentence may quote an extension name or
    a DID read from Redis, and a terminal must not run escape sequences planted there."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _summary(findings: list[dc.Finding]) -> str:
    counts = [(sum(f.level == level for f in findings), word) for level, word in
              ((dc.PROBLEM, "problem"), (dc.WARN, "warning"))]
    words = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in counts if n]
    return f"{' and '.join(words)}: see above." if words else "Everything is fine."


def diagnose(args: argparse.Namespace, environ: dict[str, str] | None = None
             ) -> list[dc.Finding]:
    config, error = None, None
    try:
        config = config_module.load(environ)
    except ConfigError as exc:
        error = exc
    try:
        sources = config.sources if config else config_module.sources(environ)
    except ConfigError:  # the INI file itself can't be read: the error says so
        sources = {}
    findings = dc.configuration(config, error, sources)
    mailboxes: dict[str, list[str]] = {}
    if config is not None:
        found, mailboxes = _store(config)
        findings += found
    if args.fastagi:
        findings += dc.fastagi(args.fastagi, probe_fastagi(*args.fastagi))
    if args.asterisk:
        outputs, failure = ask_asterisk(args.asterisk_cmd)
        findings += dc.asterisk(args.asterisk_cmd, outputs, failure, mailboxes)
    return findings


def _store(config: Config) -> tuple[list[dc.Finding], dict[str, list[str]]]:
    """Redis, then everything stored; and the mailboxes in use (for the Asterisk check)."""
    try:
        store = AdminStore(config)
    except StoreError as exc:
        return dc.redis(config.redis_url, None, str(exc), config.timeout_ms), {}
    try:
        try:
            facts = dc.RedisFacts(*store.probe())
        except StoreError as exc:
            return dc.redis(config.redis_url, None, str(exc), config.timeout_ms), {}
        findings = dc.redis(config.redis_url, facts, "", config.timeout_ms)
        try:
            listed, stored = store.list_extensions(), store.stored_extensions()
            wrong_types = store.wrong_types([ext for ext in listed if ext not in stored])
            hashes = {ext: fields for ext, fields in store.all_extensions(
                sorted(set(listed) | set(stored), key=lambda e: (len(e), e))).items()
                if fields}
            company = store.get_company()
        except StoreError as exc:
            return findings + dc.unreadable(config.redis_url, str(exc)), {}
    finally:
        store.close()
    views = [extension_view(ext, fields, company, config) for ext, fields in hashes.items()]
    mailboxes: dict[str, list[str]] = {}
    for view in views:
        mailboxes.setdefault(view.mailbox, []).append(view.extension)
    findings += dc.schema_versions(hashes)
    findings += dc.index(listed, stored, config.prefix, wrong_types)
    findings += dc.extensions(views, config)
    findings += dc.did_map(hashes, company, config)
    return findings, mailboxes


def probe_fastagi(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> dc.FastAgiProbe:
    """Asterisk's side of a `health` request: the environment, then `200 result=1` to the
    one command the server sends back."""
    from agi.fastagi_session import HEALTH_VARIABLE, SCRIPT_HEALTH
    from agi.protocol import set_variable_command

    expected = set_variable_command(HEALTH_VARIABLE, "OK")
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"agi_network: yes\nagi_network_script: {SCRIPT_HEALTH}\n\n".encode())
            line = sock.makefile("rb").readline(512).decode("ascii", "replace").strip()
            elapsed = time.perf_counter() - started
            if line == expected:
                sock.sendall(b"200 result=1\n")
    except ConnectionRefusedError:
        return dc.FastAgiProbe(False, 0.0, "refused the connection (is callroute-fastagi "
                                           "running?)")
    except TimeoutError:
        return dc.FastAgiProbe(False, 0.0, f"did not answer within {timeout:g} s")
    except OSError as exc:
        return dc.FastAgiProbe(False, 0.0, f"can't be reached ({exc.strerror or exc})")
    if line == expected:
        return dc.FastAgiProbe(True, elapsed, "")
    if not line:
        return dc.FastAgiProbe(False, 0.0, "closed the connection without answering")
    return dc.FastAgiProbe(False, 0.0, f"answered {line[:80]!r}, not {expected!r}")


def ask_asterisk(command: str) -> tuple[dict[str, str], str]:
    """Each dc.RX_* question's answer, or ({}, why the console could not be asked)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return {}, f"the command can't be split into words ({exc})"
    outputs = {}
    for question in (dc.RX_DIALPLAN, dc.RX_GLOBALS, dc.RX_VOICEMAIL):
        try:
            proc = subprocess.run([*argv, "-rx", question], capture_output=True, text=True,
                                  timeout=RX_TIMEOUT_S, errors="replace")
        except FileNotFoundError:
            return {}, f"{argv[0] if argv else command!r} is not found"
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {}, str(exc)
        # asterisk -rx says "Unable to connect to remote asterisk" when the daemon is down.
        if proc.returncode != 0 or proc.stdout.startswith("Unable to connect"):
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            return {}, f"'{question}' exited with status {proc.returncode}" + (
                f": {detail[0][:200]}" if detail else "")
        outputs[question] = proc.stdout
    return outputs, ""
