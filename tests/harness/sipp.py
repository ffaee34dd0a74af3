"""SIPp peers for the end-to-end tests, and a parser for what they sent and received.

Each `SippPeer` is one `sipp` process that handles exactly one call (`-m 1`) with a
scenario from tests/e2e/scenarios. The tests assert on what each peer actually saw on
the wire, so every peer keeps a full message trace (`-trace_msg`), and
`SippPeer.messages()` parses it back into `SipMessage` objects.

Why the command line looks the way it does (all checked against SIPp 3.6.1):
- `-i/-mi 127.0.0.1 -bind_local`: the topology is loopback only; nothing listens on
  other interfaces.
- `-mp` / `-cp`: every peer gets its own media ports (`-mp` and `-mp`+2) and its own
  control port, derived from its SIP port and above 30000, so that peers never collide
  with each other or with Asterisk's RTP range (10000-20000). Left alone, SIPp binds
  the control port 8888 on 0.0.0.0 and probes upwards, which races when several peers
  start at once.
- `-timeout Ns -timeout_error`: a peer whose call never comes, or never ends, exits
  with an error by itself. It is also what reaps a peer if the test process dies
  without running its fixtures.
- `-nostdin` and stdin=DEVNULL keep SIPp from reading keyboard commands; `-bg` is not
  used, because it would fork and we would lose the PID we must stop.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote

from tests.harness.procs import pid_alive, stop_popen

SCENARIOS = Path(__file__).resolve().parents[1] / "e2e" / "scenarios"
"""Where the scenario XML files live."""

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
HOST = "127.0.0.1"

# SIPp exit codes worth naming in failure messages.
EXIT_CODES = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error (for example the -timeout expired, with -timeout_error)",
    254: "fatal error binding a socket",
}

# RFC 3261 compact header forms, so lookups work whichever form the sender used.
COMPACT_FORMS = {
    "f": "from",
    "t": "to",
    "i": "call-id",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "e": "content-encoding",
    "k": "supported",
    "s": "subject",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "u": "allow-events",
}

_BLOCK_SEPARATOR = re.compile(r"^-{20,} ?(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)?.*$",
                              re.MULTILINE)
_HEADLINE = re.compile(
    r"^(?P<transport>UDP|TCP|TLS|SCTP) message (?P<direction>sent|received)"
    # "sent (N bytes):" and "received [N] bytes :"
    r"\s*[(\[]\s*(?P<size>\d+)\s*(?:bytes\s*)?[)\]]\s*(?:bytes)?\s*:?\s*$"
)
_URI_USER = re.compile(r"(?:sips?|tel):(?P<user>[^@;>?\s]+)", re.IGNORECASE)


def _canonical(name: str) -> str:
    name = name.strip().lower()
    return COMPACT_FORMS.get(name, name)


class Headers:
    """Case-insensitive multi-dict of SIP headers that also understands compact forms.

    SIP allows a header to repeat (Via, Diversion...) and to be spelt `f:` instead of
    `From:`; a plain dict would silently drop or miss those.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, in order (a comma-joined header stays one value)."""
        key = _canonical(name)
        return [value for header, value in self._items if _canonical(header) == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        values = self.get_all(name)
        return values[0] if values else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class SipMessage:
    """One SIP message as SIPp logged it, with the direction seen from that peer."""

    direction: str  # "sent" or "received"
    first_line: str
    headers: Headers = field(repr=False)
    body: str = field(default="", repr=False)
    raw: str = field(default="", repr=False)
    at: datetime | None = None  # when SIPp logged it (the host clock, shared by all peers)

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        """Request method (INVITE, BYE...), or None for a response."""
        return self.first_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        """Response status code, or None for a request."""
        if self.is_request:
            return None
        parts = self.first_line.split(" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def request_uri(self) -> str | None:
        parts = self.first_line.split(" ")
        return parts[1] if self.is_request and len(parts) > 1 else None

    @property
    def cseq_method(self) -> str | None:
        """The method in CSeq, which is how a response says what it answers."""
        cseq = self.header("CSeq")
        return cseq.split()[-1].upper() if cseq and cseq.split() else None

    @property
    def to_tag(self) -> str | None:
        to = self.header("To") or ""
        match = re.search(r";\s*tag=([^;>\s]+)", to.split(">")[-1] if ">" in to else to)
        return match.group(1) if match else None

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive, compact forms accepted)."""
        return self.headers.get(name)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name)


