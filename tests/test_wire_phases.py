"""The loopback analysis of `pdd_profile --wire`: frames parsed, calls cut into phases."""

from __future__ import annotations

import struct

from tests.harness.wire_phases import TCP, UDP, Packet, call_phases, parse_frame

SIP, CALLER, DESK, FASTAGI, REDIS, AGENT_SIDE, REDIS_CLIENT = (
    5060, 5090, 5071, 4573, 6379, 40000, 41000)


def frame(proto: int, src: int, dst: int, payload: bytes, flags: int = 0x18) -> bytes:
    if proto == TCP:
        header = struct.pack("!HHIIBBHHH", src, dst, 0, 0, 5 << 4, flags, 0, 0, 0)
    else:
        header = struct.pack("!HHHH", src, dst, 8 + len(payload), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(header) + len(payload), 0, 0, 64,
                     proto, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    return b"\0" * 14 + ip + header + payload


def test_frames_are_parsed_to_ports_flags_and_payload() -> None:
    tcp = parse_frame(1.5, frame(TCP, AGENT_SIDE, FASTAGI, b"agi_network: yes\n", 0x11))
    assert tcp == Packet(1.5, TCP, AGENT_SIDE, FASTAGI, "FA", 17, b"agi_network: yes\n")
    udp = parse_frame(2.0, frame(UDP, CALLER, SIP, b"INVITE sip:1001@x SIP/2.0\r\n"))
    assert (udp.proto, udp.src, udp.dst, udp.flags, udp.size) == (UDP, CALLER, SIP, "", 27)
    assert parse_frame(0.0, b"\0" * 14 + b"\x60" + b"\0" * 39) is None  # IPv6: not ours


def _call(start: float, fastagi: bool) -> list[Packet]:
    """One call's packets, `at` in ms after `start` (seconds)."""
    def p(ms: float, proto: int, src: int, dst: int, head: bytes, flags: str = "PA") -> Packet:
        return Packet(start + ms / 1000, proto, src, dst, flags, len(head), head)

    agi = [
        p(1.0, TCP, AGENT_SIDE, FASTAGI, b"", "S"),
        p(1.1, TCP, AGENT_SIDE, FASTAGI, b"agi_network: yes\n"),
        p(1.2, TCP, FASTAGI, AGENT_SIDE, b"", "A"),
        p(1.5, TCP, AGENT_SIDE, FASTAGI, b"agi_arg_1: 1001\n"),
        p(1.6, TCP, AGENT_SIDE, FASTAGI, b"\n"),
        p(1.8, TCP, REDIS_CLIENT, REDIS, b"*2\r\n$7\r\nHGETALL\r\n"),
        p(1.9, TCP, REDIS, REDIS_CLIENT, b"*10\r\n$7\r\ndevices\r\n"),
        p(2.0, TCP, FASTAGI, AGENT_SIDE, b'EXEC MSet "CALLROUTE_MODE=RING"\n'),
        p(2.05, TCP, FASTAGI, AGENT_SIDE, b"", "FA"),
        p(2.2, TCP, AGENT_SIDE, FASTAGI, b"200 result=0\n"),
        p(2.3, TCP, AGENT_SIDE, FASTAGI, b"HANGUP\n", "FPA"),
    ] if fastagi else []
    return [p(0.0, UDP, CALLER, SIP, b"INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\n"),
            p(0.1, UDP, SIP, CALLER, b"SIP/2.0 100 Trying\r\n"),
            *agi,
            p(3.0, UDP, SIP, DESK, b"INVITE sip:1001@127.0.0.1:5071 SIP/2.0\r\n"),
            p(3.1, UDP, DESK, SIP, b"SIP/2.0 180 Ringing\r\n"),
            p(3.4, UDP, SIP, CALLER, b"SIP/2.0 180 Ringing\r\n")]


def phases(packets: list[Packet]) -> dict[str, list[float]]:
    found = call_phases(packets, sip=SIP, caller=CALLER, desk=DESK, fastagi=FASTAGI)
    return {name: [round(ms, 3) for ms in values] for name, values in found.items()}


def test_a_fastagi_call_is_cut_at_each_step() -> None:
    assert phases(_call(10.0, fastagi=True) + _call(10.05, fastagi=True)) == {
        "invite -> agi_connect": [1.0, 1.0],
        "agi_connect -> env_first": [0.1, 0.1],
        "env_first -> env_last": [0.5, 0.5],
        "env_last -> redis_request": [0.2, 0.2],
        "redis_request -> redis_reply": [0.1, 0.1],
        "redis_reply -> command": [0.1, 0.1],
        "command -> reply": [0.2, 0.2],
        "reply -> agi_end": [0.1, 0.1],
        "agi_end -> desk_invite": [0.7, 0.7],
        "desk_invite -> desk_180": [0.1, 0.1],
        "desk_180 -> caller_180": [0.3, 0.3],
        "total": [3.4, 3.4],
    }


def test_a_static_call_has_no_agi_steps_and_an_unanswered_one_is_left_out() -> None:
    unanswered = _call(20.0, fastagi=False)[:-1]
    assert phases(_call(10.0, fastagi=False) + unanswered) == {
        "invite -> desk_invite": [3.0], "desk_invite -> desk_180": [0.1],
        "desk_180 -> caller_180": [0.3], "total": [3.4]}


def test_steps_past_the_call_window_belong_to_no_call() -> None:
    call = _call(10.0, fastagi=False)
    late = [*call[:-1], Packet(10.05, UDP, SIP, CALLER, "", 20, b"SIP/2.0 180 Ringing\r\n")]
    assert phases(late) == {}
