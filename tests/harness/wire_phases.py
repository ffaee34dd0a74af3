"""Where a call's post-dial delay goes, from the loopback wire: `pdd_profile --wire`.

Asterisk's log has millisecond timestamps, the order of the phases themselves. The
kernel stamps every packet on `lo` to the nanosecond, and every step of a routed call
crosses it: the caller's INVITE, Asterisk's connection to callroute-fastagi, the AGI
environment, the agent's Redis read and its answer, the MSet, Asterisk's reply, the
end of the AGI session, the INVITE to the desk phone and the 180s back. So
`LoopbackCapture` records them (an AF_PACKET socket on `lo`: root, like the test PBX),
and `call_phases` cuts each call into the steps between them, per call, by time order
(calls at 20/s are 50 ms apart, a call's steps take a few ms).
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
from dataclasses import dataclass

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4  # lo shows each packet twice: keep the copy received
ETH_HEADER = 14
TCP, UDP = 6, 17
FLAGS = (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("A", 0x10))
HEAD = 64  # payload bytes kept per packet
CALL_WINDOW_S = 0.04  # a call's steps, from its INVITE, fit in this (calls 50 ms apart)


@dataclass(frozen=True)
class Packet:
    at: float  # kernel timestamp, seconds
    proto: int
    src: int  # ports
    dst: int
    flags: str
    size: int  # payload bytes
    head: bytes


def parse_frame(at: float, frame: bytes) -> Packet | None:
    """The TCP or UDP packet in an Ethernet frame from `lo` (IPv4 only: the test PBX
    and its peers listen on 127.0.0.1); None for anything else."""
    ip = frame[ETH_HEADER:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    proto, body = ip[9], ip[(ip[0] & 0x0F) * 4:]
    if proto == TCP and len(body) >= 20:
        payload = body[(body[12] >> 4) * 4:]
        flags = "".join(name for name, bit in FLAGS if body[13] & bit)
    elif proto == UDP and len(body) >= 8:
        payload, flags = body[8:], ""
    else:
        return None
    src, dst = struct.unpack("!HH", body[:4])
    return Packet(at, proto, src, dst, flags, len(payload), bytes(payload[:HEAD]))


class LoopbackCapture:
    """Every TCP and UDP packet on `lo` while the `with` block runs."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                   socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="capture", daemon=True)

    def __enter__(self) -> LoopbackCapture:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                frame, ancillary, _flags, address = self._sock.recvmsg(65536, 64)
            except TimeoutError:
                continue
            if address[2] == PACKET_OUTGOING:
                continue
            stamps = [data for _level, kind, data in ancillary if kind == SO_TIMESTAMPNS]
            if not stamps:
                continue
            seconds, nanoseconds = struct.unpack("qq", stamps[0][:16])
            if (packet := parse_frame(seconds + nanoseconds / 1e9, frame)) is not None:
                self.packets.append(packet)


# The steps of one routed call, in the order they happen; a call's phases are the
# times between consecutive steps it has (static calls have no AGI steps).
STEPS = ("invite", "agi_connect", "env_first", "env_last", "redis_request", "redis_reply",
         "command", "reply", "agi_end", "desk_invite", "desk_180", "caller_180")


def _steps(packets: list[Packet], start: int, sip: int, caller: int, desk: int,
           fastagi: int) -> dict[str, float]:
    """The time of each step of the call whose INVITE is packets[start]."""
    first = packets[start]
    seen = {"invite": first.at}
    redis_port = None
    for p in packets[start + 1:]:
        if p.at - first.at > CALL_WINDOW_S:
            break
        to_agent, from_agent = p.dst == fastagi, p.src == fastagi
        if to_agent and p.flags == "S":
            seen.setdefault("agi_connect", p.at)
        elif to_agent and p.size:
            if "command" not in seen:  # the environment, a line or a few per packet
                seen.setdefault("env_first", p.at)
                seen["env_last"] = p.at
            elif p.head.startswith(b"200 "):
                seen.setdefault("reply", p.at)
            if "F" in p.flags:
                seen.setdefault("agi_end", p.at)
        elif to_agent and "F" in p.flags:
            seen.setdefault("agi_end", p.at)
        elif from_agent and p.head.startswith(b"EXEC "):
            seen.setdefault("command", p.at)
        elif p.proto == TCP and b"HGETALL" in p.head and redis_port is None:
            redis_port = p.dst
            seen.setdefault("redis_request", p.at)
        elif redis_port is not None and p.src == redis_port and p.size:
            seen.setdefault("redis_reply", p.at)
        elif p.proto == UDP and p.src == sip and p.dst == desk \
                and p.head.startswith(b"INVITE"):
            seen.setdefault("desk_invite", p.at)
        elif p.proto == UDP and p.src == desk and b" 180 " in p.head[:16]:
            seen.setdefault("desk_180", p.at)
        elif p.proto == UDP and p.src == sip and p.dst == caller \
                and b" 180 " in p.head[:16]:
            seen["caller_180"] = p.at
            break
    return seen


def call_phases(packets: list[Packet], *, sip: int, caller: int, desk: int,
                fastagi: int) -> dict[str, list[float]]:
    """Per phase ("step -> next step"), the ms of every complete call that has both
    steps; "total" is the INVITE to the caller's 180 (the PDD)."""
    phases: dict[str, list[float]] = {}
    for i, p in enumerate(packets):
        if not (p.proto == UDP and p.src == caller and p.dst == sip
                and p.head.startswith(b"INVITE")):
            continue
        seen = _steps(packets, i, sip, caller, desk, fastagi)
        if "caller_180" not in seen:
            continue
        present = [step for step in STEPS if step in seen]
        for before, after in itertools.pairwise(present):
            phases.setdefault(f"{before} -> {after}", []).append(
                1000 * (seen[after] - seen[before]))
        phases.setdefault("total", []).append(1000 * (seen["caller_180"] - seen["invite"]))
    return phases
