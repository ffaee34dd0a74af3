"""Place one scripted SIP call on the test PBX and report what actually happened.

Shared by the end-to-end tests (which assert on a CallResult) and `testpbx demo`
(which prints them as a table), so the demo shows exactly what the tests check.
Every peer is a real SIPp process; every fact comes from what a peer received,
from the voicemail spool, or from Asterisk itself.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.pbx import TestPBX
from tests.harness.procs import wait_until
from tests.harness.sipp import (
    SipMessage,
    SippPeer,
    diversion_number,
    from_number,
    pai_number,
    stop_all,
    uri_user,
)

DESK_PORTS = {"1001": 5071, "1002": 5072, "1003": 5073}
CARRIER_PORT = 5080
CALLER_PORT = 5090
CALLER_NUMBER = "+33611111111"
COMPANY_NUMBER = "+33100001000"
DIDS = {"1001": "+33100001001", "1002": "+33100001002", "1003": "+33100001003"}
# Long enough for the voicemail prompts (~11 s) and a few seconds of message.
VOICEMAIL_HOLD_MS = 16000


@dataclass
class Callee:
    """A SIPp phone waiting for a call: a desk phone (by extension) or the carrier."""

    name: str
    port: int
    scenario: str
    variables: dict[str, str] = field(default_factory=dict)
    calls: int = 1  # INVITEs (SIPp calls) the peer expects


def desk(ext: str, scenario: str = "uas_ring_answer", **variables: str) -> Callee:
    return Callee(f"desk {ext}", DESK_PORTS[ext], scenario, dict(variables))


def carrier(scenario: str = "uas_ring_answer", calls: int = 1, **variables: str) -> Callee:
    return Callee("carrier", CARRIER_PORT, scenario, dict(variables), calls)


@dataclass
class CallResult:
    ext: str
    caller: SippPeer
    callees: dict[str, SippPeer]
    new_voicemail: list[Path]
    voicemail_greeting: str | None  # "busy" / "unavailable", from Asterisk's log
    bridged: list[str]  # channels the caller's Dial() connected it to, from Asterisk's log
    seconds: float
    log: str = ""  # Asterisk's log while the call lasted

    def played(self, sound: str, to: str = "") -> int:
        """How many times Asterisk played `sound` (e.g. "followme/options"), to any
        channel or only to channels whose name starts with `to` (e.g. "PJSIP/carrier")."""
        return len(re.findall(rf"<{re.escape(to)}[^>]*> Playing '{re.escape(sound)}\.",
                              self.log))

    def rang(self, name: str) -> bool:
        return bool(self.callees[name].invites_received())

    def rang_names(self) -> list[str]:
        return [name for name in self.callees if self.rang(name)]

    def invite(self, name: str) -> SipMessage | None:
        invites = self.callees[name].invites_received()
        return invites[0] if invites else None

    def carrier_numbers(self) -> list[str]:
        """The E.164 numbers the carrier was asked to call (request-URI users)."""
        return [uri_user(msg.request_uri) or "" for msg in
                self.callees["carrier"].invites_received()] if "carrier" in self.callees \
            else []

    def caller_id_at(self, name: str) -> str | None:
        invite = self.invite(name)
        return from_number(invite) if invite else None

    def pai_at(self, name: str) -> str | None:
        invite = self.invite(name)
        return pai_number(invite) if invite else None

    def diversion_at(self, name: str) -> str | None:
        invite = self.invite(name)
        return diversion_number(invite) if invite else None

    def caller_answered(self) -> bool:
        return self.caller.final_response() == 200

    def connected_to(self, name: str) -> bool:
        """`name` answered and Asterisk bridged the caller to it.

        Answering is not enough: a mobile voicemail answers an external leg that is
        then released unconfirmed. Asterisk's own log names the leg the caller's Dial()
        connected: a desk phone's PJSIP channel, or the Local channel of an external leg.
        """
        prefix = "Local/" if name == "carrier" else f"PJSIP/{name.split()[-1]}-"
        return (self.callees[name].answered() and not self.voicemail_left()
                and any(channel.startswith(prefix) for channel in self.bridged))

    def caller_hung_up_itself(self) -> bool:
        """The caller stayed until its own BYE: the call was not dropped on it."""
        return self.caller.sent_bye()

    def voicemail_left(self) -> bool:
        return bool(self.new_voicemail)

    def voicemail_field(self, name: str) -> str | None:
        """A field of the new message's .txt (callerid=, rdnis=...)."""
        for path in self.new_voicemail:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(f"{name}="):
                    return line.split("=", 1)[1]
        return None

    def describe(self) -> str:
        lines = [f"call to {self.ext}: caller {self.caller.describe()}"]
        lines += [f"  {name}: {peer.describe()}" for name, peer in self.callees.items()]
        lines.append(f"  voicemail: {[p.name for p in self.new_voicemail]} "
                     f"greeting={self.voicemail_greeting}; bridged: {self.bridged}")
        return "\n".join(lines)


