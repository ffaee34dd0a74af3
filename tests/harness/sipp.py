"""SIPp peers: one class for every SIPp process the harness runs.

A `SippPeer` is one `sipp` process. Its command line is tests/harness/sippcmd.py's
defaults with the caller's overrides: an e2e phone handles one call with full traces
(the defaults); a load caller of the benchmark, the soak or the faults script places
N calls at a rate (`max_calls`, `options={"-r": ...}`, `traces=LOAD_TRACES`). What
each peer saw is parsed back from its own trace (tests/harness/siptrace.py).
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote

from tests.harness.procs import pid_alive, spawn, stop_popen, udp_bound
from tests.harness.sippcmd import (
    CALL_TRACES,
    HOST,
    SIPP,
    command,
    scenario_path,
    scenario_variables,
)
from tests.harness.siptrace import SipMessage, WireCalls, parse_message_log, wire_calls

# SIPp exit codes worth naming in failure messages.
EXIT_CODES = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error (for example the -timeout expired, with -timeout_error)",
    254: "fatal error binding a socket",
}

FLOW_SHOWN = 60  # messages of the flow in describe(); a load peer logs thousands

_URI_USER = re.compile(r"(?:sips?|tel):(?P<user>[^@;>?\s]+)", re.IGNORECASE)


def uri_user(value: str | None) -> str | None:
    """User part of the first sip:/sips:/tel: URI in a header value, %-decoded."""
    if not value:
        return None
    match = _URI_USER.search(value)
    return unquote(match.group("user")) if match else None


def from_number(msg: SipMessage) -> str | None:
    """The calling number shown in From (the caller ID a phone would display)."""
    return uri_user(msg.header("From"))


def pai_number(msg: SipMessage) -> str | None:
    """The number in P-Asserted-Identity, which carriers trust over From."""
    return uri_user(msg.header("P-Asserted-Identity"))


def diversion_number(msg: SipMessage) -> str | None:
    """The number in the first Diversion header: who forwarded the call."""
    return uri_user(msg.header("Diversion"))


class SippPeer:
    """One SIPp process; stop it by PID whatever happens.

    Usage::

        with SippPeer("desk1001", tmp_path) as desk:
            desk.start("uas_ring_answer", 5071, variables={"answer_delay_ms": "8000"})
            ...
            assert desk.wait(30) == 0, desk.describe()
            invite = desk.invites_received()[0]
    """

    def __init__(self, name: str, workdir: Path, *, sipp: str = SIPP) -> None:
        self.name = name
        self.workdir = Path(workdir)
        self.sipp = sipp
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.scenario: Path | None = None
        self.argv: list[str] = []
        # SIPp exits 0 on SIGTERM even mid-call, so an exit code read after stop()
        # means nothing; this flag lets describe() and callers tell.
        self.stopped_by_us = False
        self.message_file = self.workdir / f"{name}.messages.log"
        self.error_file = self.workdir / f"{name}.errors.log"
        self.log_file = self.workdir / f"{name}.actions.log"
        self.screen_file = self.workdir / f"{name}.screen.log"
        self.stat_file = self.workdir / f"{name}.stat.csv"
        self.output_file = self.workdir / f"{name}.out"

    # -- process ---------------------------------------------------------------------

    def start(
        self,
        scenario: str | Path,
        port: int,
        *,
        service: str | None = None,
        remote: str | None = None,
        variables: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        ready_timeout_s: float = 5.0,
        max_calls: int = 1,
        traces: Collection[str] = CALL_TRACES,
        options: Mapping[str, object] | None = None,
    ) -> SippPeer:
        """Run `sipp` on 127.0.0.1:`port`, and return once its SIP socket is bound.

        `remote` ("host:port") makes it a client (UAC) calling `sip:<service>@remote`;
        without it the scenario must start with a <recv> (UAS). `variables` become
        `-set NAME VALUE`. `timeout_s` is SIPp's own global timeout: past it SIPp
        exits non-zero by itself, so a lost peer can't outlive the test by much.
        `max_calls`: calls the peer handles before it exits (a carrier that refuses the
        first INVITE of a leg and answers its retry takes 2; a load caller, N).
        `traces` and `options`: see sippcmd.trace_options() and sippcmd.command().
        """
        if self.proc is not None:
            raise RuntimeError(f"SIPp peer {self.name} already started")
        path = scenario_path(scenario)
        variables = dict(variables or {})
        allowed = scenario_variables(path)
        unknown = sorted(set(variables) - allowed)
        if unknown:
            raise ValueError(
                f"{path.name} does not declare {unknown}; it accepts {sorted(allowed)}"
            )
        if path.stem == "uas_answer_press" and variables.get("digit", "1") not in {"1", "2", "3"}:
            raise ValueError("uas_answer_press plays only digit 1, 2 or 3 (one pcap each)")
        if udp_bound(port, (HOST, "0.0.0.0")):
            raise RuntimeError(f"UDP {HOST}:{port} is already in use; a stale peer?")

        self.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (self.message_file, self.error_file, self.log_file, self.screen_file,
                      self.stat_file, self.output_file):
            stale.unlink(missing_ok=True)
        files = {"msg": self.message_file, "err": self.error_file, "logs": self.log_file,
                 "screen": self.screen_file, "stat": self.stat_file}
        self.argv = command(path, port, files, service=service, remote=remote,
                            variables=variables, timeout_s=timeout_s, max_calls=max_calls,
                            traces=traces, options=options or {}, sipp=self.sipp)
        self.port, self.scenario = port, path
        self.proc = spawn(self.argv, self.output_file, cwd=self.workdir)
        deadline = time.monotonic() + ready_timeout_s
        while not udp_bound(port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"SIPp peer {self.name} exited at start-up\n{self.describe()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"SIPp peer {self.name} never bound {HOST}:{port}")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for SIPp to finish its one call; its exit code (0 = call succeeded).

        Read the exit code with wait() before stop(): SIPp exits 0 on SIGTERM.

        Raises TimeoutError if it is still running: the caller decides whether that
        is a failure, and the fixture's stop() reaps it either way.
        """
        if self.proc is None:
            raise RuntimeError(f"SIPp peer {self.name} was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"SIPp peer {self.name} still running after {timeout:.0f}s\n{self.describe()}"
            ) from None

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL, our own process by PID. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.stopped_by_us = True
            stop_popen(self.proc, timeout)
        if self.proc is not None and pid_alive(self.proc.pid) and self.proc.poll() is None:
            raise RuntimeError(f"SIPp peer {self.name} (pid {self.proc.pid}) would not die")

    def __enter__(self) -> SippPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what happened ---------------------------------------------------------------

    def messages(self, direction: str | None = None) -> list[SipMessage]:
        """Messages from the trace; `direction` is "sent", "received" or None (both)."""
        if direction not in (None, "sent", "received"):
            raise ValueError(f"direction must be 'sent' or 'received', not {direction!r}")
        try:
            text = self.message_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        found = parse_message_log(text)
        return [m for m in found if direction is None or m.direction == direction]

    def requests_received(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages("received") if m.method == method.upper()]

    def invites_received(self) -> list[SipMessage]:
        """Initial INVITEs only: a re-INVITE carries a To-tag, a new call does not.

        A retransmitted INVITE (same Via branch) is counted once.
        """
        seen: set[str] = set()
        invites = []
        for msg in self.requests_received("INVITE"):
            if msg.to_tag is not None:
                continue
            key = msg.header("Via") or msg.raw
            if key not in seen:
                seen.add(key)
                invites.append(msg)
        return invites

    def rang(self) -> bool:
        """Whether this peer (a phone) was called at all."""
        return bool(self.invites_received())

    def answered(self) -> bool:
        """Whether a 200 OK to INVITE crossed this peer (sent by a UAS, got by a UAC)."""
        return any(m.status == 200 and m.cseq_method == "INVITE" for m in self.messages())

    def got_bye(self) -> bool:
        return bool(self.requests_received("BYE"))

    def sent_bye(self) -> bool:
        return any(m.method == "BYE" for m in self.messages("sent"))

    def got_cancel(self) -> bool:
        return bool(self.requests_received("CANCEL"))

    def final_response(self, direction: str = "received") -> int | None:
        """Status of the first final (>= 200) response to INVITE in `direction`.

        For the caller (UAC) that is how the PBX ended the INVITE: 200 = answered,
        486/480/603... = rejected. For a phone (UAS) pass direction="sent".
        """
        for msg in self.messages(direction):
            if msg.status is not None and msg.status >= 200 and msg.cseq_method == "INVITE":
                return msg.status
        return None

    def outcomes(self) -> list[str]:
        """OUTCOME lines the scenario logged (uac_call: answered, local_bye, remote_bye,
        rejected), in order. The trace stays the reference; this is a cross-check."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return re.findall(r"OUTCOME (\w+)", text)

    def errors(self) -> str:
        try:
            return self.error_file.read_text(errors="replace").strip()
        except FileNotFoundError:
            return ""

    # -- many calls (load peers) -----------------------------------------------------

    def counters(self) -> dict[str, int]:
        """The last row of the "stat" trace: cumulative (C) counters, by column name."""
        try:
            with self.stat_file.open(errors="replace") as stats:
                rows = [row for row in csv.reader(stats, delimiter=";") if row]
        except FileNotFoundError:
            return {}
        if len(rows) < 2:
            return {}
        return {name[:-3]: int(value) for name, value in zip(rows[0], rows[-1], strict=False)
                if name.endswith("(C)") and value.strip().isdigit()}

    def rtd_ms(self) -> list[float]:
        """Samples of response time 1 from the "rtt" trace, in whole ms (SIPp 3.6.1)."""
        if self.proc is None:
            return []
        samples: list[float] = []
        for path in self.workdir.glob(f"*_{self.proc.pid}_rtt.csv"):  # <scenario>_<pid>_
            with path.open(errors="replace") as rtt:
                for row in csv.reader(rtt, delimiter=";"):
                    if len(row) >= 3 and row[2].strip() == "1":
                        try:
                            samples.append(float(row[1]))
                        except ValueError:
                            pass
        return samples

    def wire_calls(self) -> WireCalls:
        """Post-dial delay and completeness of each call this (caller) peer placed."""
        return wire_calls(self.messages())

    def calls_received(self) -> int:
        """Distinct calls (Call-IDs) whose INVITE reached this (phone) peer."""
        return len({m.header("Call-ID") for m in self.requests_received("INVITE")})

    def describe(self) -> str:
        """A summary for assertion messages: exit code, SIPp errors, the message flow."""
        rc = self.returncode
        meaning = EXIT_CODES.get(rc, "") if rc is not None else "still running"
        if self.stopped_by_us:
            meaning = "stopped by the harness before it finished; rc is meaningless"
        messages = self.messages()
        flow = " ".join(
            ("->" if m.direction == "sent" else "<-") + (m.method or str(m.status))
            for m in messages[:FLOW_SHOWN]
        ) + (f" ... ({len(messages)} messages)" if len(messages) > FLOW_SHOWN else "")
        parts = [
            f"[{self.name}] {self.scenario.name if self.scenario else '?'} on port {self.port}"
            f" pid {self.pid} rc={rc} ({meaning})",
            f"  flow: {flow or '(no messages)'}",
        ]
        if errors := self.errors():
            parts.append("  errors: " + errors.replace("\n", "\n          ")[-2000:])
        if rc not in (None, 0):
            try:
                tail = self.output_file.read_text(errors="replace")[-600:]
            except FileNotFoundError:
                tail = ""
            if tail.strip():
                parts.append("  output tail: " + tail.strip())
        return "\n".join(parts)


def wait_all(peers: Iterable[SippPeer], timeout: float) -> dict[str, int]:
    """Wait for several peers under one overall deadline; exit code by peer name.

    Raises TimeoutError naming every peer still running (and what each saw), rather
    than waiting `timeout` for each in turn.
    """
    peers = list(peers)
    deadline = time.monotonic() + timeout
    codes: dict[str, int] = {}
    while True:
        for peer in peers:
            if peer.name not in codes and (rc := peer.returncode) is not None:
                codes[peer.name] = rc
        pending = [p for p in peers if p.name not in codes]
        if not pending:
            return codes
        if time.monotonic() > deadline:
            detail = "\n".join(p.describe() for p in pending)
            raise TimeoutError(f"SIPp peers still running after {timeout:.0f}s:\n{detail}")
        time.sleep(0.05)


def stop_all(peers: Iterable[SippPeer]) -> None:
    """Stop every peer, even if stopping one of them fails."""
    failures: list[str] = []
    for peer in peers:
        try:
            peer.stop()
        except Exception as exc:  # keep stopping the others
            failures.append(f"{peer.name}: {exc}")
    if failures:
        raise RuntimeError("could not stop SIPp peers: " + "; ".join(failures))
