"""SIP messages as a SIPp peer logged them (`-trace_msg`), parsed back into objects.

The e2e tests assert on what each peer saw on the wire, and the load runs (bench,
soak, faults) time and count calls from the same traces: one parser serves both.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True)
class WireCalls:
    """The calls of a load caller, as its own trace shows them."""

    pdd_s: list[float]  # INVITE sent -> first 180 received, per call that got a 180
    invited: int  # calls whose INVITE went out
    complete: int  # INVITE sent, 180 received and the BYE answered with 200


def wire_calls(messages: Iterable[SipMessage]) -> WireCalls:
    """Post-dial delay and completeness per Call-ID, from a caller's trace.

    SIPp's own response times are whole milliseconds, the order of the figure itself;
    the trace has microseconds. A retransmitted INVITE keeps the first timestamp.
    """
    invite_at: dict[str, datetime] = {}
    ringing_at: dict[str, datetime] = {}
    done: set[str] = set()
    for msg in messages:
        call_id = msg.header("Call-ID")
        if call_id is None or msg.at is None:
            continue
        if msg.direction == "sent" and msg.method == "INVITE":
            invite_at.setdefault(call_id, msg.at)
        elif msg.direction == "received" and msg.status == 180:
            ringing_at.setdefault(call_id, msg.at)
        elif msg.direction == "received" and msg.status == 200 and msg.cseq_method == "BYE":
            done.add(call_id)
    pdd = [(ringing_at[c] - invite_at[c]).total_seconds() for c in invite_at if c in ringing_at]
    complete = sum(1 for c in invite_at if c in ringing_at and c in done)
    return WireCalls(pdd, len(invite_at), complete)