def parse_message(text: str, direction: str) -> SipMessage:
    """Parse one SIP message (start line, headers, body)."""
    text = text.replace("\r\n", "\n").strip("\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and items:  # folded continuation line
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, value = line.split(":", 1)
            items.append((name.strip(), value.strip()))
    return SipMessage(direction, lines[0].strip(), Headers(items), body, text)


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse a SIPp `-message_file` into messages, in log order.

    Blocks look like a dashed separator with a timestamp, then
    `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank line
    and the message. Other blocks SIPp may write (notes on ignored provisionals and the
    like) are skipped.
    """
    messages: list[SipMessage] = []
    separators = list(_BLOCK_SEPARATOR.finditer(text))
    for number, separator in enumerate(separators):
        end = separators[number + 1].start() if number + 1 < len(separators) else len(text)
        block = text[separator.end():end].lstrip("\r\n")
        headline, _, rest = block.partition("\n")
        match = _HEADLINE.match(headline.strip())
        if not match or not rest.strip():
            continue
        stamp = separator.group("stamp")
        messages.append(dataclasses.replace(
            parse_message(rest, match.group("direction")),
            at=datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f") if stamp else None))
    return messages


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


def scenario_path(scenario: str | Path) -> Path:
    """Resolve `uas_busy`, `uas_busy.xml` or a path to an existing scenario file."""
    path = Path(scenario)
    if not path.suffix:
        path = path.with_suffix(".xml")
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    if not path.is_file():
        raise FileNotFoundError(f"no SIPp scenario {scenario!r} (looked in {SCENARIOS})")
    return path


def scenario_variables(path: Path) -> set[str]:
    """Names the scenario declares in <Global variables="..."/>, i.e. what -set accepts.

    SIPp refuses an undeclared -set with a terse message in its log; checking here
    names the scenario and the allowed variables instead.
    """
    names: set[str] = set()
    for element in ET.parse(path).getroot().iter("Global"):
        names.update(v.strip() for v in element.get("variables", "").split(",") if v.strip())
    return names


def media_base_port(sip_port: int) -> int:
    """First of the ports reserved for a peer: media at +0 and +2, control at +6.

    30000 + 10 * (port mod 3000) keeps every peer on its own 10-port block, above
    Asterisk's RTP range and below 60000, for any SIP port.
    """
    return 30000 + 10 * (sip_port % 3000)


def udp_bound(port: int, hosts: Iterable[str] = (HOST,)) -> bool:
    """Whether something has bound UDP host:port, read from /proc/net/udp.

    A bind is the only reliable "SIPp is ready" signal: SIPp prints nothing useful
    to a non-terminal, and a UAS that is not listening yet loses the PBX's INVITE.
    """
    wanted = {f"{_hex_ip(host)}:{port:04X}" for host in hosts}
    try:
        with open("/proc/net/udp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return False
    return any(len(row) > 1 and row[1] in wanted for row in rows)


def _hex_ip(host: str) -> str:
    """127.0.0.1 -> 0100007F, the little-endian form /proc/net/udp uses."""
    return "".join(f"{int(part):02X}" for part in reversed(host.split(".")))


class SippPeer:
    """One SIPp process handling one call; stop it by PID whatever happens.

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
    ) -> SippPeer:
        """Run `sipp` on 127.0.0.1:`port`, and return once its SIP socket is bound.

        `remote` ("host:port") makes it a client (UAC) calling `sip:<service>@remote`;
        without it the scenario must start with a <recv> (UAS). `variables` become
        `-set NAME VALUE`. `timeout_s` is SIPp's own global timeout: past it SIPp
        exits non-zero by itself, so a lost peer can't outlive the test by much.
        `max_calls`: calls the peer handles before it exits (a carrier that refuses the
        first INVITE of a leg and answers its retry takes 2).
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
        for stale in (self.message_file, self.error_file, self.log_file, self.screen_file):
            stale.unlink(missing_ok=True)
        base = media_base_port(port)
        argv = [
            self.sipp,
            "-sf", str(path),
            "-i", HOST, "-mi", HOST, "-bind_local",
            "-p", str(port),
            "-mp", str(base),
            "-ci", HOST, "-cp", str(base + 6),
            "-m", str(max_calls),
            "-nostdin",
            "-trace_msg", "-message_file", str(self.message_file),
            "-trace_err", "-error_file", str(self.error_file),
            "-trace_logs", "-log_file", str(self.log_file),
            "-trace_screen", "-screen_file", str(self.screen_file),
            "-timeout", f"{max(1, round(timeout_s))}s", "-timeout_error",
        ]  # fmt: skip
        if service is not None:
            argv += ["-s", service]
        for key, value in variables.items():
            argv += ["-set", key, str(value)]
        if remote is not None:
            argv.append(remote)
        self.argv, self.port, self.scenario = argv, port, path
        with open(self.output_file, "wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )  # fmt: skip
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

    def describe(self) -> str:
        """A summary for assertion messages: exit code, SIPp errors, the message flow."""
        rc = self.returncode
        meaning = EXIT_CODES.get(rc, "") if rc is not None else "still running"
        if self.stopped_by_us:
            meaning = "stopped by the harness before it finished; rc is meaningless"
        flow = " ".join(
            ("->" if m.direction == "sent" else "<-") + (m.method or str(m.status))
            for m in self.messages()
        )
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