def inbox(pbx: TestPBX, mailbox: str) -> Path:
    box, _, context = mailbox.partition("@")
    return pbx.spool / "voicemail" / (context or "default") / box / "INBOX"


def _messages(folder: Path) -> set[Path]:
    return set(folder.glob("msg*.txt")) if folder.exists() else set()


def place_call(pbx: TestPBX, workdir: Path, ext: str, callees: list[Callee], *,
               hold_ms: int = 3000, caller_number: str = CALLER_NUMBER,
               mailbox: str | None = None, timeout_s: float = 90.0,
               caller_scenario: str = "uac_call",
               caller_variables: dict[str, str] | None = None) -> CallResult:
    """Call `ext` from a SIPp caller while `callees` wait; return what each side saw.

    Callees that are never called are stopped once the call is over; one that was
    called gets a few seconds to finish its dialog first.
    """
    started = time.monotonic()
    # Channels up before the call (a phone already on another call) stay up after it.
    baseline = pbx.channel_count()
    folder = inbox(pbx, mailbox or f"{ext}@default")
    before = _messages(folder)
    log_start = pbx.log_file.stat().st_size if pbx.log_file.exists() else 0
    workdir.mkdir(parents=True, exist_ok=True)
    peers: dict[str, SippPeer] = {}
    caller = SippPeer("caller", workdir / "caller")
    try:
        for callee in callees:
            peer = SippPeer(callee.name, workdir / callee.name.replace(" ", "-"))
            peers[callee.name] = peer
            peer.start(callee.scenario, callee.port, variables=callee.variables,
                       timeout_s=timeout_s + 10, max_calls=callee.calls)
        variables = {"caller": caller_number, **(caller_variables or {})}
        if caller_scenario == "uac_call":
            variables["hold_ms"] = str(hold_ms)
        caller.start(caller_scenario, CALLER_PORT, service=ext, remote="127.0.0.1:5060",
                     variables=variables, timeout_s=timeout_s)
        caller.wait(timeout_s + 5)
        for peer in peers.values():
            if peer.invites_received():
                try:
                    peer.wait(8)
                except TimeoutError:
                    pass  # described by the assertion that needs it
    finally:
        stop_all([caller, *peers.values()])
    wait_until(lambda: pbx.channel_count() <= baseline, 15,
               "the PBX to release every channel of the call")
    log = _log_since(pbx.log_file, log_start)
    greeting = _greeting(log)
    new = sorted(_messages(folder) - before)
    if greeting is not None:
        # VoiceMail() ran: the message's .txt is written when the recording ends; give
        # it a moment. (Only then: polling after every call cost 5 s a call.)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (new := sorted(_messages(folder) - before)):
            time.sleep(0.1)
    return CallResult(ext=ext, caller=caller, callees=peers, new_voicemail=new,
                      voicemail_greeting=greeting,
                      bridged=re.findall(r"app_dial\.c: (\S+) answered PJSIP/inbound-", log),
                      seconds=time.monotonic() - started, log=log)


def _log_since(log_file: Path, offset: int) -> str:
    if not log_file.exists():
        return ""
    with log_file.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")


def _greeting(log: str) -> str | None:
    """Which greeting VoiceMail() was asked for during this call (b = busy, u = unavailable)."""
    found = re.findall(r'VoiceMail\("[^"]*", "[^",]*,([a-z]*)"\)', log)
    if not found:
        return None
    return "busy" if "b" in found[-1] else "unavailable"


def answer_strays(ports: list[int], wait_s: float = 4.5) -> int:
    """Answer, on callees' ports, the CANCELs and BYEs Asterisk still retransmits
    after a call.

    When two legs answer at once, the PBX's CANCEL can cross the losing phone's 200 OK.
    The PBX then also ACKs that 200 and hangs the leg up with a BYE. The losing SIPp
    phone may already have ended (or aborted), so neither request gets an answer and
    Asterisk retransmits both (0.5, 1, 2, 4, 4, ... s, for 32 s) to the same port,
    where a later test's phone takes the BYE for a call of its own and fails. One
    200 OK ends each transaction; retransmissions are never more than 4 s apart, so
    `wait_s` of 4.5 s sees every one that is pending. Returns how many were answered.
    """
    import select
    import socket

    socks = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", port))
        socks.append(sock)
    answered = 0
    deadline = time.monotonic() + wait_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(socks, [], [], left)
            for sock in ready:
                data, peer = sock.recvfrom(65536)
                lines = data.decode("utf-8", "replace").split("\r\n")
                if not lines[0].startswith(("CANCEL ", "BYE ")):
                    continue
                copied = [line for line in lines if line.split(":", 1)[0].lower() in
                          ("via", "from", "to", "call-id", "cseq")]
                reply = "\r\n".join(["SIP/2.0 200 OK", *copied, "Content-Length: 0", "", ""])
                sock.sendto(reply.encode(), peer)
                answered += 1
    finally:
        for sock in socks:
            sock.close()
    return answered
