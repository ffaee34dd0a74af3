"""Streams of calls through the test PBX: the SIPp overrides the benchmark, the soak
and the faults script share.

A load caller places N calls at R calls/s into the PBX and keeps its message trace
(post-dial delay per call) and SIPp's counters; a load phone answers many calls and
auto-answers anything that is not a call (-aa: a stray OPTIONS or NOTIFY must not
become a failed call).
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.harness.pbx import SIP_HOST, SIP_PORT
from tests.harness.sipp import SippPeer
from tests.harness.sippcmd import LOAD_TRACES

LOAD_UAC = "load_uac"  # INVITE, 180, 200, ACK, 300 ms, BYE
LOAD_UAS = "load_uas_desk"  # 180 at once, then 200; waits for the BYE
RECV_TIMEOUT_MS = 5000


def start_phone(peer: SippPeer, port: int, calls: int, timeout_s: float, *,
                trace_calls: bool = False,
                recv_timeout_ms: int = RECV_TIMEOUT_MS) -> SippPeer:
    """`peer` answers up to `calls` calls on `port`; `trace_calls` keeps every message
    (to count which calls reached it)."""
    traces = (*LOAD_TRACES, "msg") if trace_calls else LOAD_TRACES
    return peer.start(LOAD_UAS, port, max_calls=calls, timeout_s=timeout_s, traces=traces,
                      options={"-aa": None, "-recv_timeout": recv_timeout_ms})


def start_caller(peer: SippPeer, port: int, service: str, calls: int, rate: int,
                 timeout_s: float, *, scenario: str = LOAD_UAC,
                 recv_timeout_ms: int = RECV_TIMEOUT_MS,
                 options: Mapping[str, object] | None = None) -> SippPeer:
    """`peer` calls `service` on the PBX `calls` times at `rate` calls/s."""
    return peer.start(scenario, port, service=service, remote=f"{SIP_HOST}:{SIP_PORT}",
                      max_calls=calls, timeout_s=timeout_s,
                      traces=(*LOAD_TRACES, "msg", "rtt"),
                      options={"-r": rate, "-recv_timeout": recv_timeout_ms, **(options or {})})
